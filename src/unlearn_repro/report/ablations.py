"""The ablations' report (issue 21): per comparison a table (per-seed values, mean and 95 % t interval per
method and step), a Pareto figure (efficacy against utility) and a verdict with its curvature premise.

A point is (method, step); its value per seed is the mean over the comparison's settings (tasks x models on
the main setting, TOFU's one model), so the interval is over seeds (report/stats.py). Objectives, each
oriented so that higher is better: efficacy (-Delta exp on the main setting, 1 - forget accuracy on TOFU) and
utility (-Delta test NLL and retain accuracy; TOFU: model utility and retain accuracy).

The verdict ('curvature improves the efficacy-utility trade-off') compares the second-order method's front
with each ablated one: point p dominates q when p is no worse in every objective and better in one, where
'worse' / 'better' is stats.compare over seeds (a difference inside its interval is a tie). The second-order
front dominates when every ablated point is dominated by one of its points or tied with one, and at least one
is dominated; 'holds' if it dominates every ablated front, 'does not hold' if an ablated front dominates it,
else 'tie'. A point with one seed has no interval: it is tied with every point (no verdict from one seed).
The premise (metrics.curvature: did the curvature bend the step at all?) stands beside the verdict; on
curvature-degenerate second-order runs the comparison is between two first-order methods, and the verdict
is 'premise not met' (the fronts' outcome still in the table)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_repro.io import read_json, write_json, write_text
from unlearn_repro.metrics.curvature import CLIP_MAX, COSINE_MAX
from unlearn_repro.metrics.curvature import verdict as premise_verdict
from unlearn_repro.report import stats
from unlearn_repro.report.tables import write_table

# per kind of comparison: (objective column, label, how a point's raw value becomes "higher is better")
OBJECTIVES = {
    "newton": [
        ("efficacy", "efficacy: −Δexp", lambda p: -_num(p["delta_exp"])),
        ("utility_nll", "utility: −Δ test NLL", lambda p: -_num(p["delta_test_nll"])),
        ("retain_accuracy", "retain accuracy", lambda p: _num(p["retain_accuracy"])),
    ],
    "sophia": [
        ("efficacy", "efficacy: 1 − forget accuracy", lambda p: 1 - _num(p["forget_acc"])),
        ("model_utility", "model utility (TOFU)", lambda p: _num(p["model_utility"])),
        ("retain_accuracy", "retain accuracy (TOFU)", lambda p: _num(p["retain_acc"])),
    ],
}
PREMISE = {
    "removal": ("fisher_removal", "cosine"),
    "forgetting": ("fisher_forgetting", "noise_cosine"),
    "sophia": ("sophia", "clip_rate"),
}
DEGENERATE_ABOVE = {"cosine": COSINE_MAX, "noise_cosine": COSINE_MAX, "clip_rate": CLIP_MAX}
OPTIMIZER_LABELS = {
    "sophia": "Sophia",
    "sophia_constant": "Sophia, h constant (sign-momentum)",
    "adamw": "AdamW (first order)",
}


def comparisons(cfg) -> list[str]:
    """The Newton-type comparisons where this run prepares one of their tasks, then TOFU's."""
    a = cfg.ablations
    newton = list(a.newton) if any(d in cfg.data.tasks for d in a.datasets) else []
    return newton + [f"sophia_{m}" for m in a.sophia.methods]


def outputs(cfg, root) -> dict:
    """Exactly the files build_report writes."""
    root = Path(root)
    tables = [root / "tables" / f"{c}{ext}" for c in comparisons(cfg) for ext in (".csv", ".md", ".html")]
    return {
        "tables": [str(p) for p in tables + [root / "tables" / "points.csv"]],
        "figures": [str(root / "figures" / f"{c}.png") for c in comparisons(cfg)],
        "summary": [str(root / "summary" / "ablations.json")],
        "verdicts": [str(root / "tables" / f"verdicts{ext}") for ext in (".csv", ".md")],
    }


def _num(v) -> float:
    return math.nan if v is None else float(v)


def kind_of(comparison: str) -> str:
    return "sophia" if comparison.startswith("sophia_") else "newton"


def second_order(cfg, comparison: str) -> str:
    """The curvature-using member of a comparison: the first method listed / Sophia."""
    return "sophia" if kind_of(comparison) == "sophia" else list(cfg.ablations.newton[comparison].methods)[0]


def label(name: str) -> str:
    from unlearn_repro.methods import METHODS

    return OPTIMIZER_LABELS.get(name) or (METHODS.get(name).label if name in METHODS.names() else name)


def long_points(files) -> pd.DataFrame:
    """One row per (comparison, method, setting, seed, step): the objectives and the run's premise."""
    rows = []
    for f in files:
        rec = read_json(f)
        kind = kind_of(rec["comparison"])
        for p in rec["points"]:
            row = {k: rec[k] for k in ("comparison", "method", "dataset", "model", "seed")}
            row.update(value=p["value"], diverged=bool(p.get("diverged")))
            row.update({col: fn(p) for col, _, fn in OBJECTIVES[kind]})
            row.update(
                {
                    f"premise_{k}": v
                    for k, v in (p.get("curvature") or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)


def seed_means(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Per (method, step, seed): the mean over settings (NaN where a setting diverged: not averaged away)."""
    return df.groupby(["method", "value", "seed"], as_index=False)[list(cols)].agg(
        lambda s: s.mean() if s.notna().all() else math.nan
    )


def summary_table(per_seed: pd.DataFrame, objectives) -> pd.DataFrame:
    """Per (method, step): each objective's per-seed values, mean and 95 % t interval."""
    rows = []
    for (method, value), g in per_seed.groupby(["method", "value"], sort=False):
        row = {"method": method, "label": label(method), "step": value}
        for col, _, _ in objectives:
            row[f"{col}_per_seed"] = stats.per_seed(g["seed"], g[col])
            row.update(stats.interval_columns(stats.finite(g[col]), f"{col}_"))
            row[f"{col}_cell"] = stats.cell(stats.finite(g[col]), 4)
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(p: dict, q: dict, cols) -> bool:
    """Both points have an interval (>= 2 seeds) in every objective: else no difference is judged."""
    return all(len(p[c]) >= 2 and len(q[c]) >= 2 for c in cols)


def dominates(p: dict, q: dict, cols) -> bool:
    """p's per-seed values are no worse than q's in every objective and better in one (stats.compare)."""
    if not _interval(p, q, cols):
        return False
    outcomes = [stats.compare(p[c], q[c]) for c in cols]
    return "less" not in outcomes and "greater" in outcomes


def tied(p: dict, q: dict, cols) -> bool:
    return not _interval(p, q, cols) or all(stats.compare(p[c], q[c]) == stats.TIE for c in cols)


def front_dominates(a: list[dict], b: list[dict], cols) -> bool:
    """Every point of b is dominated by or tied with a point of a, and at least one is dominated."""
    if not a or not b:
        return False
    covered = [any(dominates(p, q, cols) or tied(p, q, cols) for p in a) for q in b]
    return all(covered) and any(dominates(p, q, cols) for q in b for p in a)


def fronts(per_seed: pd.DataFrame, cols) -> dict[str, list[dict]]:
    """Per method: its finite points, each {objective: per-seed values}."""
    out = {}
    for method, g in per_seed.groupby("method", sort=False):
        pts = [{c: stats.finite(h[c]) for c in cols} | {"value": v} for v, h in g.groupby("value")]
        out[method] = [p for p in pts if all(len(p[c]) for c in cols)]
    return out


def comparison_verdict(so: str, fr: dict, cols) -> tuple[str, dict]:
    """('holds' / 'does not hold' / 'tie', per ablated method: 'dominates' / 'dominated' / 'tie')."""
    each = {}
    for m, pts in fr.items():
        if m == so:
            continue
        each[m] = (
            "dominates"
            if front_dominates(fr.get(so, []), pts, cols)
            else "dominated"
            if front_dominates(pts, fr.get(so, []), cols)
            else "tie"
        )
    if each and all(v == "dominates" for v in each.values()):
        return stats.HOLDS, each
    return (stats.FAILS if any(v == "dominated" for v in each.values()) else stats.TIE), each


RELATION = {"dominates": "dominates", "dominated": "is dominated by", "tie": "ties with"}


def fronts_text(so: str, each: dict) -> str:
    """'Sophia dominates AdamW (first order); Sophia is dominated by Sophia, h constant (sign-momentum)'."""
    return "; ".join(f"{label(so)} {RELATION[v]} {label(m)}" for m, v in each.items())


def premise(df: pd.DataFrame, comparison: str, so: str) -> tuple[str, bool]:
    """The second-order runs' premise (metrics.curvature), mean over their runs: ('met: cosine = 0.800
    (curvature-degenerate above 0.95)', met). Not met: the curvature did not bend the step, so the
    comparison is between two first-order methods and says nothing about curvature."""
    kind, key = PREMISE["sophia" if kind_of(comparison) == "sophia" else comparison]
    col = f"premise_{key}"
    vals = stats.finite(df.loc[df["method"] == so, col]) if col in df else np.array([])
    if not len(vals):
        return "not met: not measured", False
    v = float(vals.mean())
    met = premise_verdict(kind, {key: v}) == "met"
    limit = DEGENERATE_ABOVE[key]
    return f"{'met' if met else 'not met'}: {key} = {v:.3f} (curvature-degenerate above {limit})", met


def figure(per_seed: pd.DataFrame, objectives, comparison: str, out: Path):
    """Efficacy against each utility objective, one colour per method, its points joined in step order
    (the grid is a sequence), 95 % intervals both ways (none from one seed). Returns the Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unlearn_repro.report import style
    from unlearn_repro.report.figures import _legend, _save, errors, point_labels

    (ecol, elabel, _), *utils = objectives
    table = summary_table(per_seed, objectives)
    seeds = per_seed["seed"].nunique() if "seed" in per_seed else 1
    with style.context():
        fig, axes = plt.subplots(
            1, len(utils), figsize=(4.2 * len(utils), 3.8), squeeze=False, layout="constrained"
        )
        for ax, (ucol, ulabel, _) in zip(axes[0], utils):
            for m in style.order(table["method"]):
                t = table[table["method"] == m].sort_values("step")
                ax.errorbar(
                    t[f"{ucol}_mean"],
                    t[f"{ecol}_mean"],
                    xerr=errors(_half(t, ucol)),
                    yerr=errors(_half(t, ecol)),
                    label=label(m),
                    gid=m,
                    **style.line_kwargs(m),
                )
            ax.set_xlabel(f"{ulabel} (higher is better)")
            ax.set_ylabel(f"{elabel} (higher is better)")
        _legend(fig, axes, 4)
        fig.draw_without_rendering()  # every line drawn, the layout final: label boxes hold when saved
        for ax, (ucol, _, _) in zip(axes[0], utils):
            for m in style.order(table["method"]):
                t = table[table["method"] == m].sort_values("step")
                steps = [f"{v:g}" for v in t["step"]]
                point_labels(ax, t[f"{ucol}_mean"], t[f"{ecol}_mean"], steps, gid="step")
        fig.suptitle(
            f"Ablation '{comparison}' (issue 21, not a figure of the papers): efficacy–utility over the "
            f"step grid\n{seeds} seed{'s' if seeds != 1 else ''}"
            + (", bars: 95 % t interval" if seeds > 1 else " (no interval)")
        )
        _save(fig, out)
    return fig


def _half(t: pd.DataFrame, col: str) -> np.ndarray:
    """Half-widths of the 95 % intervals (NaN where there is none: one seed)."""
    return (t[f"{col}_ci_high"] - t[f"{col}_ci_low"]).to_numpy() / 2


def build_report(cfg, files, root) -> dict:
    root = Path(root)
    df = long_points(files)
    df.to_csv(_mk(root / "tables" / "points.csv"), index=False)
    verdict_rows, summary = [], {}
    for comp in comparisons(cfg):
        sub = df[df["comparison"] == comp]
        objectives = OBJECTIVES[kind_of(comp)]
        cols = [c for c, _, _ in objectives]
        per_seed = seed_means(sub, cols)
        table = summary_table(per_seed, objectives)
        show = table[["label", "step"] + [f"{c}_cell" for c in cols]].rename(
            columns={f"{c}_cell": lab for c, lab, _ in objectives}
        )
        so = second_order(cfg, comp)
        outcome, each = comparison_verdict(so, fronts(per_seed, cols), cols)
        why, met = premise(sub, comp, so)
        outcome = outcome if met else stats.PREMISE_NOT_MET
        note = (
            f"Mean over settings per seed, then {stats.ESTIMATOR}. Verdict: {outcome} "
            f"({fronts_text(so, each)}); premise: {why}."
        )
        write_table(show, root / "tables" / comp, title=f"Ablation '{comp}'", note=note, data=table)
        figure(per_seed, objectives, comp, root / "figures" / f"{comp}.png")
        verdict_rows.append(
            {
                "comparison": comp,
                "claim": "curvature improves the efficacy–utility trade-off",
                "second_order": label(so),
                "verdict": outcome,
                "fronts": fronts_text(so, each),
                "premise": why,
                "seeds": int(per_seed["seed"].nunique()) if len(per_seed) else 0,
            }
        )
        summary[comp] = {"verdict": outcome, "fronts": each, "premise": why}
    verdicts = pd.DataFrame(verdict_rows)
    verdicts.to_csv(root / "tables" / "verdicts.csv", index=False)
    write_text(
        root / "tables" / "verdicts.md",
        "## Ablations: does curvature improve the efficacy–utility trade-off?\n\n"
        + verdicts.to_markdown(index=False)
        + "\n",
    )
    write_json(_mk(root / "summary" / "ablations.json"), summary)
    return summary


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

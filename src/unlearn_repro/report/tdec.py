"""The TDEC study's report (FLoRA paper Table 1, Figures 3 and 4): ours beside the paper's numbers, the
premise (memorized forget sets vs held-out rows), and a verdict for each of the paper's three findings.
It writes exactly the files `outputs` names."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn_repro.io import read_json, write_json  # noqa: E402
from unlearn_repro.pipeline.tdec import ablation_runs, epoch_meaning, table_configs  # noqa: E402
from unlearn_repro.report import style  # noqa: E402
from unlearn_repro.report.figures import _save, log_ticks  # noqa: E402
from unlearn_repro.report.paper_tables import FLORA_TABLE1  # noqa: E402
from unlearn_repro.report.stats import (  # noqa: E402
    ESTIMATOR,
    compare,
    ours_paper,
    parse_per_seed,
    per_seed,
    t_interval,
)
from unlearn_repro.report.style import context  # noqa: E402
from unlearn_repro.report.tables import TABLE_FORMATS, write_table  # noqa: E402

LABELS = {
    "before": "Before",
    "ga": "GA (full)",
    "gd": "GD (full)",
    "lora_gd": "LoRA + GD",
    "lora_ihl": "LoRA + IHL",
    "flora_gd": "FLoRA + GD",
    "flora_ihl": "FLoRA + IHL",
}
PAPER_SIZE = {"gpt-neo-125m": "125M", "gpt-neo-1.3b": "1.3B", "gpt-neo-2.7b": "2.7B", "tiny-gpt-neo": "125M"}
COLUMNS = ("Params (%)", "Epochs", "EL10 (%)", "MA (%)", "Reasoning (Acc)", "Dialogue (F1)", "PPL")


def outputs(root: str) -> dict[str, list[str]]:
    t, f = f"{root}/tables", f"{root}/figures"
    return {
        "tables": [f"{t}/{n}.{e}" for n in ("table1", "premise", "ablation") for e in TABLE_FORMATS],
        "figures": [f"{f}/figure3.png", f"{f}/figure4.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def label(run: str) -> str:
    if run in LABELS:
        return LABELS[run]
    base, _, targets = run.partition("-")
    return f"{LABELS.get(base, base)} ({targets.upper()})"


def _num(v, digits=1) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def aggregate(run: dict) -> dict:
    """One configuration over its forget sets: epochs averaged over the sets it forgot, x = sets
    it did not."""
    sets = run["sets"]
    ok = [s for s in sets if s["forgotten"]]
    mean = lambda k: float(np.mean([s[k] for s in sets]))  # noqa: E731
    epochs = float(np.mean([s["epochs"] for s in ok])) if ok else math.nan
    out = {
        "params_pct": mean("params_pct"),
        "epochs": epochs,
        "failed": len(sets) - len(ok),
        "n_sets": len(sets),
        "el": 100 * mean("el"),
        "ma": 100 * mean("ma"),
        "reasoning": 100 * mean("reasoning"),
        "ppl": mean("ppl"),
    }
    for k, scale in (("el", 100), ("ma", 100), ("reasoning", 100), ("ppl", 1)):  # the spread over forget sets
        values = [scale * s[k] for s in sets]
        out[f"{k}_half"] = t_interval(values).half
        out[f"{k}_per_set"] = per_seed(range(len(values)), values)
    return out


def _num_half(a: dict, key: str) -> str:
    """'mean ± half-width' over the forget sets where there is an interval, else the mean alone."""
    half = a.get(f"{key}_half")
    return _num(a[key]) + (f" ± {_num(half)}" if half is not None and np.isfinite(half) else "")


def _cell(ours: str, paper) -> str:
    return ours_paper(ours, paper, "{:.1f}")


def table1(premises: dict, runs: dict, cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, data = [], []
    for model, premise in premises.items():
        paper = FLORA_TABLE1.get(PAPER_SIZE.get(model, ""), {})
        p = paper.get("before", (None,) * 7)
        before = {
            "params_pct": None,
            "epochs": None,
            "failed": None,
            "el": 100 * premise["forget_mean"]["el"],
            "ma": 100 * premise["forget_mean"]["ma"],
            "reasoning": 100 * premise["reasoning"],
            "ppl": premise["ppl"],
        }
        entries = [("before", before)] + [
            (name, aggregate(runs[(model, name)])) for name in table_configs(cfg)
        ]
        for name, a in entries:
            p = paper.get(name, (None,) * 7)
            epochs = (
                "—"
                if name == "before"
                else (f"{_num(a['epochs'])}" + (f" ({a['failed']}✗ of {a['n_sets']})" if a["failed"] else ""))
            )
            rows.append(
                {
                    "model": model,
                    "method": LABELS.get(name, name),
                    COLUMNS[0]: _cell(_num(a["params_pct"], 2), p[0]),
                    COLUMNS[1]: _cell(epochs, p[1]),
                    COLUMNS[2]: _cell(_num_half(a, "el"), p[2]),
                    COLUMNS[3]: _cell(_num_half(a, "ma"), p[3]),
                    COLUMNS[4]: _cell(_num_half(a, "reasoning"), p[4]),
                    COLUMNS[5]: _cell("not run", p[5]),
                    COLUMNS[6]: _cell(_num_half(a, "ppl"), p[6]),
                }
            )
            data.append(
                {
                    "model": model,
                    "config": name,
                    **a,
                    "paper_size": PAPER_SIZE.get(model),
                    **{
                        f"paper_{c}": v
                        for c, v in zip(
                            ("params_pct", "epochs", "el", "ma", "reasoning", "dialogue_f1", "ppl"), p
                        )
                    },
                }
            )
    return pd.DataFrame(rows).rename(
        columns={COLUMNS[1]: f"{COLUMNS[1]} ({epoch_meaning(cfg)})"}
    ), pd.DataFrame(data)


def ppl_order(agg: dict, a: str, b: str) -> str:
    """'less' / 'greater' / 'tie': configuration a's PPL against b's over their forget sets, by Welch's 95 %
    interval of the difference (report/stats.compare: a difference inside it is a tie), on the per-set values
    the summary keeps (`ppl_per_set`), so a reader can redo it from the published file."""
    return compare(parse_per_seed(agg[a]["ppl_per_set"]), parse_per_seed(agg[b]["ppl_per_set"]))


def _verdict(needed: bool, orders) -> str:
    """does not hold where a needed condition fails or a PPL is higher beyond its interval; holds where every
    PPL is lower beyond it; else tie."""
    orders = list(orders)
    if not needed or "greater" in orders:
        return "does not hold"
    return "holds" if all(o == "less" for o in orders) else "tie"


def findings(agg: dict) -> dict:
    """The paper's three findings as rules on one model's aggregates (utility = PPL on held-out TDEC rows,
    the metric that moves at every scale; reasoning accuracy is reported beside it). Each has a `verdict`
    (holds / does not hold / tie: a PPL difference inside its 95 % interval decides nothing) and `holds`."""
    ep = lambda k: agg[k]["epochs"] if agg[k]["failed"] == 0 else math.inf  # noqa: E731  a failure ranks last
    # the paper's Table 1 names GA, GD, LoRA (+ GD) and LoRA + IHL beside FLoRA + IHL; FLoRA + GD is in its
    # Figures 3 and 4 only, so the FLoRA + IHL claim is judged against the named rows, not against FLoRA + GD
    lora_named = [k for k in ("lora_gd", "lora_ihl") if k in agg]
    named = [k for k in ("ga", "gd", "lora_gd", "lora_ihl") if k in agg]
    out = {}
    if {"ga", "gd"} <= agg.keys():
        order = ppl_order(agg, "gd", "ga")
        verdict = _verdict(ep("gd") <= ep("ga"), [order])
        out["gd_beats_ga"] = {
            "verdict": verdict,
            "holds": verdict == "holds",
            "ppl_vs": {"ga": order},
            "rule": "GD needs no more epochs than GA and ends with a lower PPL (Welch's 95 % interval of the "
            "PPL difference over the forget sets; a difference inside it: tie)",
        }
    if "lora_gd" in agg:
        holds = bool(agg["lora_gd"]["failed"] >= agg["lora_gd"]["n_sets"] / 2)
        out["lora_gd_often_fails"] = {
            "verdict": "holds" if holds else "does not hold",
            "holds": holds,
            "rule": "LoRA + GD misses the criterion within max_epochs on at least half the forget sets",
        }
    if "flora_ihl" in agg and lora_named:
        fewest = all(ep("flora_ihl") <= ep(k) for k in lora_named)
        orders = {k: ppl_order(agg, "flora_ihl", k) for k in named}
        verdict = _verdict(fewest, orders.values())
        out["flora_ihl_fewer_epochs_best_utility"] = {
            "verdict": verdict,
            "holds": verdict == "holds",
            "fewest_epochs_among_lora": bool(fewest),
            "lowest_ppl": all(o == "less" for o in orders.values()),
            "ppl_vs": orders,
            "compared_with": named,
            "rule": "FLoRA + IHL needs no more epochs than the paper's named LoRA rows (LoRA + GD, LoRA + "
            "IHL) and has a lower PPL than every named row (GA, GD, LoRA + GD, LoRA + IHL), each by Welch's "
            "95 % interval of the PPL difference over the forget sets (inside it: tie); FLoRA + GD, in the "
            "paper's Figures 3 and 4 only, is not a comparator",
        }
    return out


UTILITY = (("reasoning", 100, "reasoning accuracy (%)"), ("ppl", 1, "perplexity, held-out TDEC rows (log)"))


def config_style(cfg, name: str) -> str:
    """The style name (report.style) a TDEC configuration is drawn with: its method, through its adapter."""
    c = cfg.tdec.configs[name]
    return style.adapted(c.method, c.adapter)


def _utility_panels(fig_path, models, per_model, before, title, xlabels, labels, xtitle="configuration"):
    """Figure 3/4: a column per model, rows reasoning and PPL, a category per entry of `xlabels` on x (no
    line joins them: they are no sequence). per_model[model][x] is the list of (style name, forget sets) drawn
    side by side in category x; `labels` maps a style name (report.style: one colour and marker per method)
    to its legend entry. Each forget set is a point in its method's colour and marker (filled: forgotten,
    hollow: not within max_epochs), the bar beside them the mean over the forgotten sets with its t interval
    (none from one set), the grey dashed line the model before unlearning. Returns the Figure (already saved
    and closed)."""
    per_x = max(len(group) for m in models for group in per_model[m])
    with context():
        fig, axes = plt.subplots(
            2,
            len(models),
            figsize=(max(4.5, (0.8 + 0.45 * (per_x - 1)) * len(xlabels) + 1.5) * len(models), 6.4),
            squeeze=False,
            layout="constrained",
        )
        for j, model in enumerate(models):
            for i, (key, scale, name) in enumerate(UTILITY):
                ax = axes[i, j]
                for x, group in enumerate(per_model[model]):
                    width = 0.8 / len(group)
                    for k, (method, sets) in enumerate(group):
                        centre = x + (k - (len(group) - 1) / 2) * width
                        _sets(
                            ax,
                            centre,
                            width,
                            [scale * s[key] for s in sets],
                            [s["forgotten"] for s in sets],
                            method,
                            log=key == "ppl",
                        )
                ax.axhline(
                    scale * before[model][key], ls="--", lw=1.4, color=style.BEFORE, zorder=1, gid="before"
                )
                ax.set_xticks(range(len(xlabels)), xlabels, rotation=30, ha="right")
                ax.set_xlim(-0.6, len(xlabels) - 0.4)
                ax.set_xlabel(xtitle)
                ax.grid(axis="x", visible=False)
                ax.set_ylabel(name)
                if key == "ppl":
                    ax.set_yscale("log")
                    log_ticks(ax.yaxis)
                else:
                    ax.set_title(model)
        fig.legend(handles=_legend_handles(labels), loc="outside lower center", ncol=4)
        fig.suptitle(title)
        _save(fig, fig_path)
    return fig


def _sets(ax, x, width, values, forgotten, method, log: bool = False) -> None:
    """One configuration's forget sets (spread a little along x, within `width`) and the mean ± interval of
    the forgotten, beside them; with `log` (a log axis) of the logs, drawn back on the values' scale (an
    interval of the values themselves would reach below zero, off the axis)."""
    kw = style.method_style(method)
    offsets = width * (np.linspace(-0.275, 0.025, len(values)) if len(values) > 1 else np.array([-0.125]))
    for dx, v, ok in zip(offsets, values, forgotten):
        face = kw["color"] if ok else "white"
        ax.plot(x + dx, v, kw["marker"], color=kw["color"], ms=7, mfc=face, mew=1.6, zorder=3, gid=method)
    ok = [v for v, f in zip(values, forgotten) if f]
    if ok:
        iv = t_interval(np.log(ok) if log else ok)
        back = np.exp if log else (lambda v: v)
        mean, half = back(iv.mean), iv.half if iv.n > 1 else 0.0
        ax.errorbar(
            x + 0.2 * width,
            mean,
            yerr=[[mean - back(iv.mean - half)], [back(iv.mean + half) - mean]] if iv.n > 1 else None,
            fmt="_",
            ms=14 * min(1.0, 2.5 * width),
            mew=2.2,
            color=kw["color"],
            elinewidth=1.2,
            capsize=3,
            zorder=3,
            gid=method,
        )


def _legend_handles(labels: dict) -> list:
    """One entry per method (its colour and marker, in report.style's order), then what filled, hollow, bar
    and dashes mean."""
    from matplotlib.lines import Line2D

    def entry(label, **kw):
        return Line2D([], [], linestyle="none", label=label, **kw)

    handles = [
        entry(labels[m], marker=style.method_style(m)["marker"], color=style.method_style(m)["color"])
        for m in style.order(labels)
    ]
    return handles + [
        entry("forgotten (criterion met)", marker="o", color=style.EDGE),
        entry("not forgotten within max_epochs", marker="o", mfc="white", mec=style.EDGE),
        entry(
            "mean over forgotten sets ± 95 % t (PPL: of log PPL)", marker="_", ms=12, mew=2, color=style.EDGE
        ),
        Line2D([], [], ls="--", color=style.BEFORE, lw=1.4, label="before unlearning"),
    ]


def _sets_phrase(rows: int, n_sets: int) -> str:
    return f"{n_sets} forget set{'s' if n_sets != 1 else ''} of {rows} TDEC rows each"


def figure3_title(rows: int, n_sets: int) -> str:
    return f"FLoRA paper Figure 3: utility after unlearning {_sets_phrase(rows, n_sets)}"


def figure4_title(methods: list[str], n_targets: int, rows: int, n_sets: int) -> str:
    """The paper's Figure 4: its methods (their labels) on each of n_targets sets of target modules."""
    return (
        f"FLoRA paper Figure 4: {len(methods)} method{'s' if len(methods) != 1 else ''} "
        f"({', '.join(methods)}) on {n_targets} set{'s' if n_targets != 1 else ''} of target modules\n"
        f"utility after unlearning {_sets_phrase(rows, n_sets)}"
    )


def legend_labels(cfg, names) -> dict:
    """{style name: legend entry} of these configurations (configurations sharing a style share an entry)."""
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(config_style(cfg, name), []).append(label(name))
    return {m: " / ".join(dict.fromkeys(v)) for m, v in out.items()}


def build_report(cfg, premise_files: dict, run_files: dict, out_root: str | Path) -> dict:
    """premise_files: model -> premise json (the base checkpoint's meta.json); run_files: (model,
    run) -> json."""
    out_root = Path(out_root)
    tables, figures = out_root / "tables", out_root / "figures"
    premises = {m: read_json(f)["premise"] for m, f in premise_files.items()}
    runs = {k: read_json(f) for k, f in run_files.items()}
    n_sets, max_epochs = cfg.tdec.forget_sets, cfg.tdec.max_epochs
    note = (
        f"ours ‖ paper (GPT-Neo {', '.join(sorted({PAPER_SIZE.get(m, '?') for m in premises}))}). "
        f"Epochs: mean over the forget sets that met the criterion within {max_epochs} epochs, k✗ = sets "
        f"that did not; an epoch: {epoch_meaning(cfg)} (knowledge-unlearning's code: 1 update, batch = "
        f"forget set) ({n_sets} sets "
        "of {0} rows). EL10, MA on the forget set after unlearning (Before: before); Reasoning: mean "
        "accuracy over {1}; PPL on held-out TDEC validation rows (the paper: Pile validation); Dialogue F1 "
        "needs the hub's dialogue sets: not run offline. The paper's rows LoRA / + IHL / + FLoRA are "
        "LoRA+GD / LoRA+IHL / FLoRA+IHL; FLoRA+GD appears only in its Figures 3 and 4."
    ).format(
        cfg.tdec.forget_size,
        ", ".join(t for t in cfg.tdec.reasoning_tasks if t in cfg.data.tasks) or "no task",
    )
    note += (
        f" EL10, MA, Reasoning, PPL after unlearning: mean ± half-width of the "
        f"{ESTIMATOR.replace('seeds', 'forget sets')} (each set's value: the CSV's *_per_set "
        "columns)."
    )
    shown, data = table1(premises, runs, cfg)
    write_table(shown, tables / "table1", "Table 1: unlearning TDEC forget sets", note, data=data)

    prem_rows = []
    for m, p in premises.items():
        for k, s in enumerate(p["forget_sets"]):
            prem_rows.append(
                {"model": m, "rows": f"forget set {k}", "EL10 (%)": 100 * s["el"], "MA (%)": 100 * s["ma"]}
            )
        prem_rows.append(
            {
                "model": m,
                "rows": "TDEC validation rows",
                "EL10 (%)": 100 * p["heldout"]["el"],
                "MA (%)": 100 * p["heldout"]["ma"],
            }
        )
        prem_rows.append(
            {
                "model": m,
                "rows": "threshold",
                "EL10 (%)": 100 * p["threshold"]["el"],
                "MA (%)": 100 * p["threshold"]["ma"],
                "threshold source": p["threshold"]["source"],
            }
        )
    prem = pd.DataFrame(prem_rows).fillna("")
    write_table(
        prem.round(2),
        tables / "premise",
        "Premise: forget sets memorized, above the forgetting threshold",
        "Before unlearning. The criterion stops a run once the forget set's EL10 and MA are at or below the "
        "threshold: EL10 / MA on text the model has not seen (tdec.threshold; for a hub GPT-Neo the TDEC "
        "validation rows are Pile text it saw). Paper (GPT-Neo 125M, forget sets): EL10 30.9, MA 77.4.",
        data=prem,
    )

    abl = ablation_runs(cfg)
    targets = list(cfg.tdec.ablation.targets)
    abl_rows = []
    for m in premises:
        for t in targets:
            for config, by_targets in abl.items():
                run = by_targets[t]
                a = aggregate(runs[(m, run)])
                abl_rows.append(
                    {
                        "model": m,
                        "targets": t.upper(),
                        "method": label(config),
                        "config": run,
                        **{
                            k: a[k]
                            for k in ("params_pct", "epochs", "failed", "el", "ma", "reasoning", "ppl")
                        },
                    }
                )
    abl_df = pd.DataFrame(abl_rows)
    methods = [label(c) for c in abl]
    write_table(
        abl_df.round(3),
        tables / "ablation",
        f"Figure 4: {', '.join(methods)} by target modules",
        "A row per target modules and method (config: the run; on the default targets a method's Table 1 "
        "run). Paper (GPT-Neo 2.7B, figure only): Q V alone misses the criterion; FFN targets forget more "
        "often, with FLoRA; FLoRA + IHL on Q V FFN forgets and keeps utility best.",
        data=abl_df,
    )

    models = list(premises)
    before = {m: {"reasoning": premises[m]["reasoning"], "ppl": premises[m]["ppl"]} for m in models}
    configs = table_configs(cfg)
    _utility_panels(
        figures / "figure3.png",
        models,
        {m: [[(config_style(cfg, c), runs[(m, c)]["sets"])] for c in configs] for m in models},
        before,
        figure3_title(cfg.tdec.forget_size, n_sets),
        [label(c) for c in configs],
        legend_labels(cfg, configs),
    )
    _utility_panels(
        figures / "figure4.png",
        models,
        {
            m: [
                [(config_style(cfg, c), runs[(m, by_targets[t])]["sets"]) for c, by_targets in abl.items()]
                for t in targets
            ]
            for m in models
        },
        before,
        figure4_title(methods, len(targets), cfg.tdec.forget_size, n_sets),
        [t.upper() for t in targets],
        legend_labels(cfg, abl),
        "adapter target modules",
    )

    summary = {}
    for m in models:
        agg = {c: aggregate(runs[(m, c)]) for c in configs}
        summary[m] = {
            "premise": {
                "forget_el10": premises[m]["forget_mean"]["el"],
                "forget_ma": premises[m]["forget_mean"]["ma"],
                "heldout_el10": premises[m]["heldout"]["el"],
                "heldout_ma": premises[m]["heldout"]["ma"],
                "threshold": premises[m]["threshold"],
                "holds": premises[m]["holds"],
            },
            "configs": {
                c: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in a.items()}
                for c, a in agg.items()
            },
            "findings": findings(agg),
        }
    write_json(out_root / "summary" / "metrics.json", summary)
    return summary

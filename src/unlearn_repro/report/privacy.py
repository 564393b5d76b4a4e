"""The privacy study's report (paper §7): every (privacy, utility) point as a table, the DP models with the
ε they spent and the measured DP slowdown, and Figure 3 (privacy–utility curves, one line per method plus
DP-SGD; x = mean exposure of the audited forget set, lower = more private). It writes exactly the files
`outputs` names."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn_repro.io import read_json, write_json  # noqa: E402
from unlearn_repro.report import stats, style  # noqa: E402
from unlearn_repro.report.figures import _legend, _save, errors, method_label, point_labels  # noqa: E402
from unlearn_repro.report.tables import TABLE_FORMATS, write_table  # noqa: E402

DP = "dp_sgd"
UTILITY = {
    "accuracy": ("task accuracy (%)", True),
    "test_nll": ("test NLL (nats/token)", False),
}  # higher better?
POINT = ["dataset", "model", "method", "value"]  # one point of Figure 3; its seeds repeat it
AXES = ("exposure", "accuracy", "test_nll")
# DP-SGD is not an unlearning method: its own dark grey (report.style.OTHERS) with open circles
DP_STYLE = {
    **style.method_style(DP),
    "markerfacecolor": "white",
    "linestyle": style.SOLID,
    "linewidth": 1.8,
    "zorder": 3,
}
PAPER = (
    "Paper (§7.2, Figure 3, OPT-125M; the figure gives no numbers): DP-SGD almost dominates the unlearning "
    "methods on LAMBADA but not on PIQA, and DP-SGD makes training more expensive."
)


def label(method: str) -> str:
    return "DP-SGD" if method == DP else method_label(method)


def outputs(root: str) -> dict[str, list[str]]:
    t, f = f"{root}/tables", f"{root}/figures"
    return {
        "tables": [f"{t}/{n}.{e}" for n in ("points", "means", "dp_models") for e in TABLE_FORMATS],
        "figures": [f"{f}/privacy_utility.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def load_points(files) -> pd.DataFrame:
    rows = []
    for f in files:
        d = read_json(f)
        for p in d["points"]:
            rows.append({"dataset": d["dataset"], "model": d["model"], "seed": d.get("seed"), **p})
    return _ordered(pd.DataFrame(rows)).sort_values(POINT).reset_index(drop=True)


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Methods as a categorical in the one order of every table and legend: DP-SGD, then style.order."""
    methods = [str(m) for m in df["method"].unique()]
    return df.assign(
        method=pd.Categorical(df["method"].astype(str), [DP] + style.order([m for m in methods if m != DP]))
    )


def seed_means(df: pd.DataFrame) -> pd.DataFrame:
    """One row per point of Figure 3: per axis the mean over seeds and its 95 % t half-width (NaN with one
    seed), `seeds`, and `diverged` when any seed diverged (such a point is left off the front)."""
    df = df.assign(diverged=df.get("diverged", pd.Series(False, index=df.index)).fillna(False).astype(bool))
    rows = []
    for key, g in df.groupby(POINT, observed=True, sort=False):
        row = dict(zip(POINT, key)) | {
            "seeds": int(g["seed"].nunique()),
            "diverged": bool(g["diverged"].any()),
        }
        for col in AXES:
            v = g[col] if col in g else pd.Series(math.nan, index=g.index)  # (a table without accuracy)
            iv = stats.t_interval(v)
            row |= {col: iv.mean, f"{col}_half": iv.half, f"{col}_per_seed": stats.per_seed(g["seed"], v)}
        rows.append(row)
    return _ordered(pd.DataFrame(rows)).sort_values(POINT).reset_index(drop=True)


def pareto_share(group: pd.DataFrame, metric: str = "test_nll") -> float:
    """Share of the DP-SGD models (finite ε) on the Pareto front of all points of one (data set, model),
    each point its mean over seeds: no other point has both lower exposure and better utility."""
    higher = UTILITY[metric][1]
    if "seed" in group:
        group = seed_means(group)
    pts = group[~group.get("diverged", pd.Series(False, index=group.index)).fillna(False).astype(bool)]
    x, y = pts["exposure"].to_numpy(float), pts[metric].to_numpy(float) * (1 if higher else -1)
    front = [not np.any((x < xi) & (y > yi)) for xi, yi in zip(x, y)]
    is_dp = ((pts["method"] == DP) & np.isfinite(pts["value"].astype(float))).to_numpy()
    return float(np.mean(np.array(front)[is_dp])) if is_dp.any() else math.nan


def slowdowns(df: pd.DataFrame) -> pd.Series:
    """Measured DP slowdown per (data set, model): mean over ε of DP epoch time / ordinary epoch time."""
    dpm = df[(df["method"] == DP) & np.isfinite(df["value"].astype(float))]
    return dpm.groupby(["dataset", "model"])["slowdown"].mean()


def build_report(cfg, point_files, out_root) -> dict:
    out_root = Path(out_root)
    df = load_points(point_files)
    cols = [
        "dataset",
        "model",
        "method",
        "seed",
        "coefficient",
        "value",
        "epsilon_spent",
        "exposure",
        "accuracy",
        "test_nll",
        "runtime_s",
        "slowdown",
        "diverged",
    ]
    data = df.reindex(columns=cols)
    shown = data.copy()
    shown["method"] = shown["method"].map(label)
    write_table(
        shown.round(4),
        out_root / "tables" / "points",
        "Privacy–utility points (Figure 3): exposure of the audited forget set vs utility",
        "One row per seed and DP-SGD model (value = target ε; ε = inf is the ordinary fine-tuned model) and "
        "per seed and unlearning run (value = the coefficient; cycle 1 of the seed's split of the main "
        "study). Exposure: mean over the cycle-1 forget set (lower = more private). " + PAPER,
        data=data,
    )
    means = seed_means(df)
    shown = means.assign(method=means["method"].map(label))
    for col in AXES:
        shown[col] = [stats.cell(stats.parse_per_seed(t), 4, signed=False) for t in means[f"{col}_per_seed"]]
    write_table(
        shown.drop(columns=[f"{c}_{k}" for c in AXES for k in ("half", "per_seed")]),
        out_root / "tables" / "means",
        "Privacy–utility points (Figure 3), mean over seeds",
        f"Each point of Figure 3 over its seeds: {stats.ESTIMATOR}; per-seed values in the *_per_seed "
        "columns; diverged: in any seed. " + PAPER,
        data=means,
    )
    dpm = df[df["method"] == DP].reindex(
        columns=[
            "dataset",
            "model",
            "epsilon",
            "epsilon_spent",
            "noise_multiplier",
            "max_grad_norm",
            "delta",
            "sample_rate",
            "steps",
            "epoch_s",
            "ordinary_epoch_s",
            "slowdown",
            "base_run_epoch_s",
            "exposure",
            "accuracy",
            "test_nll",
        ]
    )
    write_table(
        dpm.round(4),
        out_root / "tables" / "dp_models",
        "DP-SGD models: the ε opacus's accountant says each spent, and the measured slowdown",
        "epoch_s: wall seconds per epoch of DP fine-tuning on D; ordinary_epoch_s: one epoch of ordinary "
        "fine-tuning with the same recipe, data and loss, timed in the same job right after; slowdown: their "
        "ratio; base_run_epoch_s: the fine-tuned base model's own run (another job). " + PAPER,
    )
    max_test = cfg.data.max_test if cfg is not None else None
    noise = {"accuracy": (2 / max_test, f"2 of {max_test} test samples")} if max_test else {}
    figure(df, out_root / "figures" / "privacy_utility.png", noise)
    sd = slowdowns(df)
    summary = {
        "dp_slowdown_mean": float(sd.mean()) if len(sd) else math.nan,
        **{f"dp_slowdown/{d}/{m}": float(v) for (d, m), v in sd.items()},
        **{f"pareto_share_dp/{d}/{m}": pareto_share(g) for (d, m), g in df.groupby(["dataset", "model"])},
        **{
            f"epsilon_spent/{r.dataset}/{r.model}/eps{r.epsilon:g}": float(r.epsilon_spent)
            for r in df[(df["method"] == DP) & np.isfinite(df["value"].astype(float))].itertuples()
        },
    }
    write_json(out_root / "summary" / "metrics.json", summary)
    return summary


def _no_signal(values, metric: str, noise: dict) -> str | None:
    """Why a panel's utility carries no signal ("constant at X", "spread at most <noise>"), or None when it
    moves. noise: {metric: (largest spread that is noise, what that spread is)}."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    scale, unit = (100, " %") if metric == "accuracy" else (1, "")
    if v.size == 0:
        return "no data"
    if np.ptp(v) <= 1e-9 * max(1.0, abs(v[0])):
        return f"constant at {scale * v[0]:.3g}{unit}"
    floor, what = noise.get(metric, (0.0, ""))
    if np.ptp(v) <= floor:
        return f"moves by at most {what}"
    return None


def panels(df: pd.DataFrame, noise: dict) -> tuple[list[tuple], list[str]]:
    """The (data set, model, metric) panels that carry signal, and a note for each data set whose accuracy
    panels are left out. Test NLL panels always stay (the metric that moves at every scale); an accuracy
    panel goes when it is constant or moves no more than `noise` says is noise (two test samples' worth)."""
    kept, notes = [], []
    models = list(df["model"].unique())
    for d in df["dataset"].unique():
        why = {}
        for model in models:
            sub = df[(df["dataset"] == d) & (df["model"] == model)]
            why[model] = _no_signal(sub["accuracy"], "accuracy", noise)
            kept += [(d, model, m) for m in UTILITY if m == "test_nll" or why[model] is None]
        gone = {m: w for m, w in why.items() if w is not None}
        if len(gone) == len(models) and len(set(gone.values())) == 1:
            notes.append(f"{d}: {next(iter(gone.values()))}")
        else:
            notes += [f"{d} · {m}: {w}" for m, w in gone.items()]
    return kept, notes


def figure(df: pd.DataFrame, out, noise: dict | None = None):
    """Paper Figure 3: one panel per (data set, model, utility) with signal, two per row; x = mean exposure
    of the audited forget set (bits), one line per method along its coefficient grid, DP-SGD along ε.
    Returns the Figure (already saved and closed)."""
    kept, notes = panels(df, noise or {})
    ncols = min(2, len(kept))
    nrows = -(-len(kept) // ncols)
    seeds = df["seed"].nunique() if "seed" in df else 1
    df = seed_means(df if "seed" in df else df.assign(seed=0))
    with style.context():
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(4.4 * ncols, 0.6 + 3.2 * nrows), squeeze=False, layout="constrained"
        )
        for ax, (d, model, metric) in zip(axes.flat, kept):
            _panel(ax, df[(df["dataset"] == d) & (df["model"] == model)], metric)
            ax.set_title(f"{d} · {model}")
        for ax in axes.flat[len(kept) :]:
            ax.remove()
        _legend(fig, axes.flat[: len(kept)], 5)
        title = (
            "Paper Figure 3 (§7.2): privacy–utility trade-off of DP-SGD (labels: ε) and unlearning "
            f"(coefficient grids)\nmean over {seeds} seed{'s' if seeds != 1 else ''}"
            + (" (no interval)" if seeds == 1 else ", bars: 95 % t interval both ways")
        )
        if notes:
            title += "; accuracy left out, no signal: " + "; ".join(notes)
        fig.suptitle("\n".join(textwrap.fill(line, 110) for line in title.split("\n")))
        fig.draw_without_rendering()  # the final layout, before labels are placed by their pixel boxes
        for ax, (d, model, metric) in zip(axes.flat, kept):
            _epsilon_labels(ax, df[(df["dataset"] == d) & (df["model"] == model)], metric)
        _save(fig, out)
    return fig


def _panel(ax, sub: pd.DataFrame, metric: str) -> None:
    """One panel: each method's seed means along its coefficient grid in its style, DP-SGD along ε, with
    their 95 % intervals both ways (none with one seed)."""
    scale = 100 if metric == "accuracy" else 1
    for method, g in sub.groupby("method", observed=True):
        g = g.sort_values("value", ascending=method != DP)
        kw = DP_STYLE if method == DP else style.line_kwargs(method)
        x, y = g["exposure"], scale * g[metric]
        ax.plot(x, y, label=label(method), gid=str(method), **kw)
        xerr, yerr = errors(g["exposure_half"]), errors(scale * g[f"{metric}_half"])
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=kw["color"], elinewidth=0.8, capsize=2,
                        zorder=kw["zorder"], gid=f"{method}/interval")  # fmt: skip
    ax.set_xlabel("mean exposure of the forget set (bits, ↓ = more private)")
    ax.set_ylabel(UTILITY[metric][0] + ("" if UTILITY[metric][1] else ", ↓ = better"))


def _epsilon_labels(ax, sub: pd.DataFrame, metric: str) -> None:
    """ε beside the DP-SGD points (once the figure's layout is final, so that none overlap)."""
    dp = sub[sub["method"] == DP]
    eps = ["∞" if not np.isfinite(v) else f"{v:g}" for v in dp["value"].astype(float)]
    scale = 100 if metric == "accuracy" else 1
    point_labels(ax, dp["exposure"], scale * dp[metric], eps, prefix="ε = ", gid="epsilon")

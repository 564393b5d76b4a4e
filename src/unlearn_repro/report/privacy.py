"""The privacy study's report (paper §7): every (privacy, utility) point as a table, the DP models with the
ε they spent and the measured DP slowdown, and Figure 3 (privacy–utility curves, one line per method plus
DP-SGD; x = mean exposure of the audited forget set, lower = more private). It writes exactly the files
`outputs` names."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn_repro.io import read_json, write_json  # noqa: E402
from unlearn_repro.report import style  # noqa: E402
from unlearn_repro.report.figures import _save, method_label  # noqa: E402
from unlearn_repro.report.tables import TABLE_FORMATS, write_table  # noqa: E402

DP = "dp_sgd"
UTILITY = {
    "accuracy": ("task accuracy", True),
    "test_nll": ("test NLL (nats/token)", False),
}  # higher better?
# DP-SGD is not an unlearning method: black with open circles, apart from every method's colour
DP_STYLE = {
    "color": style.BLACK,
    "marker": "o",
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
        "tables": [f"{t}/{n}.{e}" for n in ("points", "dp_models") for e in TABLE_FORMATS],
        "figures": [f"{f}/privacy_utility.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def load_points(files) -> pd.DataFrame:
    rows = []
    for f in files:
        d = read_json(f)
        for p in d["points"]:
            rows.append({"dataset": d["dataset"], "model": d["model"], **p})
    df = pd.DataFrame(rows)
    df["method"] = pd.Categorical(
        df["method"], [DP] + style.order([m for m in df["method"].unique() if m != DP])
    )
    return df.sort_values(["dataset", "model", "method", "value"]).reset_index(drop=True)


def pareto_share(group: pd.DataFrame, metric: str = "test_nll") -> float:
    """Share of the DP-SGD models (finite ε) on the Pareto front of all points of one (data set, model):
    no other point has both lower exposure and better utility."""
    higher = UTILITY[metric][1]
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
        "One row per DP-SGD model (value = target ε; ε = inf is the ordinary fine-tuned model) and per "
        "unlearning run (value = the coefficient; cycle 1 of the main study's split). Exposure: mean over "
        "the cycle-1 forget set (lower = more private). " + PAPER,
        data=data,
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
    figure(df, out_root / "figures" / "privacy_utility.png")
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


def figure(df: pd.DataFrame, out) -> None:
    """Rows: data sets; columns: (model, utility metric). One line per method, DP-SGD ordered by ε."""
    datasets, models = list(df["dataset"].unique()), list(df["model"].unique())
    panels = [(m, u) for m in models for u in UTILITY]
    with style.context():
        fig, axes = plt.subplots(
            len(datasets), len(panels), figsize=(3.6 * len(panels), 3.0 * len(datasets)), squeeze=False
        )
        for i, d in enumerate(datasets):
            for j, (model, metric) in enumerate(panels):
                ax = axes[i, j]
                sub = df[(df["dataset"] == d) & (df["model"] == model)]
                for method, g in sub.groupby("method", observed=True):
                    g = g.sort_values("value", ascending=method != DP)
                    kw = DP_STYLE if method == DP else style.line_kwargs(method)
                    ax.plot(g["exposure"], g[metric], label=label(method), **kw)
                    if method == DP:
                        for r in g.itertuples():
                            ax.annotate(
                                "∞" if not np.isfinite(r.value) else f"{r.value:g}",
                                (r.exposure, getattr(r, metric)),
                                fontsize=6,
                                xytext=(3, 3),
                                textcoords="offset points",
                            )
                ax.set_title(f"{d} · {model}")
                ax.set_xlabel("exposure of the forget set (↓ = private)")
                ax.set_ylabel(UTILITY[metric][0] + ("" if UTILITY[metric][1] else ", ↓ = better"))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), bbox_to_anchor=(0.5, -0.02))
        fig.suptitle(
            "Figure 3: privacy–utility trade-off of DP-SGD (ε labels) and unlearning (coefficient grids)"
        )
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        _save(fig, out)

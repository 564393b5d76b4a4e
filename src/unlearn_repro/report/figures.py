"""Figures: runtime per method (the paper's Figure 2) and utility over extended cycles (Figure 5)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402



def method_label(method: str) -> str:
    """A method's display label, as its file declares it (the bare name for an unregistered one)."""
    from unlearn_repro.methods import METHODS
    return METHODS.get(method).label if method in METHODS else method


def _save(fig, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)


def runtime_figure(rt: pd.DataFrame, out: str | Path, title: str) -> None:
    """Grouped bars: mean runtime (s, log scale) of each method on each data set, error bars = std."""
    datasets, methods = list(dict.fromkeys(rt["dataset"])), list(dict.fromkeys(rt["method"]))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(datasets), 3.6))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        sub = rt[rt["method"] == m].set_index("dataset").reindex(datasets)
        ax.bar([i + j * width for i in range(len(datasets))], sub["runtime_mean"], width,
               yerr=sub["runtime_std"], label=method_label(m), capsize=2)
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(datasets))], datasets)
    ax.set_yscale("log")
    ax.set_ylabel("runtime per cycle (s)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    _save(fig, out)


def cycles_figure(curves: pd.DataFrame, out: str | Path, title: str) -> None:
    """Utility after each unlearning cycle, mean ± std over seeds: accuracy (top row, the paper's
    Figure 5) and test-set NLL (bottom row, finer-grained for models near chance accuracy)."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.4), squeeze=False)
    for col, d in enumerate(datasets):
        sub = curves[curves["dataset"] == d]
        for row, (metric, scale, label) in enumerate((("accuracy", 100, "accuracy (%)"), ("test_nll", 1, "test NLL (nats/token)"))):
            ax = axes[row][col]
            for m, g in sub.groupby("method", sort=False):
                g = g.sort_values("n_forgotten")
                mean, std = scale * g[f"{metric}_mean"], scale * g[f"{metric}_std"]
                ax.plot(g["n_forgotten"], mean, marker="o", label=method_label(m))
                ax.fill_between(g["n_forgotten"], mean - std, mean + std, alpha=0.15)
            ax.set_title(f"{title}: {d}")
            ax.set_xlabel("samples unlearned")
            ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out)

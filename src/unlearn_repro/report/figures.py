"""Figures: runtime per method (the paper's Figure 2) and utility over extended cycles (Figure 5).

Every method is drawn in its own style from `report.style` (the same colour, marker, line style and hatch
in every figure of every study). Each function saves the PNG and returns the (closed) Figure, which tests
inspect."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from unlearn_repro.methods import METHODS
from unlearn_repro.report import style  # noqa: E402

# the rows of the extended-cycles figure: column stem, scale, axis label, name and unit in a "constant" note
CYCLE_METRICS = (
    ("accuracy", 100, "accuracy (%)", "accuracy", "%"),
    ("test_nll", 1, "test NLL (nats/token)", "test NLL", " nats/token"),
)


def method_label(method: str) -> str:
    """A method's display label, as its file declares it (the bare name for an unregistered one)."""
    return METHODS.get(method).label if method in METHODS else method


def _save(fig, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=style.DPI, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)


def _legend(fig, axes, n: int) -> None:
    """One legend for the whole figure, below the panels, one entry per method (first-drawn order)."""
    handles = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(n, 5))


def runtime_figure(rt: pd.DataFrame, out: str | Path, title: str):
    """Grouped bars: mean runtime (s, log scale) of each method on each data set, error bars = 95 % t interval
    over seeds.
    Returns the Figure (already saved and closed)."""
    datasets, methods = list(dict.fromkeys(rt["dataset"])), style.order(rt["method"])
    with style.context():
        fig, ax = plt.subplots(figsize=(2.4 + 0.35 * len(methods) * len(datasets), 3.8), layout="constrained")
        width = 0.8 / max(len(methods), 1)
        for j, m in enumerate(methods):
            sub = rt[rt["method"] == m].set_index("dataset").reindex(datasets)
            bars = ax.bar(
                [i + j * width for i in range(len(datasets))],
                sub["runtime_mean"],
                width,
                yerr=sub["runtime_half"].fillna(0.0),
                label=method_label(m),
                gid=m,
                error_kw={"ecolor": style.EDGE, "elinewidth": 0.8},
                **style.bar_style(m),
            )
            for patch in bars:
                patch.set_gid(m)
        ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(datasets))], datasets)
        ax.grid(axis="x", visible=False)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())  # 1, 10, 100 (and 2, 3, 4 over a short range)
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # rather than 2×10⁰
        ax.set_ylabel("runtime per cycle (s)")
        ax.set_title(title)
        _legend(fig, [ax], len(methods))
        _save(fig, out)
    return fig


def _constant(values) -> float | None:
    """The value of a series that never changes (NaN when it has no finite value), else None."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(v[0]) if np.allclose(v, v[0], rtol=1e-9, atol=1e-12) else None


def _flat(spec: tuple, value: float) -> str:
    """What a constant metric shows: "constant at X" (or "no data")."""
    _, scale, _, _, unit = spec
    return "no data" if np.isnan(value) else f"constant at {scale * value:.4g}{unit}"


def cycles_figure(curves: pd.DataFrame, out: str | Path, title: str):
    """Utility after each unlearning cycle, mean ± std over seeds: accuracy (top row, the paper's
    Figure 5) and test-set NLL (bottom row, finer-grained for models near chance accuracy); one column
    per data set. Returns the Figure (already saved and closed).

    No panel is drawn without signal: a row whose metric is constant over every method, cycle and data
    set of the figure (e.g. accuracy stuck at 0 on LAMBADA for tiny models) is dropped and the figure's
    title says which and why. A panel whose row carries signal elsewhere stays (the grid keeps its
    shape) but its title says "constant at X: no signal". If every row is constant, the first is kept,
    labelled the same way."""
    datasets = list(dict.fromkeys(curves["dataset"]))
    methods = style.order(curves["method"])
    rows, flat = [], []  # flat: (row, its constant value)
    for spec in CYCLE_METRICS:
        value = _constant(curves[f"{spec[0]}_mean"])
        if value is None:
            rows.append(spec)
        else:
            flat.append((spec, value))
    if not rows:  # nothing varies: keep one row (labelled) so the figure still shows the curves
        rows.append(flat.pop(0)[0])
    notes = [
        f"{spec[3]} row omitted: {_flat(spec, value)} for every method, cycle and data set (no signal)"
        for spec, value in flat
    ]

    with style.context():
        fig, axes = plt.subplots(
            len(rows),
            len(datasets),
            figsize=(4.2 * len(datasets), 1.2 + 3.0 * len(rows)),
            squeeze=False,
            layout="constrained",
        )
        for col, d in enumerate(datasets):
            sub = curves[curves["dataset"] == d]
            for row, spec in enumerate(rows):
                metric, scale, label = spec[:3]
                ax = axes[row][col]
                for m in methods:
                    g = sub[sub["method"] == m].sort_values("n_forgotten")
                    if g.empty:
                        continue
                    mean, std = scale * g[f"{metric}_mean"], scale * g[f"{metric}_half"].fillna(0.0)
                    kw = style.line_kwargs(m)
                    ax.plot(g["n_forgotten"], mean, label=method_label(m), gid=m, **kw)
                    ax.fill_between(
                        g["n_forgotten"], mean - std, mean + std, color=kw["color"], alpha=0.1, linewidth=0
                    )
                value = _constant(sub[f"{metric}_mean"])
                ax.set_title(d if value is None else f"{d}\n{spec[3]} {_flat(spec, value)}: no signal")
                ax.set_xlabel("samples unlearned")
                ax.set_ylabel(label)
        fig.suptitle(title + "".join(f"\n{n}" for n in notes))
        _legend(fig, axes, len(methods))
        _save(fig, out)
    return fig

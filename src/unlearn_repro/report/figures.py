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
from matplotlib.ticker import FuncFormatter  # noqa: E402

from unlearn_repro.report import style  # noqa: E402

# the rows of the extended-cycles figure: column stem, scale, axis label, name and unit in a "constant" note
CYCLE_METRICS = (
    ("accuracy", 100, "accuracy (%)", "accuracy", "%"),
    ("test_nll", 1, "test NLL (nats/token)", "test NLL", " nats/token"),
)


def method_label(method: str) -> str:
    """A method's display label, as its file declares it (the bare name for an unregistered one). The
    registry (torch, transformers) is imported at first use: the DAG build imports this module, never this."""
    from unlearn_repro.methods import METHODS

    return METHODS.get(method).label if method in METHODS else method


def _save(fig, out: str | Path, palette: bool = False) -> None:
    """Written whole or not at all. palette: 256 colours (a third of the bytes, the same look for line and
    marker plots; the published set has a size limit, docs/publishing.md)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=style.DPI, bbox_inches="tight")
    plt.close(fig)
    if palette:
        from PIL import Image

        with Image.open(tmp) as im:
            im.convert("RGB").quantize(colors=256).save(tmp, optimize=True)
    tmp.replace(out)


def log_ticks(axis) -> None:
    """Plain numbers on a log axis (0.1, 50, 200 rather than 10⁻¹, 5 × 10¹); of the minor ticks only 2× and
    5× a power of ten are labelled, so that 60, 70, 80, 90 do not collide."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:e}"[0] in "25" else ""))


def errors(half) -> np.ndarray | None:
    """Error-bar half-widths, or None where no value has an interval (one seed: no bar, not a zero one)."""
    h = np.asarray(half, dtype=float)
    return np.nan_to_num(h) if np.isfinite(h).any() else None


def band(ax, x, mean, half, color, gid=None):
    """Shade mean ± half where the seeds give an interval; nothing for one seed (no spread to show)."""
    h = np.asarray(half, dtype=float)
    if not (np.isfinite(h) & (h > 0)).any():
        return None
    h, mean = np.nan_to_num(h), np.asarray(mean, dtype=float)
    return ax.fill_between(x, mean - h, mean + h, color=color, alpha=0.15, linewidth=0, gid=gid)


LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": style.BACKGROUND, "edgecolor": "none", "alpha": 0.8}
OFFSETS = ((4, 4), (4, -11), (-4, 4), (-4, -11), (4, 14), (4, -21))  # points, tried in turn


def point_labels(ax, x, y, texts, prefix: str = "", gid: str = "label", near_px: float = 14) -> None:
    """Label points so that no two labels overlap: points closer than `near_px` share one label
    ("ε = 1, 2"), and each label takes the first offset whose box overlaps no earlier label of the axes.
    Call it once the figure is laid out (`fig.draw_without_rendering()`, once for all its axes), so that
    pixel distances hold when saved; the labels stay out of the layout, which they would otherwise move."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xy = ax.transData.transform(np.column_stack([x, y])) if len(x) else np.empty((0, 2))
    groups: list[list[int]] = []
    for i, p in enumerate(xy):
        home = next((g for g in groups if np.hypot(*(xy[g[0]] - p)) < near_px), None)
        home.append(i) if home is not None else groups.append([i])
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for g in groups:
        text = prefix + ", ".join(texts[i] for i in g)
        for dx, dy in OFFSETS:
            t = ax.annotate(
                text,
                (x[g[0]], y[g[0]]),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=7.5,
                ha="left" if dx > 0 else "right",
                gid=gid,
                bbox=LABEL_BOX,
            )
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in boxes) or (dx, dy) == OFFSETS[-1]:
                break
            t.remove()
        boxes.append(box)


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
                yerr=errors(sub["runtime_half"]),
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
        log_ticks(ax.yaxis)
        ax.set_ylabel("runtime per cycle (s, log scale)")
        ax.set_xlabel("task data set")
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
    """Utility after each unlearning cycle, mean and its 95 % t band over seeds (none for one seed):
    accuracy (top row, the paper's Figure 5) and test-set NLL (bottom row, finer-grained for models near
    chance accuracy); one column per data set. Returns the Figure (already saved and closed).

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
                    mean, half = scale * g[f"{metric}_mean"], scale * g[f"{metric}_half"]
                    kw = style.line_kwargs(m)
                    ax.plot(g["n_forgotten"], mean, label=method_label(m), gid=m, **kw)
                    band(ax, g["n_forgotten"], mean, half, kw["color"], gid=m)
                value = _constant(sub[f"{metric}_mean"])
                ax.set_title(d if value is None else f"{d}\n{spec[3]} {_flat(spec, value)}: no signal")
                ax.set_xlabel("samples unlearned")
                ax.set_ylabel(label)
        fig.suptitle(title + "".join(f"\n{n}" for n in notes))
        _legend(fig, axes, len(methods))
        _save(fig, out)
    return fig

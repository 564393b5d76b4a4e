"""The cross-paper benchmark's figures (issue 25): a Pareto figure per forget task, one overview figure of
every entry's rank on every task. They draw what report/crossbench.py computed; one colour per entry as in
every other figure (report/style.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_repro.report import figures, style


def pareto(titles: tuple, grids: dict, picks: dict, bound, by_factor: bool, styles: dict, out: Path) -> None:
    """Every grid point's mean (efficacy against utility loss; `by_factor`: against the step factor, where
    a task measures no utility), one colour per entry, its selected point ringed, the task's bound dashed.
    titles: (title, efficacy label, utility label); grids: entry -> its grid means (factor, efficacy,
    utility_loss); picks: entry -> its selected factor; styles: entry -> (style name, label), legend order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title, ylab, xlab = titles
    with style.context():
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        if not grids:
            ax.text(0.5, 0.5, "no entry ran on this task", ha="center", transform=ax.transAxes)
        for name, (key, label) in styles.items():
            g = grids.get(name)
            if g is None or g.empty:
                continue
            x = g["factor"] if by_factor else g["utility_loss"]
            ax.plot(x, g["efficacy"], label=label, **style.line_kwargs(key))
            pick = picks.get(name, math.nan)
            if math.isfinite(pick):
                s = g[g["factor"] == pick]
                sx = s["factor"] if by_factor else s["utility_loss"]
                ax.plot(sx, s["efficacy"], "o", ms=11, mfc="none", color=style.method_style(key)["color"])
        if bound is not None:
            ax.axvline(bound, color=style.BEFORE, linestyle="--", label=f"bound {bound:g}")
        if by_factor:
            ax.set_xscale("log", base=2)
        ax.set(
            title=f"{title}: every grid point (mean over replicates), selected ringed",
            xlabel=xlab,
            ylabel=ylab,
        )
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
        fig.tight_layout()
        figures._save(fig, out, palette=True)


def overview(ranks: pd.DataFrame, titles: dict, out: Path) -> None:
    """Entries x tasks: each cell the entry's rank on that task's leaderboard (grey: cannot run there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in ranks.columns if c not in ("entry", "mean_relative_rank")]
    vals = np.array([[np.nan if v == "n/a" else float(v) for v in ranks[c]] for c in cols]).T
    with style.context():
        fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3, 0.32 * len(ranks) + 1.4))
        cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad=style.BEFORE)
        im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, aspect="auto")
        for (i, j), v in np.ndenumerate(vals):
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(cols)), [titles[c] for c in cols], rotation=20, ha="right")
        ax.set_yticks(range(len(ranks)), list(ranks["entry"]))
        ax.grid(False)
        fig.colorbar(im, ax=ax, label="rank on the task (1 = best)")
        ax.set_title("Cross-paper benchmark: rank of every entry on every forget task")
        fig.tight_layout()
        figures._save(fig, out, palette=True)

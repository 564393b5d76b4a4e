"""One look for every figure of every study: each method keeps its colour, marker, line style and bar
hatch wherever it is drawn, whichever other methods share the figure.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable under the
common colour-vision deficiencies, less its yellow (unreadable on white), plus two of Paul Tol's "muted"
colours (olive, wine). Retraining, the reference, is black. No method is grey: light grey (`BEFORE`) is
the model before unlearning in every figure, white the background. Methods whose curves tend to coincide
get different line styles, so a line drawn over another stays visible: gradient ascent (solid) and Fisher
Removal (dashed: with a near-identity Fisher it is gradient ascent with another step), retraining (solid)
and finetuning (dashed), gradient difference (dash-dot) and inverted hinge (dotted), NPO (dashed) and
gradient ascent. Every method also has its own marker, so no pair is told apart by colour alone.

A method this table does not know (a user's new file under `methods/`) gets a style drawn from a SHA-256
of its name, stable across processes and machines (Python's `hash()` is salted per process), with a colour
and a marker no known method uses.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

# Okabe-Ito, in its usual order, a grey, and Paul Tol's olive and wine
BLACK, ORANGE, SKY_BLUE, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
YELLOW, BLUE, VERMILLION, PURPLE = "#F0E442", "#0072B2", "#D55E00", "#CC79A7"
GREY, OLIVE, WINE = "#999999", "#999933", "#882255"
PALETTE = (BLACK, ORANGE, SKY_BLUE, GREEN, BLUE, VERMILLION, PURPLE, OLIVE, WINE)
BEFORE = "#BBBBBB"  # the model before unlearning (fills, reference lines); no method's colour
BACKGROUND = "#FFFFFF"

SOLID, DASHED, DOTTED, DASHDOT = "-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1.5, 2))
LONGDASH, DASHDOTDOT = (0, (9, 3)), (0, (6, 2, 1.5, 2, 1.5, 2))
LINESTYLES = (SOLID, DASHED, DOTTED, DASHDOT, LONGDASH, DASHDOTDOT)

#                       colour      marker linestyle  hatch
KNOWN: dict[str, tuple] = {
    "retrain": (BLACK, "o", SOLID, ""),
    "finetune": (OLIVE, "s", DASHED, ".."),
    "gradient_ascent": (VERMILLION, "^", SOLID, ""),
    "fisher_removal": (BLUE, "D", DASHED, "//"),
    "fisher_forgetting": (GREEN, "v", DASHDOT, "\\\\"),
    "gradient_difference": (ORANGE, "P", DASHDOT, "xx"),
    "inverted_hinge": (PURPLE, "X", DOTTED, "--"),
    "npo": (SKY_BLUE, "h", DASHED, "++"),
    "preference": (WINE, "*", LONGDASH, "oo"),
}
# A loss trained through an adapter, as the FLoRA paper's TDEC study runs it (its Table 1, Figures 3 and 4:
# LoRA + GD, LoRA + IHL, FLoRA + GD, FLoRA + IHL), is a method of its own there, drawn beside GA and GD:
# the adapter changes what unlearning does, so each has its own colour and marker (`adapted` names it), none
# a known method's (a benchmark across the papers draws them all in one figure): three of Paul Tol's muted
# colours and his dark green.
ADAPTED: dict[str, tuple] = {
    "lora+gradient_difference": ("#332288", "<", DASHDOT, "xx"),  # indigo
    "lora+inverted_hinge": ("#44AA99", ">", DOTTED, "--"),  # teal
    "flora+gradient_difference": ("#CC6677", "d", DASHDOTDOT, "//"),  # rose
    "flora+inverted_hinge": ("#117733", "p", LONGDASH, ".."),  # dark green
}
# A loss trained with the Sophia optimizer (SOUL's second-order unlearning; the cross-paper benchmark draws
# it beside the same loss with its own optimizer): the loss's colour and hatch, an "S" marker and a
# dash-dot-dot line, so a method keeps one colour everywhere and its Sophia run is told apart by marker
# and line.
SOPHIA: dict[str, tuple] = {
    f"sophia+{m}": (KNOWN[m][0], "$S$", DASHDOTDOT, KNOWN[m][3])
    for m in ("gradient_ascent", "gradient_difference", "inverted_hinge", "npo", "preference")
}
# what is drawn beside the methods but is none of them: the privacy study's DP-SGD (dark grey, drawn with
# an open marker) and the memorization study's "none" (no unlearning: the model before, in BEFORE's grey)
OTHERS: dict[str, tuple] = {"dp_sgd": ("#555555", "o", SOLID, ""), "none": (BEFORE, "o", SOLID, "")}
# colours, markers and hatches for methods outside KNOWN. The colours are the rest of Paul Tol's colour-blind-
# safe "muted" scheme, leaving out its near twins of the colours above (ADAPTED shares them); no marker is a
# known or adapted method's, so an unknown method never looks like one of them.
FALLBACK_COLORS = ("#332288", "#44AA99", "#CC6677")  # indigo, teal, rose
FALLBACK_MARKERS = ("8", "H", "1", "2", "3", "4", "+", "x")
FALLBACK_HATCHES = ("", "//", "\\\\", "..", "xx", "--", "++", "||")

EDGE = "#333333"  # bar edges, hatch lines and marker edges: keeps the sky-blue readable on white
DPI = 150
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 11,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 5.5,
    "legend.frameon": False,
    "hatch.linewidth": 0.6,
    "errorbar.capsize": 2,
}


def _digest(name: str) -> bytes:
    return hashlib.sha256(name.encode("utf-8")).digest()


def _row(name: str) -> tuple:
    for table in (KNOWN, ADAPTED, SOPHIA, OTHERS):
        if name in table:
            return table[name]
    h = _digest(name)
    return (
        FALLBACK_COLORS[h[0] % len(FALLBACK_COLORS)],
        FALLBACK_MARKERS[h[1] % len(FALLBACK_MARKERS)],
        LINESTYLES[h[2] % len(LINESTYLES)],
        FALLBACK_HATCHES[h[3] % len(FALLBACK_HATCHES)],
    )


def adapted(method: str, adapter: str) -> str:
    """The style name of `method` trained through `adapter` (full, lora, flora): the method itself for
    full-parameter training, else `<adapter>+<method>` (ADAPTED's, or a fallback style for another pair)."""
    return method if adapter == "full" else f"{adapter}+{method}"


def order(methods) -> list[str]:
    """Methods in one order for every legend: the known ones as listed above, then the adapted ones and the
    Sophia ones as listed above, then the others as given."""
    methods = list(dict.fromkeys(methods))
    listed = [*KNOWN, *ADAPTED, *SOPHIA]
    return [m for m in listed if m in methods] + [m for m in methods if m not in listed]


def method_style(name: str) -> dict:
    """Line style of a method: `color`, `marker`, `linestyle` (pass straight to `Axes.plot`)."""
    color, marker, linestyle, _ = _row(name)
    return {"color": color, "marker": marker, "linestyle": linestyle}


def line_kwargs(name: str) -> dict:
    """`method_style` plus what keeps coinciding lines apart (for `Axes.plot`): solid lines are drawn
    wider and underneath, broken ones thinner and on top, so a solid line shows at the edges and through
    the gaps of any broken line drawn over it."""
    s = method_style(name)
    rank = LINESTYLES.index(s["linestyle"])  # 0 = solid
    return {
        **s,
        "linewidth": 2.4 if rank == 0 else 1.5,
        "zorder": 2 + 0.1 * rank,
        "markeredgecolor": EDGE,
        "markeredgewidth": 0.5,
    }


def bar_style(name: str) -> dict:
    """Bar style of a method: its colour, a hatch (a second cue besides colour) and the shared edge."""
    color, _, _, hatch = _row(name)
    return {"color": color, "hatch": hatch, "edgecolor": EDGE, "linewidth": 0.6}


@contextmanager
def context():
    """Figures drawn inside share fonts, grid and dpi, without touching the global rcParams."""
    # pyplot only when drawing: the report modules pick the Agg backend first, a notebook keeps its own
    import matplotlib.pyplot as plt

    with plt.rc_context(RC):
        yield


def apply() -> None:
    """Set the shared fonts, grid and dpi globally (for notebooks and ad-hoc plots)."""
    # only when called: the report modules pick the Agg backend first, a notebook keeps its own
    import matplotlib as mpl

    mpl.rcParams.update(RC)

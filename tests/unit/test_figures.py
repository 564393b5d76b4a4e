"""Figures: one style per method across figures, and no panel without signal."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba

from unlearn_repro.methods import METHODS
from unlearn_repro.report import style
from unlearn_repro.report.figures import cycles_figure, method_label, runtime_figure
from unlearn_repro.report.style import method_style

KNOWN = [
    "retrain",
    "finetune",
    "gradient_ascent",
    "fisher_removal",
    "fisher_forgetting",
    "gradient_difference",
    "inverted_hinge",
    "npo",
    "preference",
]


def test_known_methods_are_registered():
    assert set(KNOWN) <= set(METHODS.names())
    assert set(KNOWN) == set(style.KNOWN)


def test_method_style_stable_and_distinct():
    styles = {m: method_style(m) for m in KNOWN}
    assert all(set(s) == {"color", "marker", "linestyle"} for s in styles.values())
    assert styles == {m: method_style(m) for m in reversed(KNOWN)}  # independent of call order
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == len(KNOWN)
    # stronger: neither colours nor markers repeat among the known methods
    assert len({to_rgba(s["color"]) for s in styles.values()}) == len(KNOWN)
    assert len({s["marker"] for s in styles.values()}) == len(KNOWN)
    # curves that tend to coincide are told apart by their line style
    for a, b in [
        ("gradient_ascent", "fisher_removal"),
        ("retrain", "finetune"),
        ("gradient_difference", "inverted_hinge"),
        ("gradient_ascent", "npo"),
    ]:
        assert styles[a]["linestyle"] != styles[b]["linestyle"], (a, b)


def test_unknown_method_style_is_deterministic_across_processes():
    name = "my_brand_new_method"
    here = method_style(name)
    assert here == method_style(name)
    assert here["marker"] not in {method_style(m)["marker"] for m in KNOWN}  # never mistaken for a known one
    assert to_rgba(here["color"]) not in {to_rgba(method_style(m)["color"]) for m in KNOWN}
    code = f"from unlearn_repro.report.style import method_style; print(repr(method_style({name!r})))"
    for seed in ("0", "12345"):  # Python's hash() would differ between these
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        assert out == repr(here)
    # different unknown names spread over the fallback styles
    assert len({tuple(map(str, method_style(f"method_{i}").values())) for i in range(20)}) > 10


def _runtime(methods, datasets=("lambada", "piqa")):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        [
            {
                "dataset": d,
                "method": m,
                "runtime_mean": float(rng.uniform(1, 50)),
                "runtime_half": float(rng.uniform(0, 1)),
            }
            for d in datasets
            for m in methods
        ]
    )


def _curves(methods, datasets=("lambada", "piqa"), flat_accuracy=(), flat_nll=()):
    """Synthetic extended-cycles table (main.extended_cycles' columns) for one model."""
    rows = []
    for d in datasets:
        for j, m in enumerate(methods):
            for c in range(4):
                acc = 0.0 if d in flat_accuracy else 0.6 - 0.01 * j * c
                nll = 4.0 if d in flat_nll else 4.4 + 0.1 * j * c
                rows.append(
                    {
                        "model": "tiny-gpt-neo",
                        "dataset": d,
                        "method": m,
                        "cycle": c,
                        "n_forgotten": 16 * c,
                        "accuracy_mean": acc,
                        "accuracy_half": 0.01,
                        "test_nll_mean": nll,
                        "test_nll_half": 0.05,
                        "delta_acc_mean": 0.0,
                    }
                )
    return pd.DataFrame(rows)


def _lines(ax, method):
    return [ln for ln in ax.get_lines() if ln.get_gid() == method]


def test_runtime_figure_uses_method_colours(tmp_path):
    methods = KNOWN + ["my_brand_new_method"]
    out = tmp_path / "figs" / "runtime.png"
    fig = runtime_figure(_runtime(methods), out, "Runtime per cycle")
    assert out.read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    for m in methods:
        bars = [p for p in ax.patches if p.get_gid() == m]
        assert len(bars) == 2, m  # one per data set
        assert all(p.get_facecolor() == to_rgba(method_style(m)["color"]) for p in bars), m
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [method_label(m) for m in methods]


def test_colour_does_not_depend_on_which_methods_are_drawn(tmp_path):
    figs = [
        cycles_figure(_curves(ms), tmp_path / f"c{i}.png", "m")
        for i, ms in enumerate((["npo", "retrain"], ["retrain", "finetune", "gradient_ascent", "npo"]))
    ]
    colours = [_lines(f.axes[0], "npo")[0].get_color() for f in figs]
    assert colours[0] == colours[1] == method_style("npo")["color"]
    rt = runtime_figure(_runtime(["npo"]), tmp_path / "rt.png", "rt")
    assert [p.get_facecolor() for p in rt.axes[0].patches if p.get_gid() == "npo"][0] == to_rgba(colours[0])


def test_cycles_figure_uses_method_styles(tmp_path):
    methods = KNOWN + ["my_brand_new_method"]
    out = tmp_path / "cycles.png"
    fig = cycles_figure(_curves(methods), out, "tiny-gpt-neo")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) == 4  # accuracy and NLL rows, two data sets
    for ax in fig.axes:
        for m in methods:
            (line,) = _lines(ax, m)
            s = method_style(m)
            assert line.get_color() == s["color"] and line.get_marker() == s["marker"], m
            assert (line.get_linestyle() == "-") == (s["linestyle"] == "-"), m
            assert line.get_label() == method_label(m)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [method_label(m) for m in methods]  # one legend entry per method, not per panel


def test_cycles_figure_drops_a_constant_row(tmp_path):
    curves = _curves(["retrain", "gradient_ascent"], flat_accuracy=("lambada", "piqa"))
    fig = cycles_figure(curves, tmp_path / "c.png", "tiny-gpt-neo")
    assert len(fig.axes) == 2  # the accuracy row is gone
    assert {ax.get_ylabel() for ax in fig.axes} == {"test NLL (nats/token)"}
    title = fig.get_suptitle()
    assert "accuracy row omitted" in title and "constant at 0%" in title and "no signal" in title
    assert all(ax.get_lines() for ax in fig.axes)


def test_cycles_figure_labels_a_constant_panel_whose_row_has_signal(tmp_path):
    curves = _curves(["retrain", "gradient_ascent"], flat_accuracy=("lambada",))
    fig = cycles_figure(curves, tmp_path / "c.png", "tiny-gpt-neo")
    assert len(fig.axes) == 4
    titles = {ax.get_title() for ax in fig.axes if ax.get_ylabel() == "accuracy (%)"}
    assert titles == {"lambada\naccuracy constant at 0%: no signal", "piqa"}
    assert "omitted" not in fig.get_suptitle()


def test_cycles_figure_all_constant_keeps_one_labelled_row(tmp_path):
    flat = ("lambada", "piqa")
    curves = _curves(["retrain", "npo"], flat_accuracy=flat, flat_nll=flat)
    fig = cycles_figure(curves, tmp_path / "c.png", "tiny-gpt-neo")
    assert len(fig.axes) == 2 and all(ax.get_lines() for ax in fig.axes)
    assert all("constant at 0%: no signal" in ax.get_title() for ax in fig.axes)
    assert "test NLL row omitted: constant at 4 nats/token" in fig.get_suptitle()


def test_style_context_leaves_global_rcparams_alone():
    import matplotlib as mpl

    before = dict(mpl.rcParams)
    with style.context():
        assert mpl.rcParams["savefig.dpi"] == style.DPI
    assert dict(mpl.rcParams) == before


def test_legends_list_methods_in_one_order(tmp_path):
    shuffled = ["zz_user_method", "npo", "fisher_forgetting", "retrain"]  # e.g. main.py sorts curves by name
    assert style.order(shuffled) == ["retrain", "fisher_forgetting", "npo", "zz_user_method"]
    expected = [method_label(m) for m in style.order(shuffled)]
    fig = cycles_figure(_curves(shuffled), tmp_path / "c.png", "m")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == expected
    fig = runtime_figure(_runtime(shuffled), tmp_path / "r.png", "r")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == expected

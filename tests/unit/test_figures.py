"""Figures: one style per method across figures, no panel without signal, every figure of the report drawn
on hand-made data and checked for what a reader needs, and every caption rendered as the report does."""

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.colors import to_rgb, to_rgba
from matplotlib.lines import Line2D
from scipy import stats

from unlearn_repro.methods import METHODS
from unlearn_repro.report import ablations, discussions, memorization, privacy, style, tdec, tofu
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


def test_adapted_methods_look_like_no_other_method():
    """LoRA / FLoRA + a loss (TDEC) share no colour or marker with a known method (a cross-paper figure draws
    them together), and an unknown method's fallback marker is none of theirs."""
    known = [method_style(m) for m in KNOWN]
    adapted = [method_style(m) for m in style.ADAPTED]
    assert len({to_rgba(s["color"]) for s in known + adapted}) == len(known) + len(adapted)
    assert len({s["marker"] for s in known + adapted}) == len(known) + len(adapted)
    assert not set(style.FALLBACK_MARKERS) & {s["marker"] for s in known + adapted}


def test_a_loss_with_sophia_keeps_its_colour_and_is_told_apart_by_marker_and_line():
    """SOUL's entries (a loss trained with Sophia) in the cross-paper benchmark's figures: the loss's colour,
    a marker and line no known or adapted method has."""
    others = [method_style(m) for m in [*KNOWN, *style.ADAPTED]]
    for name in style.SOPHIA:
        s, base = method_style(name), method_style(name.removeprefix("sophia+"))
        assert s["color"] == base["color"] and s["linestyle"] != base["linestyle"]
        assert s["marker"] not in {o["marker"] for o in others} | set(style.FALLBACK_MARKERS)
    assert style.order(["other", "sophia+npo", "npo"]) == ["npo", "sophia+npo", "other"]


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


# --------------------------------------------------------------- every figure of the report, hand-made data
NOT_METHODS = {"before", "kept", "epsilon", "step", "label"}  # gids of artists that are no method's


@pytest.fixture(autouse=True)
def _low_dpi(monkeypatch):
    """Draw at a low dpi: the tests read artists, not pixels, and stay fast."""
    monkeypatch.setattr(style, "DPI", 40)
    monkeypatch.setitem(style.RC, "figure.dpi", 40)
    monkeypatch.setitem(style.RC, "savefig.dpi", 40)


def _tofu_curves(seeds=3):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"method": m, "kind": k, "seed": s, "epoch": e, "forget_acc": 0.9 - 0.1 * e + rng.normal(0, 0.02),
         "retain_acc": 0.8 + rng.normal(0, 0.02)}
        for m in TOFU_METHODS for k in ("FO", "SO") for s in range(seeds) for e in range(4)
    )  # fmt: skip


def _tdec_sets(n, rng):
    return [
        [{"reasoning": 0.3 + rng.normal(0, 0.02), "ppl": 40 * (1 + k), "forgotten": i != 1} for i in range(3)]
        for k in range(n)
    ]


def _privacy_points(tmp):
    """Two data sets x two models; accuracy flat (0) on lambada, varying on piqa; DP-SGD's ε = 4 and 8
    at nearly one point (their labels would collide)."""
    files = []
    for d in ("lambada", "piqa"):
        for model in ("tiny-gpt-neo", "tiny-opt"):
            pts = [
                {"method": "dp_sgd", "value": e, "epsilon": e, "epsilon_spent": e, "exposure": x,
                 "accuracy": 0.0 if d == "lambada" else a, "test_nll": nll}
                for e, x, a, nll in ((1, 1.2, 0.4, 5.6), (2, 1.4, 0.45, 5.5), (4, 1.6, 0.5, 5.4),
                                     (8, 1.601, 0.5, 5.401), (math.inf, 2.0, 0.55, 5.0))
            ]  # fmt: skip
            pts += [
                {"method": m, "value": v, "exposure": 2 - 0.2 * k, "diverged": False,
                 "accuracy": 0.0 if d == "lambada" else 0.5 - 0.05 * k, "test_nll": 5.3 + 0.1 * k + 0.05 * j}
                for j, m in enumerate(("gradient_ascent", "npo", "preference"))
                for k, v in enumerate((1e-5, 1e-4))
            ]  # fmt: skip
            f = tmp / f"{d}_{model}.json"
            f.write_text(json.dumps({"dataset": d, "model": model, "seed": 0, "points": pts}))
            files.append(f)
    return privacy.load_points(files)


def _ks(methods, rng):
    out = {}
    for k, m in enumerate(methods):
        before = rng.normal(3, 1, 100)
        after = before + rng.normal(0.1 * k, 0.5, 100)
        out[m] = (before, after, stats.ks_2samp(before, after))
    return out


def _memorized(seeds=3):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"dataset": c, "family": f, "method": m, "seed": s, "memorized": int(rng.integers(0, 30)),
         "n_targets": 32}
        for c in ("mtsamples", "enron") for f in ("neo", "opt") for m in ["none", *MEM_METHODS]
        for s in range(seeds)
    )  # fmt: skip


def _ablation(seeds=3):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"method": m, "value": v, "seed": s, "efficacy": 0.1 * k + rng.normal(0, 0.01),
         "utility_nll": -0.05 * k + rng.normal(0, 0.01), "retain_accuracy": 0.5 + rng.normal(0, 0.01)}
        for m in ("fisher_removal", "gradient_ascent") for k, v in enumerate((1e-5, 1e-4, 1e-3))
        for s in range(seeds)
    )  # fmt: skip


TOFU_METHODS = ["gradient_ascent", "gradient_difference", "preference", "npo"]
MEM_METHODS = ["retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting"]
TDEC_CONFIGS = ["gradient_ascent", "gradient_difference", "inverted_hinge"]
# Figure 4: the FLoRA paper's four adapter methods, as report.tdec.config_style names them
TDEC_ADAPTED = {
    "lora+gradient_difference": "LoRA + GD",
    "lora+inverted_hinge": "LoRA + IHL",
    "flora+gradient_difference": "FLoRA + GD",
    "flora+inverted_hinge": "FLoRA + IHL",
}


def _render_all(tmp) -> dict:
    """Every figure function of the report on small hand-made inputs: {name: (Figure, the paper's figure)}."""
    rng = np.random.default_rng(0)
    snaps = {
        m: {"weights": rng.normal(0, 0.02 * (1 + k / 10), 2000), "layer": "h.1"} for k, m in enumerate(KNOWN)
    }
    cfg = SimpleNamespace(discussions=SimpleNamespace(bins=40))
    onion = {"before": rng.normal(3, 1, 80), "threshold": 5.0}
    onion["after"] = onion["before"] + rng.normal(0.2, 0.3, 80)
    row = {"seed": "0", "rose": 50, "kept": 80, "crossed": 1, "wilcoxon_p": 0.01}
    models, before = ["tiny-gpt-neo"], {"tiny-gpt-neo": {"reasoning": 0.33, "ppl": 40.0}}
    labels = ["GA (full)", "GD (full)", "LoRA + IHL"]
    return {
        "runtime": (
            runtime_figure(_runtime(KNOWN), tmp / "rt.png", "Paper Figure 2: runtime, m"),
            "Figure 2",
        ),
        "cycles": (cycles_figure(_curves(KNOWN), tmp / "cy.png", "Paper Figure 5: utility, m"), "Figure 5"),
        "tofu": (tofu.figure1(_tofu_curves(), TOFU_METHODS, tmp / "f1.png"), "SOUL Figure 1"),
        "tdec3": (
            tdec._utility_panels(
                tmp / "f3.png",
                models,
                {"tiny-gpt-neo": [[(m, sets)] for m, sets in zip(TDEC_CONFIGS, _tdec_sets(3, rng))]},
                before,
                tdec.figure3_title(17, 3),
                labels,
                dict(zip(TDEC_CONFIGS, labels)),
            ),
            "FLoRA paper Figure 3",
        ),  # fmt: skip
        "tdec4": (
            tdec._utility_panels(
                tmp / "f4.png",
                models,
                {"tiny-gpt-neo": [list(zip(TDEC_ADAPTED, _tdec_sets(4, rng))) for _ in ("QV", "FFN")]},
                before,
                tdec.figure4_title(list(TDEC_ADAPTED.values()), 2, 17, 3),
                ["QV", "FFN"],
                TDEC_ADAPTED,
                "adapter target modules",
            ),
            "FLoRA paper Figure 4",
        ),  # fmt: skip
        "privacy": (
            privacy.figure(
                _privacy_points(tmp), tmp / "pu.png", {"accuracy": (2 / 24, "2 of 24 test samples")}
            ),
            "Paper Figure 3",
        ),
        "weights": (
            discussions._weights_figure(cfg, snaps, {m: 0.1 for m in KNOWN}, tmp / "w.png", "0"),
            "Paper Figure 4",
        ),
        "exposure": (discussions._exposure_figure(_ks(KNOWN, rng), tmp / "e.png", "0"), "Paper Figure 7"),
        "onion": (discussions._onion_figure(onion, row, tmp / "o.png"), "Paper Figure 6"),
        "memorized": (memorization.figure(_memorized(), MEM_METHODS, tmp / "m.png"), "Paper Table 8"),
        "ablation": (
            ablations.figure(_ablation(), ablations.OBJECTIVES["newton"], "removal", tmp / "a.png"),
            "issue 21",
        ),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(style, "DPI", 40)
    mp.setitem(style.RC, "figure.dpi", 40)
    mp.setitem(style.RC, "savefig.dpi", 40)
    try:
        yield _render_all(tmp_path_factory.mktemp("figures"))
    finally:
        mp.undo()


def _rgb(artist):
    if isinstance(artist, Line2D):
        return to_rgb(artist.get_color())
    if isinstance(artist, Collection):  # a band (filled) or error bars (lines)
        face = artist.get_facecolor()
        return to_rgb(face[0] if len(face) else artist.get_edgecolor()[0])
    return to_rgb(artist.get_facecolor() if artist.get_fill() else artist.get_edgecolor())


def _method_artists(fig):
    """(method, artist) for every artist drawn for a method (its gid names the method)."""
    for ax in fig.axes:
        for a in ax.lines + ax.patches + ax.collections:
            if a.get_gid() and a.get_gid() not in NOT_METHODS:
                yield a.get_gid(), a


def _legend_labels(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [[t.get_text() for t in lg.get_texts()] for lg in legends]


def test_every_figure_is_saved_labelled_and_names_its_paper_figure(rendered, tmp_path):
    assert len(list(tmp_path.parent.glob("figures*/*.png"))) >= len(rendered)
    for name, (fig, paper) in rendered.items():
        assert paper in (fig.get_suptitle() or fig.axes[0].get_title()), name
        for ax in fig.axes:
            shared = ax.get_shared_y_axes().get_siblings(ax)  # a shared y axis is labelled once
            assert ax.get_xlabel().strip() and any(a.get_ylabel().strip() for a in shared), (
                name,
                ax.get_title(),
            )


def test_a_method_has_one_colour_in_every_figure_never_that_of_before_or_the_background(rendered):
    seen = {}
    for name, (fig, _) in rendered.items():
        for method, artist in _method_artists(fig):
            seen.setdefault(method, set()).add(_rgb(artist))
            assert _rgb(artist) == to_rgb(method_style(method)["color"]), (name, method)
    assert {"finetune", "preference", "retrain", "dp_sgd", "none"} <= set(seen)
    for method, colours in seen.items():
        assert len(colours) == 1, method
        if method != "none":  # "No unlearning" is the model before: it is drawn in before's grey
            assert colours.isdisjoint({to_rgb(style.BEFORE), to_rgb(style.BACKGROUND)}), method
    assert to_rgb(style.BEFORE) not in {to_rgb(method_style(m)["color"]) for m in KNOWN}
    assert to_rgb(style.YELLOW) not in {to_rgb(method_style(m)["color"]) for m in KNOWN}


def test_no_legend_repeats_an_entry(rendered):
    for name, (fig, _) in rendered.items():
        for labels in _legend_labels(fig):
            assert labels and len(labels) == len(set(labels)), (name, labels)


def test_exposure_histograms_draw_before_in_light_grey_apart_from_finetuning(rendered):
    fig, _ = rendered["exposure"]
    before = {_rgb(p) for ax in fig.axes for p in ax.patches if p.get_gid() == "before"}
    assert before == {to_rgb(style.BEFORE)}
    assert to_rgb(method_style("finetune")["color"]) not in before


@pytest.mark.parametrize("name", ["weights", "exposure"])
def test_many_panels_are_laid_out_as_a_grid(rendered, name):
    fig, _ = rendered[name]
    assert len(fig.axes) == len(KNOWN) - (name == "weights")  # weights: retraining is every panel's reference
    columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes}
    assert len(columns) <= 3 and len(rows) >= 3


def test_tdec_figures_join_no_configurations_and_take_their_counts_from_the_run(rendered):
    fig, _ = rendered["tdec3"]
    assert "of 17 TDEC rows" in fig.get_suptitle() and "3 forget sets" in fig.get_suptitle()
    assert "32" not in fig.get_suptitle()
    for ax in fig.axes:
        joined = [ln for ln in ax.lines if len(ln.get_xdata()) > 1 and ln.get_gid() != "before"]
        assert joined == [], ax.get_ylabel()  # a marker per set, a bar per configuration: no line along x
        assert len([ln for ln in ax.lines if ln.get_gid() == "before"]) == 1


def test_tdec_figure4_draws_the_paper_s_four_methods_on_each_set_of_target_modules(rendered):
    """The FLoRA paper's Figure 4: LoRA + GD, LoRA + IHL, FLoRA + GD, FLoRA + IHL side by side in each target
    category, each in its own colour and marker (report.style), no line along x, counts from the run."""
    fig, _ = rendered["tdec4"]
    title = fig.get_suptitle()
    assert title.startswith(
        "FLoRA paper Figure 4: 4 methods (LoRA + GD, LoRA + IHL, FLoRA + GD, FLoRA + IHL)"
    )
    assert "on 2 sets of target modules" in title and "3 forget sets of 17 TDEC rows each" in title
    [labels] = _legend_labels(fig)
    assert labels[:4] == list(TDEC_ADAPTED.values())
    looks = {(style.method_style(m)["color"], style.method_style(m)["marker"]) for m in TDEC_ADAPTED}
    assert len(looks) == 4 and len({c for c, _ in looks}) == 4 and len({m for _, m in looks}) == 4
    known = {method_style(m)["marker"] for m in KNOWN}
    assert not {m for _, m in looks} & known  # never mistaken for a full-parameter method
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["QV", "FFN"]
        assert ax.get_xlabel() == "adapter target modules"
        drawn = [ln for ln in ax.lines if ln.get_gid() in TDEC_ADAPTED]
        assert all(len(ln.get_xdata()) == 1 for ln in drawn)  # no line joins the categories
        points = [ln for ln in drawn if ln.get_marker() != "_"]  # the forget sets (not the mean's bar)
        assert len(points) == 4 * 2 * 3
        by_method = {}
        for ln in points:
            by_method.setdefault(ln.get_gid(), []).append(float(ln.get_xdata()[0]))
            assert ln.get_marker() == style.method_style(ln.get_gid())["marker"]
        assert list(by_method) == list(TDEC_ADAPTED)  # drawn in the configured order
        for x in (0, 1):  # each category holds every method's 3 forget sets, side by side in order
            centres = [np.mean([v for v in xs if abs(v - x) < 0.5]) for xs in by_method.values()]
            assert all(len([v for v in xs if abs(v - x) < 0.5]) == 3 for xs in by_method.values())
            assert centres == sorted(centres) and max(centres) - min(centres) < 0.8


def test_tofu_figure_has_bands_from_several_seeds_and_none_from_one(rendered, tmp_path):
    fig, _ = rendered["tofu"]
    assert all(ax.collections for ax in fig.axes)  # the bands
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "forget accuracy (share of forget QA, ↓)",
        "retain accuracy (share of retain QA, ↑)",
    ]
    one = tofu.figure1(_tofu_curves(seeds=1), TOFU_METHODS, tmp_path / "f1.png")
    assert not any(ax.collections for ax in one.axes) and "1 seed" in one.get_suptitle()
    curves = _curves(["npo"]).assign(accuracy_half=np.nan, test_nll_half=np.nan)
    assert not any(ax.collections for ax in cycles_figure(curves, tmp_path / "c.png", "m").axes)


def test_single_seed_bars_are_absent_not_zero(tmp_path):
    fig = memorization.figure(_memorized(seeds=1), MEM_METHODS, tmp_path / "m.png")
    assert all(c.errorbar is None for ax in fig.axes for c in ax.containers)
    assert "1 seed" in fig.get_suptitle() and "interval" not in fig.get_suptitle()
    fig = ablations.figure(_ablation(seeds=1), ablations.OBJECTIVES["newton"], "removal", tmp_path / "a.png")
    assert "(no interval)" in fig.get_suptitle()
    assert not any(c.has_xerr or c.has_yerr for ax in fig.axes for c in ax.containers)


def test_memorization_panel_without_signal_is_marked(tmp_path):
    runs = _memorized(seeds=1).assign(memorized=0)  # nothing memorized, not even before unlearning
    fig = memorization.figure(runs, MEM_METHODS, tmp_path / "m.png")
    assert all("no signal: every mean count is 0" in ax.get_title() for ax in fig.axes)
    assert fig.axes[0].get_ylim() == (0.0, 1.0)


def test_privacy_figure_drops_panels_without_signal_and_labels_epsilon_apart(rendered):
    fig, _ = rendered["privacy"]
    title = fig.get_suptitle()
    assert "lambada: constant at 0 %" in title and "piqa" not in title  # piqa's accuracy moves by 10 points
    assert len(fig.axes) == 6  # 8 panels less lambada's two accuracy panels
    assert all("bits" in ax.get_xlabel() for ax in fig.axes)
    renderer = FigureCanvasAgg(fig).get_renderer()  # the saved figure was closed: a fresh canvas
    fig.draw_without_rendering()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == "epsilon"]
        assert len(boxes) == 4  # ε = 4 and 8 share one label
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), ax.get_title()
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"ε = 4, 8", "ε = ∞"} <= labels


def test_privacy_accuracy_moving_within_noise_is_left_out():
    df = pd.DataFrame(
        {"dataset": "piqa", "model": "m", "method": "npo", "value": v, "exposure": 1.0 + v, "accuracy": a,
         "test_nll": 5.0 + v}
        for v, a in ((0.1, 0.50), (0.2, 0.54))
    )  # fmt: skip
    kept, notes = privacy.panels(df, {"accuracy": (2 / 24, "2 of 24 test samples")})
    assert kept == [("piqa", "m", "test_nll")] and notes == ["piqa: moves by at most 2 of 24 test samples"]
    assert privacy.panels(df, {})[0] == [("piqa", "m", "accuracy"), ("piqa", "m", "test_nll")]


def test_privacy_points_are_seed_means_with_t_intervals(tmp_path):
    """Each Figure 3 point: the mean over its seeds with scipy's 95 % t half-width on every axis, drawn as
    error bars both ways; the Pareto share is judged on the means (seed 1 alone would put DP-SGD off it)."""
    raw = pd.DataFrame(
        {"dataset": "lambada", "model": "m", "method": m, "value": v, "seed": s, "exposure": x,
         "accuracy": 0.3, "test_nll": y}
        for m, v, xs, ys in (("dp_sgd", 1.0, (0.5, 2.5, 0.0), (3.9, 4.2, 3.9)),
                             ("gradient_ascent", 1e-3, (2.5, 1.0, 2.5), (4.8, 3.9, 4.8)))
        for s, x, y in zip(range(3), xs, ys)
    )  # fmt: skip
    means = privacy.seed_means(raw).astype({"method": str}).set_index("method")
    xs = [0.5, 2.5, 0.0]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(xs), scale=stats.sem(xs))
    assert means.loc["dp_sgd", "exposure"] == pytest.approx(1.0)
    assert means.loc["dp_sgd", "exposure_half"] == pytest.approx((high - low) / 2)
    assert means.loc["gradient_ascent", "test_nll"] == pytest.approx(4.5)
    assert means.loc["dp_sgd", "accuracy_half"] == pytest.approx(0.0) and means["seeds"].tolist() == [3, 3]
    assert privacy.pareto_share(raw) == 1.0 and privacy.pareto_share(raw[raw["seed"] == 1]) == 0.0
    fig = privacy.figure(raw, tmp_path / "pu.png")
    bars = {c.get_gid() for ax in fig.axes for c in ax.collections}
    assert bars == {"dp_sgd/interval", "gradient_ascent/interval"} and "3 seeds" in fig.get_suptitle()
    one = privacy.figure(raw[raw["seed"] == 0], tmp_path / "pu1.png")
    assert not [c for ax in one.axes for c in ax.collections] and "no interval" in one.get_suptitle()


# --------------------------------------------------------------- captions, as Snakemake's report renders them
CAPTIONS = sorted(Path(__file__).resolve().parents[2].joinpath("report_captions").rglob("*.rst"))


def _render_caption(path: Path, tmp: Path) -> str:
    """Jinja (Snakemake's settings and context) then docutils; the tables a caption includes are stand-ins."""
    from jinja2 import Environment

    text = path.read_text(encoding="utf-8")
    tables = []
    for name in re.findall(r'endswith\("/([^"]+)"\)', text):
        (tmp / name).write_text("| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
        tables.append(str(tmp / name))
    tdec_params = {"forget_size": 17, "forget_sets": 3, "max_epochs": 20}
    tdec_params["ablation"] = {"configs": ["lora_gd", "flora_ihl"], "targets": ["qv", "ffn"]}
    snakemake = SimpleNamespace(
        output=SimpleNamespace(tables=tables),
        params=SimpleNamespace(tdec=tdec_params),
        config={"profile": "ci"},
    )
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(text).render(snakemake=snakemake, categories={}, files=[])


@pytest.mark.parametrize("path", CAPTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_caption_renders_without_a_docutils_warning(path, tmp_path):
    from docutils import nodes
    from docutils.core import publish_doctree

    rst = _render_caption(path, tmp_path)
    doc = publish_doctree(rst, settings_overrides={"report_level": 2, "warning_stream": io.StringIO()})
    messages = list(doc.findall(nodes.system_message)) + doc.transform_messages
    assert [m.astext() for m in messages if m["level"] >= 2] == []
    if path.parent.name == "tdec":  # the row count comes from the run's config (the include paths, under
        shown = rst.replace(str(tmp_path), "")  # pytest's numbered tmp folder, are no part of the caption)
        assert "17" in shown and "32" not in shown
    if path.stem == "figure4" and path.parent.name == "tdec":  # the paper's four methods, this run's configs
        assert all(m in rst for m in ("LoRA + GD", "LoRA + IHL", "FLoRA + GD", "FLoRA + IHL"))
        assert "lora_gd, flora_ihl" in rst and "QV, FFN" in rst


def test_an_unescaped_bar_is_caught():
    from docutils import nodes
    from docutils.core import publish_doctree

    doc = publish_doctree(
        "δ = 1/|D|", settings_overrides={"report_level": 2, "warning_stream": io.StringIO()}
    )
    assert any(m["level"] >= 2 for m in list(doc.findall(nodes.system_message)) + doc.transform_messages)


def test_tdec_ppl_interval_is_taken_on_the_log_axis_it_is_drawn_on():
    """On Figures 3/4's log PPL axis the bar is the geometric mean with the t interval of log PPL (scipy),
    so it stays above zero; the reasoning panel's stays the plain mean ± t interval."""
    import matplotlib.pyplot as plt

    values = [10.0, 1000.0, 100000.0]
    fig, (lin, log) = plt.subplots(1, 2)
    tdec._sets(lin, 0, 0.8, values, [True] * 3, "lora+gradient_difference")
    tdec._sets(log, 0, 0.8, values, [True] * 3, "lora+gradient_difference", log=True)
    half = stats.t.ppf(0.975, 2) * np.std(np.log(values), ddof=1) / math.sqrt(3)
    for ax, mean, lo, hi in (
        (log, 1000.0, math.exp(math.log(1000.0) - half), math.exp(math.log(1000.0) + half)),
        (lin, np.mean(values), *stats.t.interval(0.95, 2, np.mean(values), stats.sem(values))),
    ):
        [bar] = ax.containers
        (y,) = bar.lines[0].get_ydata()
        [[(_, y0), (_, y1)]] = bar.lines[2][0].get_segments()
        assert y == pytest.approx(mean) and (y0, y1) == pytest.approx((lo, hi))
    assert lo < 0 < math.exp(math.log(1000.0) - half)  # the plain interval would leave a log axis
    plt.close(fig)

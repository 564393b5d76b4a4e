"""The ablations' report (issue 21): the front comparison by hand, and exactly the declared files written."""

from pathlib import Path

import numpy as np

from tests.conftest import ROOT
from unlearn_repro.config import load
from unlearn_repro.io import write_json
from unlearn_repro.report import ablations as A

COLS = ["e", "u"]


def _pt(e, u):
    return {"e": np.array(e, dtype=float), "u": np.array(u, dtype=float)}


def test_dominance_needs_a_difference_outside_the_interval():
    better = _pt([1.0, 1.1, 0.9], [0.5, 0.52, 0.48])
    worse = _pt([0.0, 0.1, -0.1], [0.5, 0.51, 0.49])
    assert A.dominates(better, worse, COLS) and not A.dominates(worse, better, COLS)
    noisy = _pt([0.0, 2.0, 1.0], [0.5, 0.51, 0.49])  # its efficacy interval covers `better`'s mean
    assert not A.dominates(better, noisy, COLS) and A.tied(better, noisy, COLS)
    one_seed = _pt([9.0], [9.0])  # no interval: never a difference, whatever the values
    assert not A.dominates(one_seed, worse, COLS) and A.tied(one_seed, worse, COLS)
    trade = _pt([2.0, 2.1, 1.9], [0.0, 0.01, -0.01])  # more efficacy, less utility: neither dominates
    assert not A.dominates(better, trade, COLS) and not A.dominates(trade, better, COLS)


def test_verdict_holds_fails_or_ties_by_the_fronts():
    so = [_pt([1.0, 1.1, 0.9], [0.5, 0.52, 0.48]), _pt([2.0, 2.1, 1.9], [0.3, 0.31, 0.29])]
    ablated = [_pt([0.5, 0.6, 0.4], [0.5, 0.51, 0.49]), _pt([1.5, 1.6, 1.4], [0.3, 0.29, 0.31])]
    assert A.comparison_verdict("s", {"s": so, "a": ablated}, COLS) == ("holds", {"a": "dominates"})
    assert A.comparison_verdict("s", {"s": ablated, "a": so}, COLS) == ("does not hold", {"a": "dominated"})
    assert A.comparison_verdict("s", {"s": so, "a": so}, COLS) == ("tie", {"a": "tie"})
    # one ablated front dominated, the other crossing: not every ablation is beaten
    crossing = [_pt([3.0, 3.1, 2.9], [0.0, 0.01, -0.01])]
    assert A.comparison_verdict("s", {"s": so, "a": ablated, "c": crossing}, COLS)[0] == "tie"


def _points(root: Path, comparison, method, seed, values, eff, **extra):
    pts = []
    for v, e in zip(values, eff):
        if comparison.startswith("sophia"):
            pts.append(
                {
                    "value": v,
                    "forget_acc": 1 - e,
                    "model_utility": 0.5,
                    "retain_acc": 0.6,
                    "curvature": {"clip_rate": 0.5} if method == "sophia" else None,
                }
            )
        else:
            pts.append(
                {
                    "value": v,
                    "delta_exp": -e,
                    "delta_test_nll": 0.01,
                    "retain_accuracy": 0.4,
                    "curvature": {"cosine": 0.8, "noise_cosine": 0.99},
                }
            )
    f = root / f"{comparison}_{method}_{seed}.json"
    write_json(
        f,
        {
            "comparison": comparison,
            "method": method,
            "dataset": "d",
            "model": "m",
            "seed": seed,
            "points": pts,
            **extra,
        },
    )
    return str(f)


def test_report_writes_exactly_the_declared_files(tmp_path):
    cfg = load(ROOT / "params.yaml", "ci")
    files = []
    for seed in (0, 1, 2):
        for comp, comp_cfg in cfg.ablations.newton.items():
            for i, m in enumerate(comp_cfg.methods):
                files.append(_points(tmp_path, comp, m, seed, comp_cfg["values"], [2 - i + 0.01 * seed] * 2))
        for loss in cfg.ablations.sophia.methods:
            for o in cfg.ablations.sophia.optimizers:
                files.append(
                    _points(
                        tmp_path, f"sophia_{loss}", o, seed, cfg.ablations.sophia.lr, [0.5 + 0.01 * seed] * 2
                    )
                )
    out = tmp_path / "ablations"
    summary = A.build_report(cfg, files, out)
    declared = {p for v in A.outputs(cfg, out).values() for p in v}
    written = {str(p) for p in out.rglob("*") if p.is_file()}
    assert written == declared
    # the second-order method is given the most efficacy, equal utility: it dominates; the optimizers tie
    # ... but Fisher Forgetting's noise was curvature-degenerate: no conclusion about curvature
    assert summary["removal"]["verdict"] == "holds" and summary["forgetting"]["verdict"] == "premise not met"
    assert summary["forgetting"]["fronts"] == {"fisher_forgetting_isotropic": "dominates"}
    verdicts = (out / "tables" / "verdicts.csv").read_text()
    assert "Fisher Forgetting dominates Fisher Forgetting (isotropic noise)" in verdicts
    assert summary["sophia_npo"]["verdict"] == "tie"
    assert summary["removal"]["premise"] == "met: cosine = 0.800 (curvature-degenerate above 0.95)"
    assert summary["forgetting"]["premise"].startswith("not met: noise_cosine = ")
    assert summary["sophia_npo"]["premise"] == "met: clip_rate = 0.500 (curvature-degenerate above 0.9)"

"""The onion effect against its random-removal control (report/discussions.py) on hand-made exposures."""

import numpy as np
import pandas as pd
import pytest

from unlearn_repro.report.discussions import onion_effect, versus_control


def _run(kept, before, after, threshold=4.0, removed=(0,)):
    return {
        "kept": np.array(kept),
        "removed": np.array(removed),
        "before": np.array(before, dtype=float),
        "after": np.array(after, dtype=float),
        "threshold": np.array(threshold),
    }


def test_control_is_compared_on_the_samples_both_removals_kept():
    top = _run([1, 2, 3, 4], [1.0, 1.0, 2.0, 2.0], [1.5, 1.6, 2.4, 2.6])
    control = _run([0, 2, 3, 4], [5.0, 1.0, 2.0, 2.0], [5.0, 1.1, 2.0, 2.1], removed=(1,))
    c = versus_control(top, control)
    assert c["common_kept"] == 3  # samples 2, 3, 4
    assert c["shift_mean"] == pytest.approx(np.mean([0.6, 0.4, 0.6]))
    assert c["control_shift_mean"] == pytest.approx(np.mean([0.1, 0.0, 0.1]))
    assert c["difference_mean"] == pytest.approx(np.mean([0.5, 0.4, 0.5]))
    assert 0 < c["difference_low"] < c["difference_high"]  # the top removal raised the kept samples more


def _seed(rise, control_rise, n=12):
    """One seed's pair of runs on samples 1..n (sample 0 removed by the top removal, 1 by the control)."""
    before = np.linspace(0.0, 3.0, n)
    top = _run(np.arange(1, n + 1), before, before + rise + np.linspace(-0.1, 0.1, n))
    control = _run(
        np.r_[0, np.arange(2, n + 1)],
        np.r_[5.0, before[1:]],
        np.r_[5.0, before[1:] + control_rise],
        removed=(1,),
    )
    return top, control


def test_the_summary_row_takes_its_interval_over_the_seeds(tmp_path):
    runs = [(s, *_seed(rise, 0.1)) for s, rise in ((0, 0.5), (1, 0.6), (2, 0.4))]
    summary = onion_effect(runs, tmp_path, tmp_path)
    table = pd.read_csv(tmp_path / "onion.csv")
    assert list(table["seed"].astype(str)) == ["0", "1", "2", "all"]
    assert summary["interval_over"] == "seeds (3)"
    assert summary["difference_mean"] == pytest.approx(0.4, abs=0.01)
    assert 0 < summary["difference_low"] < 0.4 < summary["difference_high"]
    # one seed: its interval over the kept samples stands in, and says so
    one = onion_effect(runs[:1], tmp_path, tmp_path)
    assert one["interval_over"] == "kept samples" and one["difference_low"] < 0.4 < one["difference_high"]


def test_without_a_control_the_table_has_no_comparison(tmp_path):
    top, _ = _seed(0.5, 0.1)
    assert "control_shift_mean" not in onion_effect([(0, top, None)], tmp_path, tmp_path)


def _snap(weights, exposure):
    return {
        "weights": np.asarray(weights, dtype=float),
        "exposure": np.asarray(exposure, dtype=float),
        "index": np.arange(len(exposure)),
        "layer": np.array("h.3"),
    }


def test_kl_and_ks_are_per_seed_and_summarized_over_the_seeds(tmp_path):
    from types import SimpleNamespace

    from unlearn_repro.report.discussions import exposure_shift, weight_kl

    cfg = SimpleNamespace(discussions=SimpleNamespace(bins=10, kl_epsilon=1e-6))
    rng = np.random.default_rng(0)
    base = np.linspace(0, 5, 40)
    snaps = {
        str(s): {
            "retrain": _snap(rng.normal(0, 1, 500), base),
            "gradient_ascent": _snap(rng.normal(s + 1, 1, 500), base + 3.0),
        }
        for s in (0, 1, 2)
    }
    kl = weight_kl(cfg, snaps, "0", tmp_path, tmp_path).set_index("method")
    assert kl.loc["gradient_ascent", "n_seeds"] == 3 and kl.loc["gradient_ascent", "per_seed"].count(":") == 3
    ga = kl.loc["gradient_ascent"]
    assert ga["kl_ci_low"] < ga["kl"] < ga["kl_ci_high"]
    bases = {s: _snap([0.0], base) for s in snaps}
    shift = exposure_shift(snaps, bases, "0", tmp_path, tmp_path).set_index("method")
    assert shift.loc["gradient_ascent", "distribution_shifted"]
    assert shift.loc["gradient_ascent", "shifted_seeds"] == 3
    assert not shift.loc["retrain", "distribution_shifted"] and shift.loc["retrain", "ks_p"] == 1.0

"""The onion effect against its random-removal control (report/discussions.py) on hand-made exposures."""

import numpy as np
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
    assert 0 < c["difference_low"] < c["difference_high"]  # 0.5, 0.4, 0.5: the top removal raised more


def test_onion_table_carries_the_control(tmp_path):
    before = np.linspace(0.0, 3.0, 12)
    top = _run(np.arange(1, 13), before, before + 0.5, removed=(0,))
    control = _run(
        np.r_[0, np.arange(2, 13)], np.r_[5.0, before[1:]], np.r_[5.0, before[1:] + 0.5], removed=(1,)
    )
    row = onion_effect(top, tmp_path, tmp_path, control=control)
    assert row["common_kept"] == 11 and row["difference_low"] == row["difference_high"] == pytest.approx(0.0)
    assert "control_shift_mean" not in onion_effect(top, tmp_path, tmp_path)

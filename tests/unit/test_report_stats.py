"""The one interval, the one comparison and the one 'ours ‖ paper' cell every table and verdict uses."""

import math

import pytest
from scipy import stats

from unlearn_repro.report.stats import (
    cell,
    compare,
    compare_to,
    difference,
    ours_paper,
    parse_per_seed,
    per_seed,
    t_interval,
)


def test_t_interval_is_mean_plus_minus_t_times_standard_error():
    iv = t_interval([1.0, 2.0, 3.0])  # s = 1, se = 1/√3, t(0.975, 2) = 4.303
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.half == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))
    assert iv.contains(0.0) and not iv.contains(5.0)


def test_one_seed_has_no_interval_and_says_so_instead_of_zero():
    assert math.isnan(t_interval([0.5]).half)
    assert cell([0.5]) == "+0.50 (1 seed)"
    assert cell([1.0, 1.0, 1.0]) == "+1.00 ± 0.00"  # three equal seeds: a real zero spread
    assert cell([]) == "n/a" and cell(["x", None]) == "n/a"


def test_a_difference_inside_its_interval_is_a_tie():
    assert compare([1.0, 2.0, 3.0], [1.5, 2.5, 2.0]) == "tie"
    assert compare([1.0, 1.1, 0.9], [5.0, 5.1, 4.9]) == "less"
    assert compare([5.0, 5.1, 4.9], [1.0, 1.1, 0.9]) == "greater"
    assert compare([1.0], [1.03], tolerance=0.05) == "tie"  # one seed: only the tolerance separates them
    assert compare([1.0], [1.2], tolerance=0.05) == "less"
    d = difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0])  # Welch: unequal sizes, one side without spread
    assert d.mean == 2.0 and d.low < 2.0 < d.high


def test_compare_to_a_fixed_value():
    assert compare_to([0.9, 1.1, 1.0], 1.0) == "tie"
    assert compare_to([0.2, 0.3, 0.25], 1.0) == "less"
    assert compare_to([3.0], 1.0) == "greater"


def test_one_separator_for_ours_and_paper():
    assert ours_paper("+0.10 ± 0.02", -0.5) == "+0.10 ± 0.02 ‖ -0.50"
    assert ours_paper("3.0 ± 1.0", None) == "3.0 ± 1.0 ‖ —"
    assert ours_paper("2.5", 1570.0, "{:.3g}") == "2.5 ‖ 1.57e+03"
    assert "\\|" not in ours_paper("a", 1.0)


def test_per_seed_values_are_kept_sorted_by_seed():
    assert per_seed([2, 0, 1], [0.3, 0.1, 0.2]) == "0:0.1;1:0.2;2:0.3"
    assert parse_per_seed(per_seed([1, 0], [2.5e-05, 0.125])) == [0.125, 2.5e-05]
    assert parse_per_seed(float("nan")) == [] and parse_per_seed("") == []

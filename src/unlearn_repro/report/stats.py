"""The statistics every table and verdict shares: one interval estimator (Student's t over seeds), one
"ours ‖ paper" cell, and one comparison that calls a difference inside its interval a tie.

Why t over seeds: the unit that varies between repetitions is the seed (it draws the forget sets, the
method's noise and the retraining order); forget samples within a seed are not independent repetitions of a
run, so a bootstrap over them would understate the spread between runs. With n seeds the 95 % interval is
mean ± t(0.975, n - 1) · s / √n (s: the sample standard deviation, ddof = 1). One seed has no interval: its
cell says so instead of printing "± 0.00".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
ESTIMATOR = "95 % t interval over seeds: mean ± t(0.975, n−1)·s/√n, s with ddof = 1"
SEP = " ‖ "  # the one separator of "ours ‖ paper" cells (needs no escaping in Markdown tables)
MISSING = "—"
HOLDS, FAILS, TIE = "holds", "does not hold", "tie"
PREMISE_NOT_MET = "premise not met"  # no conclusion from a run whose premise failed (e.g. never memorized)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def half(self) -> float:
        """Half-width of the interval; NaN with fewer than two values (no spread to estimate)."""
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return bool(self.n >= 2 and self.low <= value <= self.high)


def finite(values) -> np.ndarray:
    v = np.asarray(pd_values(values), dtype=float)
    return v[np.isfinite(v)]


def pd_values(values):
    """A pandas Series / list / scalar as a flat list (strings that are not numbers become NaN)."""
    if np.isscalar(values):
        values = [values]
    out = []
    for x in values:
        try:
            out.append(float(x))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _t_quantile(p: float, dof: float) -> float:
    """Student's t quantile. scipy.stats is imported here, at first use: the workflow's DAG build imports
    the report modules (their declared outputs) and never computes an interval."""
    from scipy import stats

    return stats.t.ppf(p, dof)


def t_interval(values, level: float = LEVEL) -> Interval:
    """Mean and the t interval of `values` (one per seed); NaN bounds for fewer than two values."""
    v = finite(values)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(_t_quantile((1 + level) / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def difference(a, b, level: float = LEVEL) -> Interval:
    """Mean(a) − mean(b) with Welch's t interval (the two sets of seeds need not pair or share a size)."""
    x, y = finite(a), finite(b)
    if len(x) == 0 or len(y) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    d = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Interval(d, math.nan, math.nan, min(len(x), len(y)))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return Interval(d, d, d, min(len(x), len(y)))
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = float(_t_quantile((1 + level) / 2, dof) * se)
    return Interval(d, d - half, d + half, min(len(x), len(y)))


def compare(a, b, tolerance: float = 0.0) -> str:
    """'less' / 'greater' when mean(a) − mean(b) is outside both its 95 % interval around 0 and ±tolerance,
    else 'tie'. With one seed on a side there is no interval: only the tolerance separates the two."""
    return direction(difference(a, b), tolerance)


def direction(d: Interval, tolerance: float = 0.0) -> str:
    """compare's rule on a difference already computed (its Welch interval)."""
    if not math.isfinite(d.mean):
        return TIE
    if d.n >= 2 and d.low <= 0 <= d.high:
        return TIE
    if abs(d.mean) <= tolerance:
        return TIE
    return "less" if d.mean < 0 else "greater"


def compare_to(values, reference: float, tolerance: float = 0.0) -> str:
    """'less' / 'greater' when the values' 95 % interval lies wholly below / above `reference` (and the mean
    is farther than `tolerance` from it), else 'tie'. One value has no interval: its side of reference ±
    tolerance decides."""
    iv = t_interval(values)
    if iv.n == 0 or abs(iv.mean - reference) <= tolerance or iv.contains(reference):
        return TIE
    return "less" if iv.mean < reference else "greater"


def fmt_interval(iv: Interval, digits: int = 2, signed: bool = True) -> str:
    """'+0.12 ± 0.05' (± = the interval's half-width); one seed: '+0.12 (1 seed)'; none: 'n/a'."""
    if iv.n == 0 or not math.isfinite(iv.mean):
        return "n/a"
    mean = f"{iv.mean:+.{digits}f}" if signed else f"{iv.mean:.{digits}f}"
    if iv.n < 2:
        return f"{mean} (1 seed)"
    return f"{mean} ± {iv.half:.{digits}f}"


def cell(values, digits: int = 2, signed: bool = True) -> str:
    """The mean ± 95 % half-width of per-seed values, as every table prints it."""
    return fmt_interval(t_interval(values), digits, signed)


def ours_paper(ours: str, paper=None, paper_fmt: str = "{:+.2f}") -> str:
    """The one 'ours ‖ paper' cell: a missing published value prints as '—', a string as it is."""
    if paper is None or (isinstance(paper, float) and math.isnan(paper)):
        theirs = MISSING
    elif isinstance(paper, str):
        theirs = paper
    else:
        theirs = paper_fmt.format(paper)
    return f"{ours}{SEP}{theirs}"


def per_seed(seeds, values, digits: int = 6) -> str:
    """Per-seed values kept in one CSV field: 'seed:value;seed:value' (sorted by seed)."""
    pairs = sorted(zip(pd_values(seeds), pd_values(values)))
    return ";".join(f"{int(s)}:{v:.{digits}g}" for s, v in pairs if math.isfinite(s))


def parse_per_seed(text) -> list[float]:
    """The values of a `per_seed` field ('seed:value;...'); an empty or missing field gives none."""
    if not isinstance(text, str) or not text:
        return []
    return [float(pair.split(":", 1)[1]) for pair in text.split(";")]


def interval_columns(values, prefix: str = "") -> dict:
    """The interval as CSV columns: mean, ci_low, ci_high, n_seeds (NaN bounds for one seed)."""
    iv = t_interval(values)
    return {
        f"{prefix}mean": iv.mean,
        f"{prefix}ci_low": iv.low,
        f"{prefix}ci_high": iv.high,
        f"{prefix}n_seeds": iv.n,
    }

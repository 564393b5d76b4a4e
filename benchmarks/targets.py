"""The speed guard's targets: each one a ratio measured inside one run, a bound, and PASS / FAIL.

The benchmarks (bench_fisher.py, bench_second_order.py) write their targets to results/targets_<name>.csv;
speed_guard.py (`make benchmark`) runs them, prints one table and fails when a target fails. A ratio of two
timings taken side by side in the same run is what decides, never an absolute time: this machine's speed
varies by 20 % or more from run to run, and a ratio of interleaved repeats moves far less.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

FIELDS = ("benchmark", "target", "ratio", "op", "bound", "verdict", "how")


@dataclass
class Target:
    """`ratio op bound` (op: "<=" or ">="); `how` says how the ratio was measured."""

    benchmark: str
    target: str
    ratio: float
    op: str
    bound: float
    how: str = ""

    @property
    def passed(self) -> bool:
        if self.op not in ("<=", ">="):
            raise ValueError(f"unknown comparison {self.op!r}")
        ok = self.ratio <= self.bound if self.op == "<=" else self.ratio >= self.bound
        return bool(ok) and self.ratio == self.ratio  # NaN (nothing measured) fails

    def row(self) -> dict:
        return {**asdict(self), "verdict": "PASS" if self.passed else "FAIL"}


def timer(device: str = "cpu") -> Callable[[], float]:
    """The clock to time with: on CPU (one thread) the process's CPU time, which a busy shared machine
    inflates far less than wall time (waiting for a core is not in it: in a run at load 9 on 2 cores, wall
    times of the same retraining moved by 2x); on a GPU wall time (CPU time misses the device's work)."""
    return time.process_time if device == "cpu" else time.perf_counter


def paired_median(
    fns: Sequence[Callable[[], object]],
    repeats: int,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], list[list[float]]]:
    """Time each of `fns` once per repeat, interleaved (a slow spell of the machine hits all of them):
    (the median over repeats of each fn's time divided by the first fn's, the raw times per repeat)."""
    times = []
    for _ in range(repeats):
        row = []
        for fn in fns:
            sync()
            t0 = clock()
            fn()
            sync()
            row.append(clock() - t0)
        times.append(row)
    ratios = [statistics.median(r[i] / r[0] for r in times) for i in range(len(fns))]
    return ratios, times


def write(targets: Sequence[Target], path: Path) -> None:
    write_rows([t.row() for t in targets], path)


def write_rows(rows: Sequence[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rows: Sequence[dict]) -> str:
    out = ["| benchmark | target | ratio | bound | verdict | measured as |", "|:--|:--|--:|:--|:--|:--|"]
    out += [
        f"| {_cell(r['benchmark'])} | {_cell(r['target'])} | {float(r['ratio']):.3g} | {r['op']} "
        f"{float(r['bound']):.3g} | **{r['verdict']}** | {_cell(r['how'])} |"
        for r in rows
    ]
    return "\n".join(out) + "\n"


def announce(targets: Sequence[Target]) -> None:
    for t in targets:
        print(
            f"{'PASS' if t.passed else 'FAIL'}: {t.target}: {t.ratio:.3g} {t.op} {t.bound:.3g} ({t.how})",
            flush=True,
        )

"""Progress for long loops: a tqdm bar on a terminal, a periodic log line with ETA in log files."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
START_ENV = "UNLEARN_JOB_START"  # the job's start (time.time()), set by job.py
_first_step_logged = False


def progress(items: Iterable[T], total: int, desc: str, every_s: float = 15.0) -> Iterator[T]:
    """`items`, reporting as they are consumed. No item is referenced here while the next is made (not by
    `enumerate`'s reused tuple, not by tqdm's loop): a streamed gradient chunk is k * d * 4 bytes."""
    first_step(desc)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, dynamic_ncols=True)
    start = last = time.monotonic()
    i = 0
    try:
        for item in items:
            yield item
            del item
            i += 1
            if bar is not None:
                bar.update(1)
                continue
            now = time.monotonic()
            if now - last >= every_s or i == total:
                last = now
                rate = i / max(now - start, 1e-9)
                eta = (total - i) / rate if rate > 0 else float("inf")
                print(
                    f"[{desc}] {i}/{total} ({100 * i / max(total, 1):.0f}%) {now - start:.0f}s elapsed, "
                    f"ETA {eta:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:  # also when the consumer stops early
        if bar is not None:
            bar.close()


def first_step(desc: str) -> None:
    """Log, once per job, when its first model loop starts (wall time since the job's client started, this
    process's CPU time: a job forked by the job server counts from the fork): what came before (process
    start, imports, model and data loading) is the job's fixed cost, reported per rule by
    benchmarks/study_times.py."""
    global _first_step_logged
    start = os.environ.get(START_ENV)
    if _first_step_logged or not start:
        return
    _first_step_logged = True
    wall, cpu = time.time() - float(start), time.process_time()
    print(
        f"[job] first model step {wall:.2f} s (cpu {cpu:.2f} s) after the job started ({desc})",
        file=sys.stderr,
        flush=True,
    )

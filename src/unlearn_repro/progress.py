"""Progress for long loops: a tqdm bar on a terminal, a periodic log line with ETA in log files."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, desc: str, every_s: float = 15.0) -> Iterator[T]:
    if sys.stderr.isatty():
        from tqdm import tqdm
        yield from tqdm(items, total=total, desc=desc, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        del item  # not held while the next is made (a gradient chunk: k * d * 4 bytes)
        now = time.monotonic()
        if now - last >= every_s or i == total:
            last = now
            rate = i / max(now - start, 1e-9)
            eta = (total - i) / rate if rate > 0 else float("inf")
            print(f"[{desc}] {i}/{total} ({100 * i / max(total, 1):.0f}%) {now - start:.0f}s elapsed, "
                  f"ETA {eta:.0f}s", file=sys.stderr, flush=True)

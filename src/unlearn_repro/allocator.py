"""glibc malloc settings for tensor-heavy jobs: freed memory stays in the process.

By default glibc serves a large block (above its mmap threshold, at most 32 MiB) with fresh pages from the
kernel and hands it back on free, so a loop that allocates the same activations at every batch page-faults
on all of them, zero-filled by the kernel: a third of a scoring job's CPU time was system time
(benchmarks/scoring_levers.py). With the mmap and trim thresholds at 1 GiB freed blocks are reused instead.
Nothing computed changes (torch aligns its buffers itself); a job's resident memory stays at its peak."""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
KEEP_BYTES = 1 << 30


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Set both thresholds to `limit` bytes in this process (and the children it forks afterwards). False
    where the C library is not glibc (macOS, musl): nothing is changed there."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) & bool(mallopt(M_TRIM_THRESHOLD, limit))

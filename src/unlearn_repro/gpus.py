"""One GPU per local job. Snakemake counts GPUs (`--resources gpu=N`) but does not say which device a job
gets, so N jobs would all run on cuda:0. Each GPU job takes the first free slot 0..N-1 under an exclusive
file lock (held until the process exits, released by the OS even on a crash) and sees only that device
through CUDA_VISIBLE_DEVICES, set before torch touches CUDA. Under SLURM the scheduler sets the devices."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

SLOTS_ENV = "UNLEARN_GPU_SLOTS"  # N, set by the Snakefile from --resources gpu=N
LOCK_DIR_ENV = "UNLEARN_GPU_LOCKS"  # folder of the slot lock files (default .snakemake/gpu_slots)
_held = []  # open lock files: a slot is held as long as this process lives


def acquire_slot(n_slots: int, lock_dir: str | Path, wait_s: float = 600.0, poll_s: float = 0.5) -> int:
    """The first slot in 0..n_slots-1 whose lock no other process holds; waits (Snakemake never starts more
    GPU jobs than slots, so a wait only covers a job that is still exiting)."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for slot in range(n_slots):
            f = open(lock_dir / f"gpu{slot}.lock", "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            _held.append(f)
            return slot
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free GPU slot among {n_slots} in {lock_dir} after {wait_s:.0f}s")
        time.sleep(poll_s)


def pin_gpu() -> str | None:
    """Give this job its own GPU (sets CUDA_VISIBLE_DEVICES); None where the job's devices are already chosen
    (CUDA_VISIBLE_DEVICES set, a SLURM job) or no slots were declared."""
    n = int(os.environ.get(SLOTS_ENV) or 0)
    if n < 1 or "CUDA_VISIBLE_DEVICES" in os.environ or "SLURM_JOB_ID" in os.environ:
        return None
    slot = acquire_slot(n, os.environ.get(LOCK_DIR_ENV, ".snakemake/gpu_slots"))
    os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
    return str(slot)

"""Speed and memory of the inverse empirical Fisher: the three ways of adding gradients (one Fisher Removal
cycle against retraining is in bench_second_order.py). Not a test: run `make benchmark` (or this file).

Times are the process's CPU time on CPU (targets.timer: a busy shared machine inflates them far less than wall
time), wall time on a GPU. Targets (PASS/FAIL, also in results/targets_fisher_<device>.csv for speed_guard.py;
exit status 1 on a FAIL):
  * accumulate-then-invert (fisher.update's path) >= 5x faster per gradient than the rank-1 recursion at
    B = 48, for the paper's m = 1024 gradients: the median of 5 interleaved repeats at each d decides (one
    pass at m = 96, the table's, read 3.8-7.4x across runs: the one inversion weighs 10x more per gradient
    there, and a single timing of it moves by 1.5x on this machine)
  * all three give the same matrix to 1e-5
  * resident memory of F^-1 within 10% of the d * B * 4 bytes estimate
Usage: python benchmarks/bench_fisher.py [--dims 100000 1000000] [--blocks 16 48 128] [--device cuda]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import targets  # noqa: E402  (benchmarks/targets.py, beside this file)
from unlearn_repro.fisher import EmpiricalFisherInverse, fisher_bytes  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
CLOCK = targets.timer("cpu")  # main() sets the device's: CPU time on CPU, wall time on a GPU


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_update(dim: int, block: int, device, n_grads: int = 96, chunk: int = 48) -> dict:
    g = torch.randn(n_grads, dim, device=device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    one = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    steps = min(n_grads, 24)
    _sync(device)
    t0 = CLOCK()
    for row in g[:steps]:
        one.update(row)
    _sync(device)
    rank1 = (CLOCK() - t0) / steps
    many = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    many.update_batch(g[:chunk])  # warm-up (and the same first chunk as `one` gets below)
    many = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    _sync(device)
    t0 = CLOCK()
    for c in g.split(chunk):
        many.update_batch(c)
    _sync(device)
    batched = (CLOCK() - t0) / n_grads
    acc = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    acc.accumulate(g[:chunk])
    _ = acc.inv  # warm-up, then a fresh one timed including the final inversion
    acc = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    _sync(device)
    t0 = CLOCK()
    for c in g.split(chunk):
        acc.accumulate(c)
    _ = acc.inv
    _sync(device)
    accumulated = (CLOCK() - t0) / n_grads
    for row in g[steps:]:
        one.update(row)
    # F^-1's own storage, and on CUDA the peak while updating (temporaries included)
    stored = one.inv.untyped_storage().nbytes()
    peak = (
        (torch.cuda.max_memory_allocated(device) - before - g.numel() * 4) if device.type == "cuda" else None
    )
    err = max(float((one.inv - many.inv).abs().max()), float((one.inv - acc.inv).abs().max()))
    est = fisher_bytes(dim, block)
    row = {
        "dim": dim,
        "block": block,
        "device": str(device),
        "rank1_ms_per_grad": 1e3 * rank1,
        "batched_ms_per_grad": 1e3 * batched,
        "accumulate_ms_per_grad": 1e3 * accumulated,
        "speedup": rank1 / min(batched, accumulated),
        "max_abs_diff": err,
        "estimated_MiB": est / 2**20,
        "measured_MiB": stored / 2**20,
        "peak_MiB": peak / 2**20 if peak is not None else None,
    }
    del one, many, acc, g
    gc.collect()
    return row


def _timed(fn, device) -> float:
    _sync(device)
    t0 = CLOCK()
    fn()
    _sync(device)
    return CLOCK() - t0


def speedup_at_paper_m(
    dim: int, device, block: int = 48, m: int = 1024, repeats: int = 5, chunk: int = 48, rank1_steps: int = 24
) -> dict:
    """Per-gradient time of the rank-1 recursion over that of accumulating m gradients and inverting once,
    both timed in each of `repeats` interleaved repeats (gradients cycled from one chunk: the cost does not
    depend on their values); the median of the per-repeat ratios."""
    g = torch.randn(chunk, dim, device=device)

    def rank1(f):
        for i in range(rank1_steps):
            f.update(g[i % chunk])

    def accumulate_all(f):
        for start in range(0, m, chunk):
            f.accumulate(g[: min(chunk, m - start)])
        f.finalize()

    ratios, rank1_ms, acc_ms = [], [], []
    for _ in range(repeats):
        one, acc = (EmpiricalFisherInverse(dim, block, 1.0, m, device=device) for _ in range(2))
        rank1_ms.append(1e3 * _timed(partial(rank1, one), device) / rank1_steps)
        acc_ms.append(1e3 * _timed(partial(accumulate_all, acc), device) / m)
        ratios.append(rank1_ms[-1] / acc_ms[-1])
        del one, acc
        gc.collect()
    print(
        f"d={dim:>9,} B={block} m={m}: rank-1 / accumulate per gradient, {repeats} interleaved repeats: "
        + ", ".join(f"{r:.1f}x" for r in ratios),
        flush=True,
    )
    return {
        "dim": dim,
        "block": block,
        "m": m,
        "repeats": repeats,
        "median_speedup": statistics.median(ratios),
        "min_speedup": min(ratios),
        "max_speedup": max(ratios),
        "rank1_ms_per_grad": statistics.median(rank1_ms),
        "accumulate_ms_per_grad": statistics.median(acc_ms),
    }


def check(upd: pd.DataFrame, speed: pd.DataFrame, tag: str) -> list[targets.Target]:
    """The targets of this benchmark, from its two tables."""
    name = f"fisher ({tag})"
    out = [
        targets.Target(
            name,
            f"accumulate >= 5x rank-1 per gradient, B = 48, m = {r.m}, d = {r.dim:,}",
            r.median_speedup,
            ">=",
            5.0,
            f"median of {r.repeats} interleaved repeats ({r.min_speedup:.1f}-{r.max_speedup:.1f}x)",
        )
        for r in speed.itertuples()
    ]
    mem = (upd["measured_MiB"] / upd["estimated_MiB"] - 1).abs()
    out += [
        targets.Target(
            name,
            "rank-1 == Woodbury == accumulate (max abs difference)",
            float(upd["max_abs_diff"].max()),
            "<=",
            1e-5,
            f"{len(upd)} sizes, 96 gradients",
        ),
        targets.Target(
            name,
            "F^-1's memory vs the d*B*4 estimate (relative difference)",
            float(mem.max()),
            "<=",
            0.1,
            f"{len(upd)} sizes",
        ),
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[100_000, 470_000, 2_000_000])
    ap.add_argument("--blocks", type=int, nargs="+", default=[16, 48, 128])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the speed-up target (median decides)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (the tables: 1)")
    ap.add_argument("--out-dir", type=Path, default=OUT, help="folder of the result tables")
    args = ap.parse_args()
    out = args.out_dir
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = targets.timer(device.type)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for dim in args.dims:
        for block in args.blocks:
            r = bench_update(dim, block, device)
            rows.append(r)
            print(
                f"d={dim:>9,} B={block:>3}: rank-1 {r['rank1_ms_per_grad']:8.2f} ms/grad, batched "
                f"{r['batched_ms_per_grad']:7.2f}, accumulate {r['accumulate_ms_per_grad']:7.2f} ms/grad "
                f"(best {r['speedup']:5.1f}x), diff {r['max_abs_diff']:.1e}, "
                f"memory {r['measured_MiB']:.0f} MiB (estimate {r['estimated_MiB']:.0f})",
                flush=True,
            )
    upd = pd.DataFrame(rows)
    tag = device.type
    upd.to_csv(out / f"fisher_update_{tag}.csv", index=False)
    (out / f"fisher_update_{tag}.md").write_text(upd.to_markdown(index=False, floatfmt=".3g") + "\n")
    speed = pd.DataFrame([speedup_at_paper_m(dim, device, repeats=args.repeats) for dim in args.dims])
    speed.to_csv(out / f"fisher_speedup_{tag}.csv", index=False)
    (out / f"fisher_speedup_{tag}.md").write_text(speed.to_markdown(index=False, floatfmt=".3g") + "\n")
    checks = check(upd, speed, tag)
    targets.write(checks, out / f"targets_fisher_{tag}.csv")
    targets.announce(checks)
    sys.exit(0 if all(t.passed for t in checks) else 1)


if __name__ == "__main__":
    main()

"""Speed and memory of the inverse empirical Fisher: the three ways of adding gradients (one Fisher Removal
cycle against retraining is in bench_second_order.py). Not a test: run `make benchmark` (or this file).

Targets (checked at the end, printed as PASS/FAIL):
  * the faster of batched rank-k Woodbury / accumulate-then-invert >= 5x faster per gradient than the
    rank-1 recursion (B = 48, k = 48)
  * all three give the same matrix to 1e-5
  * resident memory of F^-1 within 10% of the d * B * 4 bytes estimate
Usage: python benchmarks/bench_fisher.py [--dims 100000 1000000] [--blocks 16 48 128] [--device cuda]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unlearn_repro.fisher import EmpiricalFisherInverse, fisher_bytes  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


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
    t0 = time.perf_counter()
    for row in g[:steps]:
        one.update(row)
    _sync(device)
    rank1 = (time.perf_counter() - t0) / steps
    many = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    many.update_batch(g[:chunk])  # warm-up (and the same first chunk as `one` gets below)
    many = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    _sync(device)
    t0 = time.perf_counter()
    for c in g.split(chunk):
        many.update_batch(c)
    _sync(device)
    batched = (time.perf_counter() - t0) / n_grads
    acc = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    acc.accumulate(g[:chunk])
    acc.inv  # warm-up, then a fresh one timed including the final inversion
    acc = EmpiricalFisherInverse(dim, block, 1.0, n_grads, device=device)
    _sync(device)
    t0 = time.perf_counter()
    for c in g.split(chunk):
        acc.accumulate(c)
    acc.inv
    _sync(device)
    accumulated = (time.perf_counter() - t0) / n_grads
    for row in g[steps:]:
        one.update(row)
    # F^-1's own storage, and on CUDA the peak while updating (temporaries included)
    stored = one.inv.untyped_storage().nbytes()
    peak = (torch.cuda.max_memory_allocated(device) - before - g.numel() * 4) if device.type == "cuda" else None
    err = max(float((one.inv - many.inv).abs().max()), float((one.inv - acc.inv).abs().max()))
    est = fisher_bytes(dim, block)
    row = {"dim": dim, "block": block, "device": str(device), "rank1_ms_per_grad": 1e3 * rank1,
           "batched_ms_per_grad": 1e3 * batched, "accumulate_ms_per_grad": 1e3 * accumulated,
           "speedup": rank1 / min(batched, accumulated), "max_abs_diff": err,
           "estimated_MiB": est / 2**20, "measured_MiB": stored / 2**20,
           "peak_MiB": peak / 2**20 if peak is not None else None}
    del one, many, acc, g
    gc.collect()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[100_000, 470_000, 2_000_000])
    ap.add_argument("--blocks", type=int, nargs="+", default=[16, 48, 128])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for dim in args.dims:
        for block in args.blocks:
            r = bench_update(dim, block, device)
            rows.append(r)
            print(f"d={dim:>9,} B={block:>3}: rank-1 {r['rank1_ms_per_grad']:8.2f} ms/grad, batched "
                  f"{r['batched_ms_per_grad']:7.2f}, accumulate {r['accumulate_ms_per_grad']:7.2f} ms/grad (best {r['speedup']:5.1f}x), diff {r['max_abs_diff']:.1e}, "
                  f"memory {r['measured_MiB']:.0f} MiB (estimate {r['estimated_MiB']:.0f})", flush=True)
    upd = pd.DataFrame(rows)
    tag = device.type
    upd.to_csv(OUT / f"fisher_update_{tag}.csv", index=False)
    (OUT / f"fisher_update_{tag}.md").write_text(upd.to_markdown(index=False, floatfmt=".3g") + "\n")
    at48 = upd[upd["block"] == 48]
    checks = {"fastest batched path >= 5x faster than rank-1 at B=48": bool((at48["speedup"] >= 5).all()),
              "rank-1 == batched == accumulate to 1e-5": bool((upd["max_abs_diff"] <= 1e-5).all()),
              "memory within 10% of d*B*4": bool(((upd["measured_MiB"] - upd["estimated_MiB"]).abs()
                                                  <= 0.1 * upd["estimated_MiB"] + 8).all())}
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")


if __name__ == "__main__":
    main()

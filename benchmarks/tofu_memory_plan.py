"""The memory plan (optim/memory.py) of SOUL's TOFU jobs on Llama-2-7B-chat: GiB per device for each method,
optimizer and dtype at the study's batch sizes, and how many 80 GB GPUs a sharded job would need. Writes
benchmarks/results/tofu_memory_plan.md (docs/paper-scale.md quotes it). A plan, not a measurement.

    python benchmarks/tofu_memory_plan.py [--seq-len 256] [--budget-gb 79]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unlearn_repro.optim import memory as M

LLAMA2_7B = M.Shape(n_params=6738415616, hidden=4096, heads=32, layers=32, vocab=32000)  # its config.json
METHODS = {
    "gradient_ascent": (1, False),
    "gradient_difference": (2, False),
    "preference": (2, False),
    "npo": (2, True),
}  # batches per step (forget [+ retain]), NPO's reference model


def rows(seq_len: int, budget_gb: float, batch_sizes=(8, 4)) -> list[dict]:
    budget = int(budget_gb * M.GIB)
    out = []
    for dtype in ("bfloat16", "float32"):
        for method, (batches, ref) in METHODS.items():
            for optimizer in ("sophia", "adamw"):
                for b in batch_sizes:
                    args = dict(
                        shape=LLAMA2_7B,
                        dtype=dtype,
                        optimizer=optimizer,
                        sequences=b * batches,
                        seq_len=seq_len,
                        reference=ref,
                    )
                    out.append(
                        {
                            "dtype": dtype,
                            "method": method,
                            "optimizer": optimizer,
                            "batch": b,
                            "gib": M.training_plan(**args).total / M.GIB,
                            "gpus": M.gpus_needed(budget, **args),
                        }
                    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--budget-gb", type=float, default=79.0, help="usable GiB per GPU (an 80 GB H100: ~79)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tofu_memory_plan.md"))
    a = ap.parse_args()
    lines = [
        f"Llama-2-7B-chat, {a.seq_len}-token QA, one training step's planned peak (GiB per device, one "
        f"device) and the GPUs of {a.budget_gb:g} GiB a fully sharded job would need "
        "(`python benchmarks/tofu_memory_plan.py`).",
        "",
        "| dtype | method | optimizer | batch | GiB | GPUs sharded |",
        "|:--|:--|:--|--:|--:|--:|",
    ]
    lines += [
        f"| {r['dtype']} | {r['method']} | {r['optimizer']} | {r['batch']} | {r['gib']:.1f} | {r['gpus']} |"
        for r in rows(a.seq_len, a.budget_gb)
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

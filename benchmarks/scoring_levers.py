"""What keeping every number bit-identical costs the evaluation (issue 26). One scoring of a fine-tuned
embedded model, the four main metrics as an `evaluate` job scores each cycle, timed as the pipeline runs it
with glibc's default malloc settings, and with levers:

* `whole-batch logits`: the output layer at every position of the padded batch, as the pipeline did before
  it took transformers' `logits_to_keep` (metrics/collect.py: only the positions a metric reads, e.g. an
  answer's last tokens; bit-identical from collect.MIN_GEMM_ROWS rows, below that the whole batch);
* `freed memory kept`: allocator.keep_freed_memory (every job calls it since this benchmark): freed
  activations are reused instead of faulted in again from the kernel; bit-identical by construction.

Two more are not bit-identical by construction: a fused kernel or a batch of another shape can round
differently in the last bits, so a table could change even where, as on this scoring, the four metrics come
out the same (the last column):

* `fused GELU`: torch's gelu(approximate="tanh") for GPT-Neo's NewGELUActivation (seven elementwise
  kernels; OPT uses ReLU, so nothing changes there);
* `batch x4`: four times the profile's scoring batch (fewer, longer padded batches);
* `both`.

    python benchmarks/scoring_levers.py --workspace DIR [--dataset arc_easy] [--repeats 3]

DIR: a workspace after `make reproduce` (its fine-tuned models, processed data and splits). Writes
benchmarks/results/scoring_levers.{csv,md}: per model and lever, the scoring's CPU seconds (median of the
repeats), the ratio to the pipeline's, and the largest change of any metric value.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unlearn_repro import numerics  # noqa: E402  (does not import torch)

numerics.pin()  # as every job: the pinned kernels are the ones the published numbers come from

import numpy as np  # noqa: E402
import torch  # noqa: E402

from unlearn_repro import allocator  # noqa: E402
from unlearn_repro.config import read_params, resolve  # noqa: E402
from unlearn_repro.io import read_json  # noqa: E402
from unlearn_repro.metrics import collect  # noqa: E402
from unlearn_repro.metrics.scores import score  # noqa: E402
from unlearn_repro.models import checkpoint  # noqa: E402
from unlearn_repro.pipeline import evaluation  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "scoring_levers"
LEVERS = ("pipeline", "whole-batch logits", "fused GELU", "batch x4", "both")
KEPT = "freed memory kept"  # last: it cannot be undone in this process


def _fuse_gelu(model) -> None:
    for name, module in list(model.named_modules()):
        if type(module).__name__ == "NewGELUActivation":
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], torch.nn.GELU(approximate="tanh"))


@contextlib.contextmanager
def _whole_batch_logits(on: bool):
    """The output layer over the whole batch, whatever is read (the scorer before logits_to_keep)."""
    saved = collect.MIN_GEMM_ROWS
    if on:
        collect.MIN_GEMM_ROWS = sys.maxsize
    try:
        yield
    finally:
        collect.MIN_GEMM_ROWS = saved


def measure(cfg_by_batch, model_dir: Path, inputs_for, forget_idx, lever: str, repeats: int):
    """(median CPU seconds of one scoring, the scores) under one lever."""
    model, tok, _ = checkpoint.load(model_dir, "cpu")
    if lever in ("fused GELU", "both"):
        _fuse_gelu(model)
    cfg = cfg_by_batch[lever in ("batch x4", "both")]
    inputs = inputs_for(cfg, tok)
    times, scores = [], None
    with _whole_batch_logits(lever == "whole-batch logits"):
        for _ in range(repeats):
            t = time.process_time()
            scores = score(evaluation.MAIN_METRICS, model, tok, inputs, forget_idx, cfg)
            times.append(time.process_time() - t)
    return statistics.median(times), scores


def largest_change(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k], float) - np.asarray(b[k], float)))) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--dataset", default="arc_easy")
    ap.add_argument("--models", nargs="+", default=["tiny-gpt-neo", "tiny-opt"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    raw = read_params(ROOT / "params.yaml")
    cfg = resolve(raw, "embedded")
    torch.set_num_threads(cfg.threads)
    bigger = copy.deepcopy(raw)
    bigger["profiles"]["embedded"].setdefault("evaluation", {})["batch_size"] = 4 * cfg.evaluation.batch_size
    configs = {False: cfg, True: resolve(bigger, "embedded")}
    ws, profile = a.workspace, "embedded"
    data_dir = ws / "data" / "processed" / profile / a.dataset
    reference = (
        "heldout"
        if cfg.data.reference_corpus == "heldout"
        else str(data_dir.parent / cfg.data.reference_corpus)
    )
    cycles = read_json(ws / "results" / profile / "splits" / a.dataset / f"seed{a.seed}.json")["cycles"]
    forget_idx = [i for c in cycles for i in c]

    def inputs_for(c, tok):
        return evaluation.with_retain_rows(c, evaluation.task_inputs(c, tok, data_dir, reference), cycles)

    rows, baseline = [], {}
    for name in a.models:
        model_dir = ws / "results" / profile / "models" / name / a.dataset / "finetuned"
        for lever in LEVERS:
            s, scores = measure(configs, model_dir, inputs_for, forget_idx, lever, a.repeats)
            baseline.setdefault(name, (s, scores))
            rows.append(_row(name, lever, s, *baseline[name], scores))
    allocator.keep_freed_memory()
    for name in a.models:
        model_dir = ws / "results" / profile / "models" / name / a.dataset / "finetuned"
        s, scores = measure(configs, model_dir, inputs_for, forget_idx, KEPT, a.repeats)
        rows.append(_row(name, KEPT, s, *baseline[name], scores))
    write(rows, a)


def _row(model: str, lever: str, cpu_s: float, base_s: float, base: dict, scores: dict) -> dict:
    row = {
        "model": model,
        "lever": lever,
        "cpu_s": cpu_s,
        "ratio": cpu_s / base_s,
        "largest_change": largest_change(base, scores),
        "identical": all(np.array_equal(np.asarray(base[k]), np.asarray(scores[k])) for k in base),
    }
    print(row, flush=True)
    return row


def write(rows: list[dict], a) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"One scoring of the fine-tuned embedded model on {a.dataset} (seed {a.seed}'s forget rows), the four"
        f" main metrics as an `evaluate` job scores each cycle: CPU seconds, median of {a.repeats}, 1 thread,"
        " pinned kernels (`python benchmarks/scoring_levers.py`)",
        "",
        "| model | lever | CPU (s) | / pipeline | largest change of a metric value | metrics identical |",
        "|:--|:--|--:|--:|--:|:--|",
    ]
    lines += [
        f"| {r['model']} | {r['lever']} | {r['cpu_s']:.2f} | {r['ratio']:.2f} | {r['largest_change']:.2e} | "
        f"{'yes' if r['identical'] else 'no'} |"
        for r in rows
    ]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

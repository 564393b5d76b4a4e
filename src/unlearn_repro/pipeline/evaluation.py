"""Evaluation: task accuracy on the test set and exposure of the forgotten samples (paper §4.2), for the
fine-tuned base model (once per data set, model and seed) and for every cycle of an unlearning run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unlearn_repro.data.encoding import data_kind, encode_rows
from unlearn_repro.data.registry import training_text
from unlearn_repro.io import read_json, read_jsonl, write_json
from unlearn_repro.metrics.accuracy import delta_accuracy
from unlearn_repro.metrics.collect import reference_sequences
from unlearn_repro.metrics.exposure import delta_exposure
from unlearn_repro.metrics.scores import score
from unlearn_repro.pipeline import open_checkpoint

REFERENCE_SEED = 20240101  # the same reference set S for the base and every unlearned model
MAIN_METRICS = ("accuracy", "test_nll", "exposure", "retain_accuracy")  # paper §4.2 + test NLL + D+ accuracy
RETAIN_SEED = 20240102  # the same D+ rows for the base and every unlearned model


def reference_texts(data_dir: Path, reference: str) -> list[str]:
    """Texts of the exposure reference corpus: `heldout` = the task's rows never trained on, else the
    test split of a prepared text corpus folder (WikiText-2, ECHR)."""
    if reference == "heldout":
        kind = data_kind(data_dir)
        return [training_text(r, kind) for r in read_jsonl(data_dir / "heldout.jsonl")]
    return [r["text"] for r in read_jsonl(Path(reference) / "test.jsonl")]


def task_inputs(cfg, tok, data_dir: Path, reference: str) -> dict:
    """What every scoring of one task needs, read and tokenized once (the same for every cycle)."""
    kind = data_kind(data_dir)
    length = cfg.data.max_length
    test, train = read_jsonl(data_dir / "test.jsonl"), read_jsonl(data_dir / "train.jsonl")
    return {
        "kind": kind,
        "test": test,
        "test_seqs": encode_rows(tok, test, kind, length),
        "train": train,
        "train_seqs": encode_rows(tok, train, kind, length),
        "refs": reference_sequences(
            tok, reference_texts(data_dir, reference), cfg.evaluation.exposure_refs, length, REFERENCE_SEED
        ),
    }


def with_retain_rows(cfg, inputs: dict, cycles: list[list[int]]) -> dict:
    """Add the D+ rows retain accuracy is scored on: training rows in no forget cycle (so retained at every
    cycle), a seeded subset of at most evaluation.retain_rows."""
    forgotten = {i for c in cycles for i in c}
    keep = [i for i in range(len(inputs["train"])) if i not in forgotten]
    pick = sorted(np.random.default_rng(RETAIN_SEED).permutation(keep)[: cfg.evaluation.retain_rows].tolist())
    return {**inputs, "retain": [inputs["train"][i] for i in pick]}


def _score(cfg, model, tok, inputs: dict, forget_idx: list[int]) -> dict:
    return {**score(MAIN_METRICS, model, tok, inputs, forget_idx, cfg), "forget_idx": list(forget_idx)}


def evaluate_base(
    cfg, finetuned, data_dir, reference_dir, split_file, out, tracker, *, dataset, model_name, seed
):
    model, tok, _, _ = open_checkpoint(cfg, finetuned)
    cycles = read_json(split_file)["cycles"]
    inputs = with_retain_rows(cfg, task_inputs(cfg, tok, Path(data_dir), str(reference_dir)), cycles)
    scores = _score(cfg, model, tok, inputs, [i for c in cycles for i in c])
    write_json(out, {"dataset": dataset, "model": model_name, "seed": seed, **scores})
    tracker.log_run(
        f"evaluate/base/{dataset}/{model_name}/seed{seed}",
        {"exposure_refs": cfg.evaluation.exposure_refs},
        {
            "accuracy": scores["accuracy"],
            "test_nll": scores["test_nll"],
            "retain_accuracy": scores["retain_accuracy"],
            "mean_exposure": float(np.mean(scores["exposure"])),
        },
        {"stage": "evaluate", "dataset": dataset, "model": model_name, "method": "none", "seed": str(seed)},
        artifacts=[out],
    )


SCORED = (
    "accuracy",
    "test_nll",
    "delta_test_nll",
    "delta_acc",
    "retain_accuracy",
    "delta_retain_acc",
    "exposure",
    "delta_exp",
)  # a cycle's model metrics: all NaN (null in JSON) where the cycle diverged


def diverged_reason(rec: dict, scores: dict | None) -> str | None:
    """Why a cycle's metrics are not numbers: its unlearning recorded a non-finite loss, or the model's scores
    are NaN (a diverged model: accuracy from NaN logits would be a number, but a meaningless one)."""
    if rec.get("diverged"):
        return rec.get("diverged_reason") or "unlearning diverged: a non-finite loss (see the unlearn log)"
    bad = [
        m for m in MAIN_METRICS if scores is not None and np.isnan(np.asarray(scores[m], dtype=float)).any()
    ]
    return f"the model's scores are NaN ({', '.join(bad)})" if bad else None


def _cycle_metrics(s: dict, base: dict, before: np.ndarray) -> dict:
    """Δacc vs the base model and Δexp over D-_k (Eq. 10-11), and the utility deltas."""
    return dict(
        accuracy=s["accuracy"],
        test_nll=s["test_nll"],
        delta_test_nll=s["test_nll"] - base["test_nll"],
        delta_acc=delta_accuracy(base["accuracy"], s["accuracy"]),
        retain_accuracy=s["retain_accuracy"],
        delta_retain_acc=delta_accuracy(base["retain_accuracy"], s["retain_accuracy"])
        if "retain_accuracy" in base
        else None,
        exposure=float(np.mean(s["exposure"])),
        delta_exp=delta_exposure(before, np.array(s["exposure"])),
    )


def evaluate_run(cfg, run_dir, base_eval, data_dir, reference_dir, split_file, out, tracker) -> dict:
    """Per cycle k: Δacc vs the base model and Δexp over D-_k = the samples of cycles 1..k (Eq. 10-11). A
    cycle that diverged is not scored (or its NaN scores are dropped): its metrics are null,
    with the reason."""
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json")
    base = read_json(base_eval)
    base_exp = dict(zip(base["forget_idx"], base["exposure"]))
    cycles = read_json(split_file)["cycles"]
    rows, inputs = [], None
    for rec in run["cycles"]:
        k = rec["cycle"]
        forget_idx = [i for c in cycles[:k] for i in c]
        row = {
            "cycle": k,
            "n_forgotten": len(forget_idx),
            "runtime_s": rec["runtime_s"],
            "fisher_deviation": (rec.get("fisher_deviation") or {}).get("all"),
            "curvature": rec.get("curvature"),
        }  # metrics.curvature: the second-order premise
        s = None
        if not rec.get("diverged"):
            model, tok, _, _ = open_checkpoint(cfg, run_dir / "checkpoints" / f"cycle{k}")
            if inputs is None:  # every cycle's checkpoint carries the same tokenizer
                inputs = with_retain_rows(
                    cfg, task_inputs(cfg, tok, Path(data_dir), str(reference_dir)), cycles
                )
            s = _score(cfg, model, tok, inputs, forget_idx)
        reason = diverged_reason(rec, s)
        before = np.array([base_exp[i] for i in forget_idx])
        row.update(
            dict.fromkeys(SCORED) if reason else _cycle_metrics(s, base, before),
            base_accuracy=base["accuracy"],
            base_retain_accuracy=base.get("retain_accuracy"),
            base_exposure=float(before.mean()),
            diverged=reason is not None,
            diverged_reason=reason,
        )
        rows.append(row)
    result = {k: run[k] for k in ("dataset", "model", "method", "seed", "params")} | {"cycles": rows}
    write_json(out, result)
    headline = ("delta_acc", "delta_exp", "delta_test_nll", "delta_retain_acc")  # also on the unlearning run
    per_cycle = {
        f"{m}_cycle{r['cycle']}": r[m] for r in rows for m in (*headline, "accuracy") if r[m] is not None
    }
    per_cycle["diverged_cycles"] = sum(r["diverged"] for r in rows)
    curves = {m: [r[m] for r in rows] for m in headline}
    who = {
        "dataset": run["dataset"],
        "model": run["model"],
        "method": run["method"],
        "seed": str(run["seed"]),
    }
    tracker.log_run(
        f"evaluate/{run['method']}/{run['dataset']}/{run['model']}/seed{run['seed']}",
        run["params"],
        per_cycle,
        {"stage": "evaluate", **who, "cycles": str(len(rows))},
        curves,
        artifacts=[out],
        link_to={"stage": "unlearn", **who},
        link_metrics={k: v for k, v in per_cycle.items() if not k.startswith("accuracy")},
        link_step_metrics=curves,
    )
    return result

"""The paper's discussion studies (§9.1, §9.3) on one (data set, model, seed) of the main study:

* snapshot: a model's last-block weights and the exposure of the retained samples (D+ after cycle 1),
  for the fine-tuned model (`base`, where every training sample is scored) and each method's cycle-1
  checkpoint — the inputs of Figure 4 (weight KL) and Figure 7 (exposure distributions);
* onion: remove the most exposed training samples, retrain on the rest, rescore the rest (Figure 6).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from unlearn_repro.io import read_json, write_bytes
from unlearn_repro.metrics.scores import score
from unlearn_repro.metrics.weights import last_block
from unlearn_repro.pipeline import open_checkpoint
from unlearn_repro.pipeline.evaluation import task_inputs
from unlearn_repro.train import Recipe, train


def _save_npz(path: str | Path, **arrays) -> None:
    """np.savez written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def snapshot(cfg, model_dir, data_dir, reference, split_file, out, *, base: bool) -> dict:
    """Last-block weights + exposures of the samples this model retains (all of D for the base model)."""
    model, tok, _, _ = open_checkpoint(cfg, model_dir)
    inputs = task_inputs(cfg, tok, Path(data_dir), str(reference))
    forgotten = set(read_json(split_file)["cycles"][0])
    idx = (
        list(range(len(inputs["train_seqs"])))
        if base
        else [i for i in range(len(inputs["train_seqs"])) if i not in forgotten]
    )
    name, weights = last_block(model)
    exposure = np.array(score(["exposure"], model, tok, inputs, idx, cfg)["exposure"])
    _save_npz(
        out,
        weights=weights.astype(np.float32),
        exposure=exposure,
        index=np.array(idx),
        forgotten=np.array(sorted(forgotten)),
        layer=np.array(name),
    )
    return {"layer": name, "n_weights": int(weights.size), "n_scored": len(idx)}


def onion(
    cfg,
    base_snapshot,
    pretrained,
    data_dir,
    reference,
    out,
    tracker,
    *,
    dataset,
    model_name,
    control: bool = False,
    seed: int = 0,
) -> dict:
    """Remove the samples above the exposure threshold (or the top fraction), retrain the pre-fine-tuning
    model on the rest with the fine-tuning recipe, and rescore the rest (paper §9.3, Figure 6). control:
    remove a random set of the same size instead, which shows what removing and retraining alone does to the
    rest's exposure. seed: the retraining's (and the control's draw); one run per seed gives the interval."""
    d = cfg.discussions
    before = np.load(base_snapshot)
    exposure = before["exposure"]
    if d.onion_top_fraction is not None:  # the most exposed share, ties broken by index (exposure saturates)
        order = np.argsort(-exposure, kind="stable")
        n_out = int(np.ceil(d.onion_top_fraction * len(exposure)))
        removed, kept = np.sort(order[:n_out]), np.sort(order[n_out:])
        threshold = float(exposure[removed].min()) if n_out else float("inf")
    else:
        threshold = float(d.onion_threshold)
        removed, kept = np.flatnonzero(exposure > threshold), np.flatnonzero(exposure <= threshold)
    if len(removed) == 0 or len(kept) == 0:
        raise ValueError(
            f"discussions: exposure threshold {threshold:.3f} removes {len(removed)} of {len(exposure)} "
            "samples; set discussions.onion_threshold or onion_top_fraction so that some go and some stay"
        )
    if control:
        drawn = np.random.default_rng(seed).choice(len(exposure), size=len(removed), replace=False)
        removed = np.sort(drawn)
        kept = np.setdiff1d(np.arange(len(exposure)), removed)
    start = time.perf_counter()
    model, tok, _, device = open_checkpoint(cfg, pretrained)
    inputs = task_inputs(cfg, tok, Path(data_dir), str(reference))  # the same encoding trains and scores
    recipe = Recipe.from_config(cfg.finetune, cfg, seed=seed)
    stats = train(
        model,
        [inputs["train_seqs"][i] for i in kept],
        recipe,
        pad_id=tok.pad_token_id,
        device=device,
        desc=f"onion retrain {model_name} on {dataset}",
    )
    after = np.array(score(["exposure"], model, tok, inputs, kept.tolist(), cfg)["exposure"])
    _save_npz(
        out, kept=kept, removed=removed, before=exposure[kept], after=after, threshold=np.array(threshold)
    )
    result = {
        "threshold": threshold,
        "removed": int(len(removed)),
        "kept": int(len(kept)),
        "rose": int((after > exposure[kept]).sum()),
        "crossed": int((after > threshold).sum()),
        "retrain_s": time.perf_counter() - start,
        "final_loss": stats["final_loss"],
    }
    stage = "onion_control" if control else "onion"
    tracker.log_run(
        f"{stage}/{dataset}/{model_name}/seed{seed}",
        {"discussions": d.to_dict(), "finetune": cfg.finetune.to_dict()},
        result,
        {"stage": stage, "dataset": dataset, "model": model_name, "seed": seed},
        record=result,
    )
    return result

"""The one training loop: pretraining, fine-tuning, retraining, the finetune baseline and every
loss-based unlearning method go through `train`. What varies is passed in, never copied:

* the objective: what one step minimizes (`Objective`: a callable `(model, batch, step) -> loss`; it may
  draw retain batches from its own seeded sampler or use a frozen reference model, see objectives.py);
* the optimizer: a name from the registry in `optim` with its arguments in params (`optimizers:`), or a
  ready-made one (e.g. opacus's private optimizer);
* hooks: per-step work (a curvature refresh) and per-epoch early stopping (a forgetting criterion);
* the batch plan: seeded shuffling by default, or the caller's (DP-SGD's Poisson sampling, see dp.py).

Seeded (batch order is a pure function of seed and epoch), deterministic on CPU, resumable (model,
optimizer and step saved atomically to `resume_dir`), timed; a non-finite loss stops the run and is
recorded as diverged, not raised.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from unlearn_repro.batches import (  # noqa: F401  (re-exported: callers know them as train.collate, ...)
    Hook,
    Item,
    Objective,
    batch_order,
    collate,
    lm_loss,
    negated_lm_loss,
    pad_left,
)
from unlearn_repro.io import git_commit
from unlearn_repro.optim import make_optimizer
from unlearn_repro.progress import progress


@dataclass(frozen=True)
class Recipe:
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # a name in optim.OPTIMIZERS
    optimizer_args: Mapping = field(
        default_factory=dict
    )  # that optimizer's extra arguments (params `optimizers`)
    seed: int = 0
    checkpoint_every: int = 200  # optimizer steps between resume checkpoints (with resume_dir)

    @classmethod
    def from_config(cls, section, cfg=None, **overrides) -> Recipe:
        """A recipe from a params section (epochs, lr, batch_size, weight_decay, optimizer); the optimizer's
        arguments come from cfg.optimizers.<name> when cfg is given."""
        keys = ("epochs", "lr", "batch_size", "weight_decay", "optimizer")
        fields = {k: section[k] for k in keys if k in section} | overrides
        name = fields.get("optimizer", "adamw")
        if cfg is not None and "optimizer_args" not in fields:
            fields["optimizer_args"] = dict(cfg.optimizers.get(name, {})) if "optimizers" in cfg else {}
        return cls(**fields)


def train(
    model,
    seqs: Sequence[Item],
    recipe: Recipe,
    *,
    pad_id: int,
    device,
    objective: Objective = lm_loss,
    optimizer: torch.optim.Optimizer | None = None,
    hooks: Sequence[Hook] = (),
    resume_dir: str | Path | None = None,
    desc: str = "train",
    batches=None,
) -> dict:
    """Train `model` in place on `seqs`; return stats (steps, losses, wall time, diverged, stopped_early).
    `batches`: epoch -> that epoch's lists of item indices (default: batch_order's seeded shuffle)."""

    if not seqs:
        raise ValueError(f"{desc}: no training sequences")
    torch.manual_seed(recipe.seed)
    opt = optimizer or make_optimizer(recipe, [p for p in model.parameters() if p.requires_grad])
    epoch_batches = batches or (lambda e: batch_order(len(seqs), recipe.batch_size, recipe.seed, e))
    per_epoch = [epoch_batches(e) for e in range(recipe.epochs)]
    plan = [(e, b) for e, batches in enumerate(per_epoch) for b in batches]
    state_path = Path(resume_dir) / "train_state.pt" if resume_dir else None
    start_step, losses, elapsed = 0, [], 0.0
    key = resume_key(recipe, seqs, desc)
    if state_path and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)  # tensors and numbers only
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_step, losses, elapsed = state["step"], state["losses"], state["elapsed"]
            print(f"[{desc}] resuming at step {start_step}/{len(plan)}", flush=True)
        else:
            print(
                f"[{desc}] resume state in {state_path} was made with other settings, data or code: "
                "starting over",
                flush=True,
            )
    model.train()
    t0, diverged, stopped_at = time.perf_counter(), False, None
    for step in progress(range(start_step, len(plan)), total=len(plan) - start_step, desc=desc):
        epoch, idx = plan[step]
        loss = objective(model, collate([seqs[i] for i in idx], pad_id, device), step)
        if not torch.isfinite(loss):
            diverged = True
            print(f"[{desc}] non-finite loss at step {step}: stopping, recorded as diverged", flush=True)
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        for h in hooks:
            h.on_step_end(step, model, opt, losses[-1])
        last_of_epoch = step + 1 == len(plan) or plan[step + 1][0] != epoch
        if last_of_epoch and any([h.on_epoch_end(epoch, model) for h in hooks]):
            stopped_at = epoch + 1
            print(f"[{desc}] stopping criterion met after epoch {stopped_at}", flush=True)
            break
        if state_path and (step + 1) % recipe.checkpoint_every == 0 and step + 1 < len(plan):
            _save_state(state_path, model, opt, step + 1, losses, elapsed + time.perf_counter() - t0, key)
    model.eval()
    if state_path and state_path.exists():
        state_path.unlink()
        if not any(state_path.parent.iterdir()):
            state_path.parent.rmdir()
    return {
        "steps": len(losses),
        "final_loss": losses[-1] if losses else math.nan,
        "epoch_losses": _epoch_means(losses, len(per_epoch[0])),
        "wall_time_s": elapsed + time.perf_counter() - t0,
        "diverged": diverged,
        "stopped_after_epoch": stopped_at,
    }


def _epoch_means(losses: list[float], steps_per_epoch: int) -> list[float]:
    if steps_per_epoch <= 0:
        return []
    return [
        sum(c) / len(c)
        for i in range(0, len(losses), steps_per_epoch)
        if (c := losses[i : i + steps_per_epoch])
    ]


def resume_key(recipe: Recipe, seqs: Sequence[Item], desc: str) -> str:
    """What a resume state must match: the recipe, the exact training items, the run's name, the code."""

    h = hashlib.sha256(json.dumps([asdict(recipe), desc, git_commit()], sort_keys=True, default=str).encode())
    for it in seqs:
        h.update(
            json.dumps(it, sort_keys=True).encode()
            if isinstance(it, Mapping)
            else np.asarray(it, dtype=np.int64).tobytes() + b"|"
        )
    return h.hexdigest()


def _save_state(path: Path, model, opt, step: int, losses: list[float], elapsed: float, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "losses": losses,
            "elapsed": elapsed,
            "key": key,
        },
        tmp,
    )
    os.replace(tmp, path)

"""The one training loop: pretraining, fine-tuning, retraining, the finetune baseline and every
loss-based unlearning method (gradient ascent: the negated loss) go through `train`.

Seeded (batch order is a pure function of seed and epoch), deterministic on CPU, resumable (optimizer and
step saved atomically to `resume_dir`), timed; a non-finite loss stops the run and is reported, not raised.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from unlearn_repro.progress import progress

LossFn = Callable[[torch.nn.Module, dict], torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    optimizer: str = "adamw"      # adamw | sgd (plain theta <- theta - lr * grad, Alg. 1)
    seed: int = 0
    checkpoint_every: int = 200   # optimizer steps between resume checkpoints (with resume_dir)

    @classmethod
    def from_config(cls, section, **overrides) -> "Recipe":
        fields = {k: section[k] for k in ("epochs", "lr", "batch_size", "weight_decay") if k in section}
        return cls(**{**fields, **overrides})


def collate(seqs: Sequence[Sequence[int]], pad_id: int, device) -> dict:
    """Right-padded batch; padded label positions are -100 (ignored by the loss)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def lm_loss(model, batch) -> torch.Tensor:
    """Mean next-token cross entropy over the batch's real tokens."""
    return model(**batch).loss


def negated_lm_loss(model, batch) -> torch.Tensor:
    """Gradient ascent: descending this ascends the language-model loss."""
    return -model(**batch).loss


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def _optimizer(model, r: Recipe):
    params = [p for p in model.parameters() if p.requires_grad]
    if r.optimizer == "sgd":
        return torch.optim.SGD(params, lr=r.lr)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay)
    raise ValueError(f"unknown optimizer {r.optimizer!r}; valid choices: adamw, sgd")


def train(model, seqs: Sequence[Sequence[int]], recipe: Recipe, *, pad_id: int, device,
          loss_fn: LossFn = lm_loss, resume_dir: str | Path | None = None, desc: str = "train") -> dict:
    """Train `model` in place on token sequences; return stats (steps, losses, wall time, diverged)."""
    if not seqs:
        raise ValueError(f"{desc}: no training sequences")
    torch.manual_seed(recipe.seed)
    opt = _optimizer(model, recipe)
    plan = [(e, b) for e in range(recipe.epochs) for b in batch_order(len(seqs), recipe.batch_size, recipe.seed, e)]
    state_path = Path(resume_dir) / "train_state.pt" if resume_dir else None
    start_step, losses, elapsed = 0, [], 0.0
    if state_path and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_step, losses, elapsed = state["step"], state["losses"], state["elapsed"]
        print(f"[{desc}] resuming at step {start_step}/{len(plan)}", flush=True)
    model.train()
    t0, diverged = time.perf_counter(), False
    for step in progress(range(start_step, len(plan)), total=len(plan) - start_step, desc=desc):
        batch = collate([seqs[i] for i in plan[step][1]], pad_id, device)
        loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            diverged = True
            print(f"[{desc}] non-finite loss at step {step}: stopping, recorded as diverged", flush=True)
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if state_path and (step + 1) % recipe.checkpoint_every == 0 and step + 1 < len(plan):
            _save_state(state_path, model, opt, step + 1, losses, elapsed + time.perf_counter() - t0)
    model.eval()
    if state_path and state_path.exists():
        state_path.unlink()
        if not any(state_path.parent.iterdir()):
            state_path.parent.rmdir()
    per_epoch = _epoch_means(losses, len(plan) // max(recipe.epochs, 1))
    return {"steps": len(losses), "final_loss": losses[-1] if losses else math.nan, "epoch_losses": per_epoch,
            "wall_time_s": elapsed + time.perf_counter() - t0, "diverged": diverged}


def _epoch_means(losses: list[float], steps_per_epoch: int) -> list[float]:
    if steps_per_epoch <= 0:
        return []
    return [sum(c) / len(c) for i in range(0, len(losses), steps_per_epoch) if (c := losses[i:i + steps_per_epoch])]


def _save_state(path: Path, model, opt, step: int, losses: list[float], elapsed: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "losses": losses,
                "elapsed": elapsed}, tmp)
    os.replace(tmp, path)

"""The vocabulary every training and scoring loop shares: an item, a batch (right-padded with masked labels,
or left-padded prompts for generation), the seeded batch order, the plain LM losses and the Hook interface.
Kept apart from train.py so that the optimizers (optim/) and objectives, which the loop imports, can use
them without importing the loop."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import torch

# A training item: token ids, or {"ids": [...], "prompt_len": k} whose first k tokens are context only
# (no loss on them: preference optimization trains on the answer after a forget prompt).
Item = Sequence[int] | Mapping


class Objective(Protocol):
    def __call__(self, model, batch: dict, step: int) -> torch.Tensor: ...


class Hook:
    """Per-step and per-epoch work inside the loop; the defaults do nothing."""

    def on_step_end(self, step: int, model, optimizer, loss: float) -> None:
        pass

    def on_epoch_end(self, epoch: int, model) -> bool:
        """Return True to stop training after this epoch (an early-stopping criterion is met)."""
        return False


def collate(items: Sequence[Item], pad_id: int, device) -> dict:
    """Right-padded batch; padded (and prompt) label positions are -100, ignored by the loss."""
    seqs = [it["ids"] if isinstance(it, Mapping) else it for it in items]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    for i, it in enumerate(items):
        if isinstance(it, Mapping):
            labels[i, : it.get("prompt_len", 0)] = -100
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def pad_left(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask of prompts to continue (generation appends on the right)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long), 1
    return ids.to(device), mask.to(device)


def lm_loss(model, batch, step: int = 0) -> torch.Tensor:
    """Mean next-token cross entropy over the batch's real tokens (the ordinary training objective)."""
    return model(**batch).loss


def negated_lm_loss(model, batch, step: int = 0) -> torch.Tensor:
    """Gradient ascent: descending this ascends the language-model loss."""
    return -model(**batch).loss


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]

"""Objectives for the one training loop (train.py): what a step minimizes, beyond plain language
modeling. An unlearning objective is a forget term on the loop's batch plus, optionally, a retain term
on a batch that the objective draws itself from a seeded sampler (gradient difference, IHL, NPO, PO)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unlearn_repro.batches import batch_order, collate, lm_loss


class RetainSampler:
    """Batches of the retain set D+ as a pure function of the step: a resumed run draws the same ones."""

    def __init__(self, retain: Sequence, batch_size: int, seed: int, pad_id: int, device):
        if not retain:
            raise ValueError("the objective needs retain samples, but the retain set is empty")
        self.retain, self.batch_size, self.seed, self.pad_id, self.device = (
            retain,
            batch_size,
            seed,
            pad_id,
            device,
        )
        self.per_epoch = math.ceil(len(retain) / batch_size)
        self._order: tuple[int, list[list[int]]] | None = None

    def indices(self, step: int) -> list[int]:
        epoch, i = divmod(step, self.per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, batch_order(len(self.retain), self.batch_size, self.seed, epoch))
        return self._order[1][i]

    def __call__(self, step: int) -> dict:
        return collate([self.retain[i] for i in self.indices(step)], self.pad_id, self.device)


@dataclass
class RetainRegularized:
    """forget_term(model, forget batch) + gamma * CE(model, retain batch of this step)."""

    forget_term: Callable[[torch.nn.Module, dict], torch.Tensor]
    retain: RetainSampler | None = None
    gamma: float = 0.0

    def __call__(self, model, batch: dict, step: int) -> torch.Tensor:
        loss = self.forget_term(model, batch)
        if self.retain is not None and self.gamma:
            loss = loss + self.gamma * lm_loss(model, self.retain(step))
        return loss

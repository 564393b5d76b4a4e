"""What the loss-based methods share: one run of the training loop over the forget set with a forget
term, plus an optional retain term (gamma * CE on D+ batches the objective draws itself). Each method
supplies only its forget term (and, for PO, the forget items it trains on)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from unlearn_repro.methods.base import NONNEG_NUM, POS_INT, POS_NUM, Context, Method, object_schema
from unlearn_repro.objectives import RetainRegularized, RetainSampler
from unlearn_repro.optim import OPTIMIZERS
from unlearn_repro.train import Recipe, train


def loss_schema(**extra) -> dict:
    """The params block of a loss-based method: its recipe plus its own keys."""
    return object_schema(
        optional=("epochs", "weight_decay"),
        lr=POS_NUM,
        epochs=POS_INT,
        optimizer={"enum": OPTIMIZERS.names()},
        weight_decay=NONNEG_NUM,
        **extra,
    )


GAMMA = {"gamma": {**NONNEG_NUM, "description": "weight of the retain term gamma * CE(D+ batch)"}}


class LossMethod(Method):
    sections = ("optimizers",)
    schema = loss_schema()
    loss_based, step_key = True, "lr"

    def forget_term(self, ctx: Context, model) -> Callable[[torch.nn.Module, dict], torch.Tensor]:
        raise NotImplementedError

    def forget_items(self, ctx: Context, forget: Sequence[Sequence[int]], cycle: int) -> Sequence:
        """What the loop iterates over: the forget sequences themselves unless a method rewrites them."""
        return forget

    def unlearn(self, ctx, model, forget, retain, cycle):
        p, seed = self.hp(ctx.cfg), ctx.seed * 1000 + cycle
        bs = ctx.cfg.unlearn.forget_batch_size
        recipe = Recipe.from_config({"epochs": 1, **p}, ctx.cfg, batch_size=bs, seed=seed)
        gamma = float(p.get("gamma", 0.0))
        sampler = RetainSampler(retain, bs, seed + 1, ctx.pad_id, ctx.device) if gamma else None
        objective = RetainRegularized(self.forget_term(ctx, model), sampler, gamma)
        stats = train(
            model,
            self.forget_items(ctx, forget, cycle),
            recipe,
            pad_id=ctx.pad_id,
            device=ctx.device,
            objective=objective,
            hooks=ctx.hooks,
            resume_dir=ctx.work_dir,
            desc=f"{self.name} cycle {cycle}",
        )
        return model, stats

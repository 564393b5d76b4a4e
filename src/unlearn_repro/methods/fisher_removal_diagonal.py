"""Fisher Removal with a diagonal F^-1 (ablation, issue 21):
theta <- theta + gamma (diag(F_hat) + lambda I)^-1 g.

Why: it keeps the per-coordinate scale of the Fisher and drops the within-block couplings, so it says how much
of the block F^-1's effect comes from the off-diagonal curvature. It is Fisher Removal with blocks of width 1:
a block-diagonal F^-1 with 1x1 blocks is exactly (diag(F_hat) + lambda I)^-1, and lambda follows the same rule
(relative damping uses mean diag F_hat, which does not depend on the block width). Not in the main study."""

from __future__ import annotations

from dataclasses import replace

from unlearn_repro.frozen import overlay
from unlearn_repro.methods.base import POS_NUM, object_schema, register
from unlearn_repro.methods.newton import NewtonMethod, flat_grad
from unlearn_repro.metrics.curvature import newton_premise


class FisherRemovalVariant(NewtonMethod):
    """Fisher Removal's step rule theta <- theta + gamma P g with P built from the same D+ Fisher; a variant
    picks P (`direction`) and the block width of the Fisher it is built from (`block_size`, None: as set)."""

    schema = object_schema(gamma=POS_NUM)
    step_key = "gamma"
    block_size: int | None = None

    def direction(self, fisher, grad):
        raise NotImplementedError

    def unlearn(self, ctx, model, forget, retain, cycle):
        if self.block_size is not None:
            ctx = replace(ctx, cfg=overlay(ctx.cfg, {"fisher": {"block_size": self.block_size}}))
        return super().unlearn(ctx, model, forget, retain, cycle)

    def step(self, ctx, model, fisher, forget_batch, generator):
        grad = flat_grad(model, forget_batch, ctx.pad_id, ctx.device).float()
        direction = self.direction(fisher, grad)
        return self.hp(ctx.cfg).gamma * direction, newton_premise(direction, grad, fisher.damping)


@register
class FisherRemovalDiagonal(FisherRemovalVariant):
    name, label = "fisher_removal_diagonal", "Fisher Removal (diagonal F^-1)"
    block_size = 1

    def direction(self, fisher, grad):
        return fisher.matmul(grad)

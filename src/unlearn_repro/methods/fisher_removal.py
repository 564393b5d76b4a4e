"""Fisher Removal (Alg. 2): theta <- theta + gamma * F^-1 grad L(B^-), F^-1 the inverse empirical
Fisher of D+ (a Newton step that raises the loss on D- while weighting directions D+ relies on less)."""

from __future__ import annotations

from unlearn_repro.methods.base import POS_NUM, object_schema, register
from unlearn_repro.methods.newton import NewtonMethod, flat_grad
from unlearn_repro.metrics.curvature import newton_premise


@register
class FisherRemoval(NewtonMethod):
    name, label = "fisher_removal", "Fisher Removal"
    schema = object_schema(gamma=POS_NUM)
    step_key = "gamma"

    def step(self, ctx, model, fisher, forget_batch, generator):
        grad = flat_grad(model, forget_batch, ctx.pad_id, ctx.device).float()
        direction = fisher.matmul(grad)
        return ctx.cfg.methods.fisher_removal.gamma * direction, newton_premise(
            direction, grad, fisher.damping
        )

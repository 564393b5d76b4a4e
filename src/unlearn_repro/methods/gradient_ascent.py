"""Gradient ascent (Alg. 1): theta <- theta + l * grad L(B^-), one pass over the forget batches."""
from __future__ import annotations

from unlearn_repro.methods.base import Method, register
from unlearn_repro.train import Recipe, negated_lm_loss, train


@register
class GradientAscent(Method):
    name = "gradient_ascent"

    def unlearn(self, ctx, model, forget, retain, cycle):
        p = ctx.cfg.methods.gradient_ascent
        recipe = Recipe(epochs=1, lr=p.lr, batch_size=ctx.cfg.unlearn.forget_batch_size, optimizer=p.optimizer,
                        seed=ctx.seed + cycle)
        stats = train(model, forget, recipe, pad_id=ctx.pad_id, device=ctx.device, loss_fn=negated_lm_loss,
                      desc=f"gradient ascent cycle {cycle}")
        return model, stats

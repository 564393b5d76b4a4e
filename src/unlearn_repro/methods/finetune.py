"""Finetuning baseline: keep training the current model on D+ (1 epoch), hoping D- fades."""
from __future__ import annotations

from unlearn_repro.methods.base import Method, register
from unlearn_repro.train import Recipe, train


@register
class Finetune(Method):
    name = "finetune"

    def unlearn(self, ctx, model, forget, retain, cycle):
        recipe = Recipe.from_config(ctx.cfg.finetune, epochs=ctx.cfg.methods.finetune.epochs, seed=ctx.seed + cycle)
        stats = train(model, retain, recipe, pad_id=ctx.pad_id, device=ctx.device,
                      resume_dir=ctx.work_dir, desc=f"finetune cycle {cycle}")
        return model, stats

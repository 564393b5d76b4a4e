"""Finetuning baseline: keep training the current model on D+ (1 epoch), hoping D- fades."""

from __future__ import annotations

from unlearn_repro.methods.base import POS_INT, Method, object_schema, register
from unlearn_repro.train import Recipe, train


@register
class Finetune(Method):
    name, label = "finetune", "Finetuning"
    sections = ("finetune", "optimizers")
    schema = object_schema(epochs=POS_INT)

    def unlearn(self, ctx, model, forget, retain, cycle):
        recipe = Recipe.from_config(
            ctx.cfg.finetune, ctx.cfg, epochs=ctx.cfg.methods.finetune.epochs, seed=ctx.seed + cycle
        )
        stats = train(
            model,
            retain,
            recipe,
            pad_id=ctx.pad_id,
            device=ctx.device,
            resume_dir=ctx.work_dir,
            desc=f"finetune cycle {cycle}",
        )
        return model, stats

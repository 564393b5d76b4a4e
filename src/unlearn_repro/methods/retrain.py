"""Retraining (the benchmark): discard the model, fine-tune the pre-fine-tuning model on D+ only."""

from __future__ import annotations

from unlearn_repro.methods.base import POS_INT, Method, object_schema, register
from unlearn_repro.models import checkpoint
from unlearn_repro.train import Recipe, train


@register
class Retrain(Method):
    name, label = "retrain", "Retraining"
    sections = ("finetune", "optimizers")
    schema = object_schema(epochs=POS_INT)
    base_epochs_key = "epochs"  # retraining repeats the base model's training (a study's own base included)

    def unlearn(self, ctx, model, forget, retain, cycle):
        fresh, _, _ = checkpoint.load(ctx.pretrained_path, ctx.device)
        recipe = Recipe.from_config(
            ctx.cfg.finetune, ctx.cfg, epochs=ctx.cfg.methods.retrain.epochs, seed=ctx.seed + cycle
        )
        stats = train(
            fresh,
            retain,
            recipe,
            pad_id=ctx.pad_id,
            device=ctx.device,
            resume_dir=ctx.work_dir,
            desc=f"retrain cycle {cycle}",
        )
        return fresh, stats

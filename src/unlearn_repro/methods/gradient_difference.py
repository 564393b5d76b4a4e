"""Gradient difference (GD; SOUL's GradDiff; FLoRA's GD): -CE(forget batch) + gamma * CE(retain batch).
Gradient ascent held back by ordinary training on D+ in the same step."""
from __future__ import annotations

from unlearn_repro.methods.base import register
from unlearn_repro.methods.loss_based import GAMMA, LossMethod, loss_schema
from unlearn_repro.train import negated_lm_loss


@register
class GradientDifference(LossMethod):
    name, label = "gradient_difference", "Gradient Difference"
    schema = loss_schema(**GAMMA)

    def forget_term(self, ctx, model):
        return negated_lm_loss

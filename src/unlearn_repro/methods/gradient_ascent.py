"""Gradient ascent (Alg. 1): theta <- theta + l * grad L(B^-), one pass over the forget batches."""

from __future__ import annotations

from unlearn_repro.methods.base import register
from unlearn_repro.methods.loss_based import LossMethod
from unlearn_repro.train import negated_lm_loss


@register
class GradientAscent(LossMethod):
    name, label = "gradient_ascent", "Gradient Ascent"

    def forget_term(self, ctx, model):
        return negated_lm_loss

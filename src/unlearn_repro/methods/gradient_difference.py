"""Gradient difference (GD; SOUL's GradDiff; FLoRA's GD): -CE(forget batch) + gamma * CE(retain batch).
Gradient ascent held back by ordinary training on D+ in the same step."""

from __future__ import annotations

from unlearn_repro.methods.base import register
from unlearn_repro.methods.gradient_ascent import GradientAscent
from unlearn_repro.methods.loss_based import GAMMA, loss_schema


@register
class GradientDifference(GradientAscent):
    """Gradient ascent's forget term; its `gamma` switches on LossMethod's retain term."""

    name, label = "gradient_difference", "Gradient Difference"
    schema = loss_schema(**GAMMA)
    needs_retain = True

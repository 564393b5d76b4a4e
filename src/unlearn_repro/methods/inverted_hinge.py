"""Inverted Hinge Loss (FLoRA paper Eq. 5): IHL(forget) + gamma * CE(retain). Per token
max(0, 1 + p(x_t) - max_{v != x_t} p(v)): lowers the true token only until the runner-up overtakes it,
so the loss is bounded and the gradient goes to one other token instead of the whole vocabulary."""

from __future__ import annotations

from unlearn_repro import losses
from unlearn_repro.methods.base import register
from unlearn_repro.methods.loss_based import GAMMA, LossMethod, loss_schema


def _ihl(model, batch):
    return losses.inverted_hinge(
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]
    )


@register
class InvertedHinge(LossMethod):
    name, label = "inverted_hinge", "Inverted Hinge"
    schema = loss_schema(**GAMMA)
    needs_retain = True

    def forget_term(self, ctx, model):
        return _ihl

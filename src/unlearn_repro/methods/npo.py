"""Negative preference optimization (NPO): -(2/beta) log sigmoid(beta (l_theta(x) - l_ref(x))) on forget
sequences (l = the sequence's summed NLL, ref = the frozen model at the start of the cycle) + gamma *
CE(retain). Like gradient ascent while the model still agrees with the reference; its weight fades as
l_theta grows, so the loss cannot run away."""

from __future__ import annotations

import copy

import torch

from unlearn_repro import losses
from unlearn_repro.methods.base import POS_NUM, register
from unlearn_repro.methods.loss_based import GAMMA, LossMethod, loss_schema


class _NPOTerm:
    def __init__(self, reference, beta: float):
        self.reference, self.beta = reference, beta

    def __call__(self, model, batch):
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.no_grad():
            ref = losses.sequence_nll(self.reference(**inputs).logits, batch["labels"])
        return losses.npo(losses.sequence_nll(model(**inputs).logits, batch["labels"]), ref, self.beta)


@register
class NPO(LossMethod):
    name, label = "npo", "NPO"
    schema = loss_schema(beta=POS_NUM, **GAMMA)
    needs_retain = needs_reference = True

    def forget_term(self, ctx, model):
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        return _NPOTerm(reference, float(self.hp(ctx.cfg)["beta"]))

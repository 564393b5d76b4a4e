"""Preference optimization (PO, as in SOUL / TOFU): CE toward a refusal answer on each forget prompt +
gamma * CE(retain). Forget prompts are the first `prompt_fraction` of each forget sequence (raw text and
task rows alike); the refusals are plain "I don't know"-style sentences shipped in data/refusals.txt,
assigned to prompts by a seeded draw. Loss is counted on the answer only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from unlearn_repro.methods.base import register
from unlearn_repro.methods.loss_based import GAMMA, LossMethod, loss_schema
from unlearn_repro.train import lm_loss

REFUSALS = Path(__file__).resolve().parents[1] / "data" / "refusals.txt"


def refusals() -> list[str]:
    lines = [ln.strip() for ln in REFUSALS.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def refusal_items(tokenizer, forget, prompt_fraction: float, max_length: int, seed: int) -> list[dict]:
    """{"ids": prompt + refusal, "prompt_len": len(prompt)} per forget sequence (cut to max_length). A forget
    item that already has a prompt ({"ids", "prompt_len"}: a QA pair) keeps its question as the prompt."""
    answers = [tokenizer(" " + a, add_special_tokens=False)["input_ids"] for a in refusals()]
    pick = np.random.default_rng(seed).integers(len(answers), size=len(forget))
    items = []
    for seq, j in zip(forget, pick):
        prompt = (
            list(seq["ids"][: seq["prompt_len"]])
            if isinstance(seq, Mapping)
            else list(seq[: max(1, int(len(seq) * prompt_fraction))])
        )
        ids = (prompt + answers[j] + [tokenizer.eos_token_id])[:max_length]
        items.append({"ids": ids, "prompt_len": min(len(prompt), len(ids) - 1)})
    return items


@register
class Preference(LossMethod):
    name, label = "preference", "PO"
    schema = loss_schema(
        prompt_fraction={"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, **GAMMA
    )
    needs_retain = True

    def forget_term(self, ctx, model):
        return lm_loss

    def forget_items(self, ctx, forget, cycle):
        p = self.hp(ctx.cfg)
        return refusal_items(
            ctx.tokenizer, forget, p["prompt_fraction"], ctx.cfg.data.max_length, ctx.seed * 1000 + cycle
        )

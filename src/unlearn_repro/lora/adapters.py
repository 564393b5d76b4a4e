"""LoRA adapters through peft: target modules named by group (q, k, v, o, ffn) and resolved per model family,
and a study wrapper (`Method.prepare`'s `ctx.wrappers`) that adds plain LoRA or FLoRA before a cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from peft import LoraConfig, get_peft_model

from unlearn_repro.lora.flora import flora_init

# The module names of each group in the Hugging Face implementations (GPT-Neo's attention output is
# `out_proj`; its FFN is `mlp.c_fc`, `mlp.c_proj`; OPT's FFN is `fc1`, `fc2`; Llama's (TOFU's model)
# attention output is `o_proj`, its gated FFN `gate_proj`, `up_proj`, `down_proj`).
TARGET_NAMES = {
    "gpt_neo": {
        "q": ["q_proj"],
        "k": ["k_proj"],
        "v": ["v_proj"],
        "o": ["out_proj"],
        "ffn": ["c_fc", "c_proj"],
    },
    "opt": {"q": ["q_proj"], "k": ["k_proj"], "v": ["v_proj"], "o": ["out_proj"], "ffn": ["fc1", "fc2"]},
    "llama": {
        "q": ["q_proj"],
        "k": ["k_proj"],
        "v": ["v_proj"],
        "o": ["o_proj"],
        "ffn": ["gate_proj", "up_proj", "down_proj"],
    },
}
GROUPS = ("q", "k", "v", "o", "ffn")


def target_modules(family: str, groups: Sequence[str]) -> list[str]:
    """peft `target_modules` for these groups of a model family (gpt_neo | opt | llama)."""
    if family not in TARGET_NAMES:
        raise ValueError(
            f"LoRA: no target-module names for model family {family!r}; known: {sorted(TARGET_NAMES)}"
        )
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise ValueError(f"LoRA: unknown target group(s) {bad}; valid: {list(GROUPS)}")
    return [name for g in groups for name in TARGET_NAMES[family][g]]


def add_lora(model, groups: Sequence[str], rank: int, alpha: float):
    """The model with rank-`rank` LoRA adapters (peft's default init: B = 0, so the output is unchanged) on
    the target groups; only the adapters train. peft scales the adapter output by alpha / rank."""
    cfg = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=target_modules(model.config.model_type, groups),
    )
    return get_peft_model(model, cfg)


def trainable_share(model) -> float:
    """Trainable parameters as a percentage of all parameters (the base weights plus any adapters)."""
    total = sum(p.numel() for p in model.parameters())
    return 100.0 * sum(p.numel() for p in model.parameters() if p.requires_grad) / total


def lora_wrapper(
    kind: str,
    groups: Sequence[str],
    rank: int,
    alpha: float,
    fisher_eps: float = 1e-8,
    fisher_retain: int | None = None,
):
    """A `ctx.wrappers` entry: plain LoRA (`lora`) or FLoRA (`flora`: adapters initialized from the forget and
    retain sets' Fisher, base weights replaced by the residual)."""
    if kind not in ("lora", "flora"):
        raise ValueError(f"adapter kind {kind!r}: expected lora or flora")

    def wrap(ctx, model, forget, retain, cycle):
        # peft draws A at random (B = 0): seeded per run and cycle, not from whatever the process drew before
        torch.manual_seed(1000 * (ctx.seed if ctx is not None else 0) + cycle)
        peft_model = add_lora(model, groups, rank, alpha)
        if kind == "flora":  # QA items (TOFU's: ids and prompt length) enter the Fisher as their whole text
            forget, retain = _ids(forget), _ids(list(retain)[:fisher_retain] if fisher_retain else retain)
            flora_init(peft_model, forget, retain, fisher_eps)
        return peft_model

    return wrap


def _ids(items) -> list:
    return [it["ids"] if isinstance(it, Mapping) else it for it in items]

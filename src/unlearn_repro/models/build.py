"""One code path for every model: tiny configs and hub checkpoints both come out as a HF causal LM."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, GPTNeoConfig, OPTConfig

from unlearn_repro.models.registry import MODELS

CONFIGS = {"gpt_neo": GPTNeoConfig, "opt": OPTConfig}


def build_model(name: str, tokenizer, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A fresh model: tiny ones random-initialized from their config, hub ones from their weights."""
    spec = MODELS.get(name)
    if spec.is_tiny:
        config = CONFIGS[spec.family](vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                      **spec.config)
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=dtype)
    return AutoModelForCausalLM.from_pretrained(spec.hub_id, dtype=dtype)


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for (params.yaml `device`), but torch sees no CUDA device")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())

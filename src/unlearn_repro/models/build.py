"""One code path for every model: tiny configs and hub checkpoints both come out as a HF causal LM."""

from __future__ import annotations

import os

import torch

from unlearn_repro.errors import DeviceError, HubError, one_line
from unlearn_repro.hub import ModelSource
from unlearn_repro.models.registry import MODELS

CONFIGS = {"gpt_neo": "GPTNeoConfig", "opt": "OPTConfig", "llama": "LlamaConfig"}  # transformers classes


def build_model(name: str, tokenizer, seed: int = 0, dtype: torch.dtype = torch.float32, source=None):
    """A fresh model: tiny ones random-initialized from their config, hub ones from their weights (`source`: a
    hub.ModelSource, i.e. params' `model_sources.<name>`, else the registry's hub id)."""
    import transformers  # here, not at the top: a Snakefile that plans jobs never builds a model

    spec = MODELS.get(name)
    if spec.is_tiny:
        config = getattr(transformers, CONFIGS[spec.family])(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **spec.config,
        )
        torch.manual_seed(seed)
        return transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)

    source = source or ModelSource(spec.hub_id)
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(
            source.path, revision=source.revision, dtype=dtype
        )
    except OSError as e:  # not in the cache while offline, unreachable hub, unknown repo or revision
        raise HubError(
            f"model {name} ({source}): {one_line(e)}; fetch it first with `python -m unlearn_repro "
            f"download` (cache: $HF_HOME) or set model_sources.{name} to a local folder"
        ) from None


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "device: cuda was asked for (params.yaml `device`), but torch sees no CUDA device "
            "(CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); set device: cpu or auto"
        )
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())

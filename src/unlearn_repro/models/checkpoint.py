"""Checkpoints: a folder with safetensors weights, the HF config, the tokenizer and meta.json
(params, git commit, data hashes, the CPU and its numeric code path), written atomically so a crash never
leaves half a checkpoint.

A wrapped model (peft LoRA adapters, an opacus GradSampleModule) is saved as its merged plain weights: a
checkpoint always loads as an ordinary Hugging Face model, whatever trained it. `meta.json` records what
was merged (`merged_from`)."""

from __future__ import annotations

from pathlib import Path

import torch

from unlearn_repro import numerics
from unlearn_repro.io import atomic_dir, git_commit, read_json, write_json


def _is_peft(model) -> bool:
    return hasattr(model, "merge_and_unload")


def _is_opacus(model) -> bool:  # GradSampleModule keeps the model in `_module`
    return hasattr(model, "_module") and not hasattr(model, "save_pretrained")


def unwrap(model):
    """The plain model inside a wrapper: LoRA adapters merged into the base weights (in place), an opacus
    `_module` taken out. A plain model is returned as it is."""
    while _is_peft(model) or _is_opacus(model):
        model = model.merge_and_unload() if _is_peft(model) else model._module
    return model


def save(model, tokenizer, path: str | Path, meta: dict) -> None:
    """Write a checkpoint; a wrapped model is merged first (see `unwrap`: the caller's wrapper is spent)."""
    if _is_peft(model) or _is_opacus(model):
        meta = {**meta, "merged_from": type(model).__name__}
        model = unwrap(model)
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        meta = {
            **meta,
            "add_bos": bool(getattr(tokenizer, "_unlearn_add_bos", False)),
            "git_commit": meta.get("git_commit", git_commit()),
            "numerics": numerics.describe(),
        }
        write_json(Path(tmp) / "meta.json", meta)


def load(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer, meta) from a checkpoint folder made by `save`."""
    import transformers  # here, not at the top: a Snakefile that plans jobs never loads a checkpoint

    tokenizer, meta = tokenizer_of(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tokenizer, meta


def tokenizer_of(path: str | Path):
    """(tokenizer, meta) of a checkpoint folder, without its weights (steps that only encode text)."""
    import transformers

    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"{path}: not a checkpoint (no meta.json); run the rule that makes it")
    meta = read_json(path / "meta.json")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    tokenizer._unlearn_add_bos = meta.get("add_bos", False)
    return tokenizer, meta

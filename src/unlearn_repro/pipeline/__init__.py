"""The pipeline's steps, one function per Snakemake rule; cli.py parses arguments and calls them."""

from __future__ import annotations

from pathlib import Path

from unlearn_repro.config import ConfigError
from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import pick_device


def open_checkpoint(cfg, path: str | Path):
    """(model, tokenizer, meta, device): a checkpoint loaded on the configured device
    (every step's set-up)."""
    device = pick_device(cfg.device)
    model, tok, meta = checkpoint.load(path, device)
    return model, tok, meta, device


def study_seeds(cfg, study: str) -> list[int]:
    """`<study>.seeds`, or the main study's seeds (null); a seed the main study does not run is an error."""
    own = getattr(cfg, study).seeds
    chosen = list(own) if own is not None else list(cfg.seeds)
    if not set(chosen) <= set(cfg.seeds):
        raise ConfigError(f"params.yaml: {study}.seeds {chosen} are not all in seeds {list(cfg.seeds)}")
    return chosen

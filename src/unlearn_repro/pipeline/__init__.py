"""The pipeline's steps, one function per Snakemake rule; cli.py parses arguments and calls them."""

from __future__ import annotations

from pathlib import Path

from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import pick_device


def open_checkpoint(cfg, path: str | Path):
    """(model, tokenizer, meta, device): a checkpoint loaded on the configured device
    (every step's set-up)."""
    device = pick_device(cfg.device)
    model, tok, meta = checkpoint.load(path, device)
    return model, tok, meta, device

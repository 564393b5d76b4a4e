"""Processed task rows -> the token sequences models are trained and scored on: the one place that
reads a processed split with its kind and encodes it (fine-tuning, unlearning and evaluation share it)."""

from __future__ import annotations

from pathlib import Path

from unlearn_repro.data.registry import training_text
from unlearn_repro.io import read_json, read_jsonl
from unlearn_repro.models.tokenizers import encode


def encode_rows(tokenizer, rows: list[dict], kind: str, max_length: int) -> list[list[int]]:
    """Training / exposure sequences of task rows (long ones keep their end: the answer)."""
    return [encode(tokenizer, training_text(r, kind), max_length, keep="right") for r in rows]


def data_kind(data_dir: str | Path) -> str:
    """The row kind recorded in a processed data set's meta.json (multiple_choice, cloze, text, ...)."""
    return read_json(Path(data_dir) / "meta.json")["kind"]


def split_sequences(tokenizer, data_dir: str | Path, split: str, max_length: int) -> list[list[int]]:
    """One processed split of a data set, encoded."""
    data_dir = Path(data_dir)
    return encode_rows(tokenizer, read_jsonl(data_dir / f"{split}.jsonl"), data_kind(data_dir), max_length)

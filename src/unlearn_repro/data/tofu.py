"""TOFU (fictitious-author QA): mirror files use {prompt, response}, the hub {question, answer}."""

from __future__ import annotations

import json
from pathlib import Path

from unlearn_repro.data.registry import DatasetSpec, register

TOFU_SPLITS = (
    "full",
    "forget01",
    "forget05",
    "forget10",
    "retain90",
    "retain95",
    "retain99",
    "holdout01",
    "holdout05",
    "holdout10",
    "real_authors",
    "world_facts",
    # the evaluation sets, with paraphrased / perturbed answers (the truth ratio's inputs)
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "real_authors_perturbed",
    "world_facts_perturbed",
)
EXTRA_KEYS = ("paraphrased_answer", "paraphrased_question", "perturbed_answer")


def _qa_row(r: dict, i: int, prefix: str = "tofu") -> dict:
    q = r.get("question", r.get("prompt"))
    a = r.get("answer", r.get("response"))
    if q is None or a is None:
        raise ValueError(f"TOFU row {i} has neither question/answer nor prompt/response keys: {sorted(r)}")
    return {"id": f"{prefix}-{i}", "question": q, "answer": a, **{k: r[k] for k in EXTRA_KEYS if k in r}}


def _read_json_documents(path: Path) -> list[dict]:
    """A JSON file that may hold several top-level arrays one after another (the mirror's full.json)."""
    text, pos, rows = path.read_text(), 0, []
    decoder = json.JSONDecoder()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON at char {pos}: {e}") from None
        rows.extend(doc if isinstance(doc, list) else [doc])
    return rows


def _mirror(split: str):
    def read(folder: Path) -> list[dict]:
        path = folder / f"{split}.json"
        rows = _read_json_documents(path)
        return [_qa_row(r, i, f"tofu-{split}") for i, r in enumerate(rows)]

    return read


register(
    DatasetSpec(
        "tofu",
        "qa",
        "tofu",
        {s: _mirror(s) for s in TOFU_SPLITS},
        # on the hub each TOFU split is a config with one `train`
        # split: load_dataset("locuslab/TOFU", "forget10")
        "locuslab/TOFU",
        None,
        {s: f"{s}:train" for s in TOFU_SPLITS},
        _qa_row,
        mirror_files=tuple(f"{s}.json" for s in TOFU_SPLITS),
    )
)

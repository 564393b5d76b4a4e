"""Plain-text corpora: WikiText-2 (pretraining, exposure reference offline), medical transcriptions and
Enron e-mails (memorization case studies), ECHR (the paper's exposure reference, hub only)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from unlearn_repro.data.registry import DatasetSpec, register

csv.field_size_limit(sys.maxsize)


def _paragraphs(path: Path, prefix: str) -> list[dict]:
    """WikiText's own .txt: one paragraph a line; headings (' = X = ') and blank lines dropped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            text = line.strip()
            if text and not text.startswith("="):
                rows.append({"id": f"{prefix}-{i}", "text": text})
    return rows


def _wikitext_hub(r: dict, i: int) -> dict | None:
    text = r["text"].strip()
    return {"id": f"wikitext2-{i}", "text": text} if text and not text.startswith("=") else None


register(
    DatasetSpec(
        "wikitext2",
        "text",
        "wikitext2",
        {
            "validation": lambda f: _paragraphs(f / "valid.txt", "wikitext2-valid"),
            "test": lambda f: _paragraphs(f / "test.txt", "wikitext2-test"),
        },
        "Salesforce/wikitext",
        "wikitext-2-v1",
        {"train": "train", "validation": "validation", "test": "test"},
        _wikitext_hub,
        mirror_files=("valid.txt", "test.txt"),
    )
)


MTSAMPLES_COLUMNS = ["", "description", "medical_specialty", "sample_name", "transcription", "keywords"]


def _read_csv(path: Path, columns: list[str] | None = None) -> list[dict]:
    """CSV rows as dicts; `columns` names them when the file has no header line (the mirror's mtsamples)."""
    with open(path, newline="", encoding="utf-8") as f:
        first = f.readline()
        f.seek(0)
        has_header = columns is None or "transcription" in first.split(",")
        return list(csv.DictReader(f, fieldnames=None if has_header else columns))


def _mtsamples_row(r: dict, i: int) -> dict | None:
    text = (r.get("transcription") or "").strip()
    return {"id": f"mtsamples-{i}", "text": text} if text else None


register(
    DatasetSpec(
        "mtsamples",
        "text",
        "mtsamples",
        {
            "train": lambda f: [
                x
                for i, r in enumerate(_read_csv(f / "mtsamples_first400.csv", MTSAMPLES_COLUMNS))
                if (x := _mtsamples_row(r, i)) is not None
            ]
        },
        "NickyNicky/medical_mtsamples",
        None,
        {"train": "train"},
        _mtsamples_row,
        mirror_files=("mtsamples_first400.csv",),
    )
)


def _enron_mirror(folder: Path) -> list[dict]:
    rows = []
    for i, r in enumerate(_read_csv(folder / "allen_p_emails.csv")):
        text = f"Subject: {r['subject']}\n{r['body']}".strip()
        rows.append({"id": f"enron-allen-{i}", "text": text})
    for path in sorted(folder.glob("pile_enron_8_*.csv")):
        for r in _read_csv(path):
            rows.append({"id": f"enron-pile-{r['doc_id']}", "text": r["text"].strip()})
    return rows


def _enron_hub(r: dict, i: int) -> dict | None:
    text = (r.get("text") or r.get("body") or "").strip()
    return {"id": f"enron-{i}", "text": text} if text else None


register(
    DatasetSpec(
        "enron",
        "text",
        "enron",
        {"train": _enron_mirror},
        "LLM-PBE/enron-email",
        None,
        {"train": "train"},
        _enron_hub,
        mirror_files=("allen_p_emails.csv",),
    )
)


def _echr_hub(r: dict, i: int) -> list[dict]:
    """ECtHR cases: each fact paragraph is one reference text."""
    return [{"id": f"echr-{i}-{j}", "text": p.strip()} for j, p in enumerate(r["facts"]) if p.strip()]


register(
    DatasetSpec(  # main holds a loading script: read the hub's own parquet conversion of one config
        "echr",
        "text",
        "echr",
        {},
        "AUEB-NLP/ecthr_cases",
        "alleged-violation-prediction",
        {"train": "train", "validation": "validation", "test": "test"},
        _echr_hub,
        hub_revision="refs/convert/parquet",
        hub_data_dir="alleged-violation-prediction",
    )
)

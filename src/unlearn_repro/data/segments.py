"""Long texts cut into segments below the model's input limit (paper §6.1: "we further split each
transcription into shorter segments"), for the memorization corpora. Word-based, so a prepared corpus
does not depend on a tokenizer; deterministic (consecutive runs of at most `max_words` words), and the
segments concatenate back to the original text, so nothing is lost or rewritten."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from unlearn_repro.data.registry import DATASETS, choose_source, load_split
from unlearn_repro.data.splits import DATA_SEED, _write_prepared, cap
from unlearn_repro.io import git_commit

_WORD = re.compile(r"\S+\s*")


def segment_text(text: str, max_words: int) -> list[str]:
    """Consecutive segments of at most `max_words` whitespace-separated words (each keeps the whitespace
    that follows its words); "".join(segments) == text.strip()."""
    if max_words < 1:
        raise ValueError(f"segment_words must be >= 1, got {max_words}")
    words = _WORD.findall(text.strip())
    return ["".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def segment_rows(rows: list[dict], max_words: int) -> list[dict]:
    """Every row's text as segments: id `<row id>#<j>`, `source` = the row id (near-duplicate analysis
    tells a text's own other segments from other texts')."""
    out = []
    for r in rows:
        for j, seg in enumerate(segment_text(r["text"], max_words)):
            out.append({"id": f"{r['id']}#{j}", "source": r["id"], "text": seg.rstrip()})
    return out


def cap_segments(
    rows: list[dict], max_words: int, max_segments: int | None, seed: int = DATA_SEED
) -> list[dict]:
    """Whole texts, taken in a seeded order while their segments fit in `max_segments`, kept in the original
    order: corpora of very different text lengths (MT reports, short e-mails) get the same training size."""
    if max_segments is None:
        return rows
    keep, total = set(), 0
    for i in np.random.default_rng(seed).permutation(len(rows)):
        n = len(segment_text(rows[i]["text"], max_words))
        if total + n <= max_segments:
            keep.add(int(i))
            total += n
    return [r for i, r in enumerate(rows) if i in keep]


def prepare_segmented(
    name: str,
    cfg,
    max_texts: int | None,
    max_words: int,
    out_dir: str | Path,
    max_segments: int | None = None,
) -> dict:
    """A memorization corpus: at most `max_texts` texts of the data set's training split (a seeded subset,
    as the paper's 100k-sample subset) and at most `max_segments` segments, cut into segments; every segment
    is trained on (train.jsonl), the texts left out are the held-out rows. The segmentation is recorded in
    meta.json."""
    d = cfg.data
    spec = DATASETS.get(name)
    if spec.kind != "text":
        raise ValueError(f"{name}: memorization corpora are text data sets, this one is {spec.kind!r}")
    source = choose_source(d.source, d.mirror_dir)
    rows = load_split(name, "train", source, d.mirror_dir, d.hub_paths.get(name))
    kept = cap_segments(cap(rows, max_texts), max_words, max_segments)
    kept_ids = {r["id"] for r in kept}
    train = segment_rows(kept, max_words)
    heldout = segment_rows([r for r in rows if r["id"] not in kept_ids], max_words)
    per_text = [len(segment_text(r["text"], max_words)) for r in kept]
    meta = {
        "dataset": name,
        "kind": "text",
        "source": source,
        "origin": str(Path(d.mirror_dir) / spec.mirror_folder)
        if source == "mirror"
        else (d.hub_paths.get(name) or spec.hub_id),
        "rows_before_cap": len(rows),
        "texts": len(kept),
        "caps": {"texts": max_texts, "segments": max_segments},
        "segmentation": {
            "unit": "whitespace-separated words",
            "max_words": max_words,
            "rule": "consecutive runs of at most max_words words; segments concatenate to the text",
            "segments": len(train),
            "max_segments_per_text": max(per_text, default=0),
            "texts_split": sum(n > 1 for n in per_text),
        },
        "rows": {"train": len(train), "test": len(heldout), "heldout": len(heldout)},
        "git_commit": git_commit(),
    }
    _write_prepared(out_dir, train, heldout, heldout, meta)
    return meta

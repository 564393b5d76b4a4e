"""Training Data Extraction Challenge: GPT-Neo token ids, prefix (preprefix + prefix) and suffix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unlearn_repro.data.registry import DatasetSpec, register


def _mirror(split: str):
    def read(folder: Path) -> list[dict]:
        pre = np.load(folder / f"{split}_preprefix.npy")
        prefix = np.load(folder / f"{split}_prefix.npy")
        suffix = np.load(folder / f"{split}_suffix.npy")
        if not (len(pre) == len(prefix) == len(suffix)):
            raise ValueError(
                f"{folder}: {split}_* arrays differ in length: {len(pre)}, {len(prefix)}, {len(suffix)}"
            )
        ids = np.concatenate([pre, prefix, suffix], axis=1).astype(np.int64)
        return [
            {"id": f"tdec-{split}-{i}", "ids": row.tolist(), "suffix_len": suffix.shape[1]}
            for i, row in enumerate(ids)
        ]

    return read


register(
    DatasetSpec(
        "tdec",
        "token_ids",
        "tdec",
        {"train": _mirror("train"), "validation": _mirror("val")},
        None,
        None,
        {},
        None,
        mirror_files=tuple(
            f"{s}_{part}.npy" for s in ("train", "val") for part in ("preprefix", "prefix", "suffix")
        ),
        release="https://github.com/google-research/lm-extraction-benchmark (datasets/train_dataset.npy; "
        "split it into train_/val_ preprefix, prefix, suffix .npy as the mirror's tdec/ folder holds them)",
    )
)

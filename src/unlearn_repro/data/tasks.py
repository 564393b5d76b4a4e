"""The four task data sets of the main tables: ARC-Easy, PIQA, MathQA (multiple choice), LAMBADA (cloze)."""

from __future__ import annotations

import re
from pathlib import Path

from unlearn_repro.data.registry import DatasetSpec, register
from unlearn_repro.io import map_jsonl


def _arc_row(r: dict, i: int) -> dict | None:
    """ARC in AI2's jsonl (question.stem / question.choices) or the hub's (question / choices.text)."""
    if isinstance(r["question"], dict):
        stem = r["question"]["stem"]
        texts = [c["text"] for c in r["question"]["choices"]]
        labels = [c["label"] for c in r["question"]["choices"]]
    else:
        stem, texts, labels = r["question"], list(r["choices"]["text"]), list(r["choices"]["label"])
    if r["answerKey"] not in labels:
        return None
    return {
        "id": r.get("id", str(i)),
        "query": f"Question: {stem}\nAnswer: ",
        "choices": texts,
        "gold": labels.index(r["answerKey"]),
    }


def _arc_mirror(split: str):
    return lambda folder: map_jsonl(folder / f"{split}.jsonl", _arc_row)


register(
    DatasetSpec(
        "arc_easy",
        "multiple_choice",
        "arc_easy",
        {s: _arc_mirror(s) for s in ("train", "validation", "test")},
        "allenai/ai2_arc",
        "ARC-Easy",
        {"train": "train", "validation": "validation", "test": "test"},
        _arc_row,
        mirror_files=("train.jsonl", "validation.jsonl", "test.jsonl"),
    )
)


def _fewshot_mirror(folder: Path, file: str, prefix: str) -> list[dict]:
    """llm-foundry eval rows {query, choices, gold} are already our schema."""
    return map_jsonl(
        folder / file,
        lambda r, i: {
            "id": f"{prefix}-{i}",
            "query": r["query"],
            "choices": list(r["choices"]),
            "gold": int(r["gold"]),
        },
    )


def _piqa_hub(r: dict, i: int) -> dict | None:
    if int(r["label"]) not in (0, 1):  # the hub's test split hides labels (-1)
        return None
    return {
        "id": f"piqa-{i}",
        "query": f"Question: {r['goal']}\n",
        "choices": [r["sol1"], r["sol2"]],
        "gold": int(r["label"]),
    }


register(
    DatasetSpec(
        "piqa",
        "multiple_choice",
        "piqa",
        {"validation": lambda f: _fewshot_mirror(f, "validation.jsonl", "piqa")},
        # ybisk/piqa is a loading script (datasets 4+ refuses it); baber/piqa is its parquet copy (goal, sol1,
        # sol2, label; train + validation), the one lm-evaluation-harness reads since March 2025
        "baber/piqa",
        None,
        {"train": "train", "validation": "validation"},
        _piqa_hub,
        mirror_files=("validation.jsonl",),
    )
)

_OPTION = re.compile(r"([a-e])\s*\)\s*(.*?)\s*(?=(?:,\s*[a-e]\s*\))|$)")


def _mathqa_hub(r: dict, i: int) -> dict | None:
    """The hub's 'a ) 38 , b ) 27.6 , ...' options become the mirror's lettered query (all 5 kept)."""
    options = _OPTION.findall(r["options"])
    if not options or r["correct"] not in [k for k, _ in options]:
        return None
    lines = "".join(f"{k.upper()}. {v}\n" for k, v in options)
    return {
        "id": f"mathqa-{i}",
        "query": f"Question: {r['Problem']}\n{lines}Answer: ",
        "choices": [k.upper() for k, _ in options],
        "gold": [k for k, _ in options].index(r["correct"]),
    }


register(
    DatasetSpec(
        "mathqa",
        "multiple_choice",
        "mathqa",
        {"test": lambda f: _fewshot_mirror(f, "test.jsonl", "mathqa")},
        # allenai/math_qa is a loading script; regisss/math_qa is its parquet copy (same 7 columns, same rows:
        # lm-evaluation-harness PR #3943 hashed every split against the original)
        "regisss/math_qa",
        None,
        {"train": "train", "validation": "validation", "test": "test"},
        _mathqa_hub,
        mirror_files=("test.jsonl",),
    )
)


def _lambada_hub(r: dict, i: int) -> dict:
    """The hub serves whole passages: the last whitespace-separated word is the target."""
    context, word = r["text"].rsplit(" ", 1)
    return {"id": f"lambada-{i}", "context": context, "continuation": word}


register(
    DatasetSpec(
        "lambada",
        "cloze",
        "lambada",
        {
            "test": lambda f: map_jsonl(
                f / "test.jsonl",
                lambda r, i: {
                    "id": f"lambada-{i}",
                    "context": r["context"].rstrip(),
                    "continuation": r["continuation"].strip(),
                },
            )
        },
        # parquet on main; its English config is `default` (lm-evaluation-harness's lambada_openai.yaml)
        "EleutherAI/lambada_openai",
        "default",
        {"test": "test"},
        _lambada_hub,
        mirror_files=("test.jsonl",),
    )
)

"""Task accuracy from per-token log-probabilities (pure functions; collect.py computes the inputs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def choose(choice_logprobs: Sequence[np.ndarray]) -> int:
    """Index of the choice with the highest length-normalized (mean per-token) log-likelihood."""
    return int(np.argmax([float(np.mean(lp)) for lp in choice_logprobs]))


def multiple_choice_accuracy(per_question: Sequence[Sequence[np.ndarray]], gold: Sequence[int]) -> float:
    """Share of questions whose best-scored choice is the gold one."""
    if len(per_question) != len(gold):
        raise ValueError(f"{len(per_question)} scored questions but {len(gold)} gold labels")
    if not gold:
        raise ValueError("no questions to score")
    return float(np.mean([choose(q) == g for q, g in zip(per_question, gold)]))


def last_word_correct(greedy_ids: Sequence[int], target_ids: Sequence[int]) -> bool:
    """LAMBADA: right only if every token of the last word is the greedy prediction."""
    return len(target_ids) > 0 and list(greedy_ids) == list(target_ids)


def delta_accuracy(before: float, after: float) -> float:
    """Eq. 11 in percentage points."""
    return 100.0 * (after - before)

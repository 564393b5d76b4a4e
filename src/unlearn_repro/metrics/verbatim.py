"""Extraction test (paper §6.1-6.2): does a model, given a training text's first tokens, reproduce what
follows? The paper does not define "memorized"; ours: at least one sample reproduces the next L tokens
exactly. Per target the best sample's exact-match length and token overlap are kept too, so the
definition can be changed without generating again. Near-duplicates (§6.4): other training segments
sharing an n-gram of tokens with a text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def match_length(sample: Sequence[int], reference: Sequence[int]) -> int:
    """How many leading tokens of `sample` equal `reference` (the exact-match prefix of a continuation)."""
    s, r = np.asarray(sample), np.asarray(reference)
    n = min(len(s), len(r))
    diff = np.flatnonzero(s[:n] != r[:n])
    return int(diff[0]) if diff.size else n


def token_overlap(sample: Sequence[int], reference: Sequence[int]) -> float:
    """Share of the reference's positions where the sample has the same token."""
    s, r = np.asarray(sample), np.asarray(reference)
    if len(r) == 0:
        raise ValueError("token_overlap of an empty reference")
    n = min(len(s), len(r))
    return float(np.sum(s[:n] == r[:n]) / len(r))


def score_samples(samples: Sequence[Sequence[int]], reference: Sequence[int], length: int) -> dict:
    """One target's samples against its true continuation: memorized (some sample's first `length`
    tokens are the reference's), the best exact-match length and the best token overlap."""
    if len(reference) < length:
        raise ValueError(f"reference has {len(reference)} tokens, fewer than L = {length}")
    ref = list(reference)[:length]
    matches = [match_length(s, ref) for s in samples]
    overlaps = [token_overlap(list(s)[:length], ref) for s in samples]
    return {
        "memorized": bool(max(matches) >= length),
        "match_length": int(max(matches)),
        "overlap": float(max(overlaps)),
        "samples_memorized": int(sum(m >= length for m in matches)),
    }


def is_memorized(match_lengths: Sequence[int], length: int) -> np.ndarray:
    """Re-apply the definition to stored best match lengths with another L."""
    return np.asarray(match_lengths) >= length


def ngrams(ids: Sequence[int], n: int) -> set[tuple[int, ...]]:
    ids = list(ids)
    return {tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)}


def near_duplicates(target: Sequence[int], others: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """For each other sequence: how many of the target's distinct n-grams it contains (0 = none shared)."""
    grams = ngrams(target, n)
    return np.array([len(grams & ngrams(o, n)) for o in others], dtype=int)


def shared_ngram_counts(
    windows: Sequence[Sequence[int]], corpus: Sequence[Sequence[int]], n: int
) -> np.ndarray:
    """counts[t, j] = how many distinct n-grams of windows[t] corpus[j] contains; one pass over the corpus
    (the same numbers as `near_duplicates` per window, without comparing every pair of sets)."""
    owners: dict[tuple[int, ...], list[int]] = {}
    for t, w in enumerate(windows):
        for g in ngrams(w, n):
            owners.setdefault(g, []).append(t)
    counts = np.zeros((len(windows), len(corpus)), dtype=np.int32)
    for j, seq in enumerate(corpus):
        for g in ngrams(seq, n):
            for t in owners.get(g, ()):
                counts[t, j] += 1
    return counts

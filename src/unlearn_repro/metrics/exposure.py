"""Exposure (Carlini et al. 2019; paper §4.2.1), approximated with a sampled reference set.

exp(s) = log2|Q| - log2 rank(s). Q, all sequences of s's length, is approximated by Q = S u {s} with S a
random sample of same-length sequences from a reference corpus, so |Q| = |S| + 1 and rank(s) = 1 + the
number of references the model finds more likely (lower total NLL) than s. exp ranges over
[0, log2(|S| + 1)]: 0 = s is the least likely, log2(|S|+1) = more likely than every reference.
"""

from __future__ import annotations

import numpy as np


def rank(sample_nll: float, reference_nll: np.ndarray) -> int:
    """1 + how many references have a strictly lower NLL than the sample (ties favour the sample)."""
    return 1 + int(np.sum(np.asarray(reference_nll) < sample_nll))


def exposure(sample_nll: float, reference_nll: np.ndarray) -> float:
    ref = np.asarray(reference_nll)
    return float(np.log2(len(ref) + 1) - np.log2(rank(sample_nll, ref)))


def exposures_by_length(
    sample_nll: np.ndarray,
    sample_len: np.ndarray,
    reference_cum_nll: np.ndarray,
    reference_len: np.ndarray | None = None,
) -> np.ndarray:
    """Exposure of each sample against the references cut to the sample's own length.

    reference_cum_nll[j, t] is reference j's total NLL over its first t+1 predicted tokens, and
    reference_len[j] how many tokens it predicts (default: its count of non-NaN entries), so a sample that
    predicts L tokens is compared with column L-1 of the references at least that long; one forward pass
    serves every length. Where the model's scores are not numbers (a diverged model) the exposure is NaN:
    lengths come from reference_len, never from NaN, so a NaN score is not read as "past the end".
    """
    cum = np.asarray(reference_cum_nll, dtype=float)
    lengths = np.sum(~np.isnan(cum), axis=1) if reference_len is None else np.asarray(reference_len)
    out = np.empty(len(sample_nll))
    for i, (nll, length) in enumerate(zip(sample_nll, sample_len)):
        if not 1 <= length <= cum.shape[1]:
            raise ValueError(f"sample {i} predicts {length} tokens; references cover 1..{cum.shape[1]}")
        col = cum[lengths >= length, length - 1]
        if len(col) == 0:
            raise ValueError(f"sample {i} predicts {length} tokens; no reference is that long")
        out[i] = np.nan if np.isnan(nll) or np.isnan(col).any() else exposure(nll, col)
    return out


def delta_exposure(before: np.ndarray, after: np.ndarray) -> float:
    """Eq. 10: mean over D- of exp_after(s) - exp_before(s)."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"exposure arrays differ in shape: {before.shape} vs {after.shape}")
    return float(np.mean(after - before))

"""Weight distributions (paper §9.1, Figure 4): the last transformer block's weights as a histogram on
bins shared by every method, and KL(P_method || P_retrain) between two such histograms."""

from __future__ import annotations

import numpy as np


def last_block(model) -> tuple[str, np.ndarray]:
    """(name prefix, flattened weights) of the model's last transformer block (GPT-Neo `transformer.h.N`,
    OPT `model.decoder.layers.N`): the paper's "last layer" before the tied output embedding."""
    names = [n for n, _ in model.named_parameters()]
    for marker in (".h.", ".layers."):
        indices = sorted({int(n.split(marker)[1].split(".")[0]) for n in names if marker in n})
        if indices:
            prefix = next(n for n in names if marker in n).split(marker)[0] + f"{marker}{indices[-1]}."
            values = [
                p.detach().float().cpu().reshape(-1)
                for n, p in model.named_parameters()
                if n.startswith(prefix)
            ]
            return prefix.rstrip("."), np.concatenate([v.numpy() for v in values])
    raise ValueError(
        f"no transformer blocks (.h.N / .layers.N) among the parameters of {type(model).__name__}"
    )


def shared_edges(arrays, bins: int) -> np.ndarray:
    """`bins` equal-width bins over the range of all arrays together (the same bins for every method)."""
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, bins + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.histogram(values, bins=edges)[0].astype(float)


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray, eps: float = 1e-10) -> float:
    """KL(P || Q) in nats between two histograms on the same bins: each normalized to a distribution,
    eps added to every bin (so empty bins stay finite) and renormalized."""
    p = np.asarray(p_counts, float)
    q = np.asarray(q_counts, float)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in bins: {p.shape} vs {q.shape}")
    p = p / p.sum() + eps
    q = q / q.sum() + eps
    p, q = p / p.sum(), q / q.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(np.where(p > 0, p * np.log(p / q), 0.0)))  # 0 log 0 = 0

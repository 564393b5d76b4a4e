"""The weight-distribution KL (§9.1) on hand-computed histograms and against scipy."""

import math

import numpy as np
import pytest
from scipy.stats import entropy

from unlearn_repro.metrics.weights import histogram, kl_divergence, last_block, shared_edges


def test_kl_hand_computed_and_scipy():
    p, q = np.array([2.0, 2.0]), np.array([1.0, 3.0])  # P = (1/2, 1/2), Q = (1/4, 3/4)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(p, q, eps=0.0) == pytest.approx(expected, abs=1e-12)
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 50, 30).astype(float), rng.integers(1, 50, 30).astype(float)
    assert kl_divergence(a, b, eps=0.0) == pytest.approx(entropy(a, b), rel=1e-10)
    # an empty bin in Q stays finite with eps, and matches scipy on the same smoothed distributions
    q0 = np.array([4.0, 0.0])
    got = kl_divergence(p, q0, eps=1e-6)
    ps, qs = p / p.sum() + 1e-6, q0 / q0.sum() + 1e-6
    assert np.isfinite(got) and got == pytest.approx(entropy(ps / ps.sum(), qs / qs.sum()), rel=1e-10)
    with pytest.raises(ValueError, match="differ in bins"):
        kl_divergence(p, np.ones(3))


def test_shared_bins_and_last_block(tiny_model_and_batches):
    edges = shared_edges([np.array([0.0, 1.0]), np.array([-1.0, 0.5])], 4)
    assert edges.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert histogram(np.array([-0.9, 0.1, 0.2, 0.99]), edges).tolist() == [1.0, 0.0, 2.0, 1.0]
    model, _, _ = tiny_model_and_batches
    name, w = last_block(model)
    assert name == "transformer.h.3"
    assert w.size == sum(p.numel() for n, p in model.named_parameters() if n.startswith("transformer.h.3."))

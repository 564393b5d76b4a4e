"""Metrics on hand-computed values, and the collectors against a direct computation on a tiny model."""
import math

import numpy as np
import pytest
import torch

from unlearn_repro.metrics import accuracy
from unlearn_repro.metrics.collect import exposures, task_accuracy, token_logprobs
from unlearn_repro.metrics.exposure import delta_exposure, exposure, exposures_by_length, rank


def test_exposure_hand_computed():
    refs = np.array([5.0, 7.0, 9.0])        # |S| = 3, so |Q| = 4
    assert rank(6.0, refs) == 2             # one reference (5.0) is more likely
    assert exposure(6.0, refs) == pytest.approx(math.log2(4) - math.log2(2))   # = 1
    assert exposure(1.0, refs) == pytest.approx(2.0)                           # most likely: log2 4
    assert exposure(10.0, refs) == pytest.approx(0.0)                          # least likely
    assert rank(7.0, refs) == 2                                                # ties favour the sample


def test_exposures_use_references_of_the_same_length():
    cum = np.array([[1.0, 2.0, 3.0], [0.5, 4.0, 4.5], [2.0, 2.5, 9.0]])   # 3 refs, lengths 1..3
    got = exposures_by_length(np.array([1.5, 3.0]), np.array([1, 3]), cum)
    assert got[0] == pytest.approx(2 - math.log2(3))   # length 1: refs 1.0, 0.5, 2.0 -> 2 lower, rank 3
    assert got[1] == pytest.approx(2 - math.log2(1))   # length 3: refs 3.0, 4.5, 9.0 -> 0 lower
    with pytest.raises(ValueError, match="predicts 4 tokens"):
        exposures_by_length(np.array([1.0]), np.array([4]), cum)
    assert delta_exposure(np.array([3.0, 1.0]), np.array([1.0, 1.0])) == -1.0
    # a reference shorter than the sample is left out: only 2 references reach length 3
    ragged = np.array([[1.0, 2.0, 3.0], [0.5, 4.0, np.nan], [2.0, 2.5, 1.0]])
    assert exposures_by_length(np.array([2.0]), np.array([3]), ragged)[0] == pytest.approx(math.log2(3) - math.log2(2))


def test_accuracy_functions():
    lp = [[np.array([-1.0, -1.0]), np.array([-0.5, -3.0, -0.1])], [np.array([-2.0]), np.array([-1.0])]]
    # q1: means -1.0 vs -1.2 -> choice 0; q2: -2 vs -1 -> choice 1
    assert accuracy.choose(lp[0]) == 0
    assert accuracy.multiple_choice_accuracy(lp, [0, 0]) == 0.5
    assert accuracy.last_word_correct([4, 5], [4, 5]) and not accuracy.last_word_correct([4, 6], [4, 5])
    assert accuracy.delta_accuracy(0.50, 0.25) == -25.0


def test_token_logprobs_match_a_direct_forward(tiny_model_and_batches):
    model, batches, pad = tiny_model_and_batches
    seqs = [b[0] for b in batches]
    got = token_logprobs(model, seqs, pad, "cpu", batch_size=2)
    for s, lp in zip(seqs, got):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([s])).logits[0, :-1]
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(s[1:]).unsqueeze(-1)).squeeze(-1)
        assert np.allclose(lp, ref.numpy(), atol=1e-5)


def test_task_accuracy_and_exposure_on_a_model(tiny_model_and_batches, tiny_tokenizer):
    model, batches, pad = tiny_model_and_batches
    rows = [{"query": "the quick brown", "choices": [" fox", " data"], "gold": 0},
            {"query": "unlearning removes", "choices": [" data", " dog"], "gold": 1}]
    acc = task_accuracy(model, tiny_tokenizer, rows, "multiple_choice", 32, "cpu")
    assert acc in (0.0, 0.5, 1.0)
    cloze = task_accuracy(model, tiny_tokenizer, [{"context": "the quick brown", "continuation": "fox"}], "cloze", 32, "cpu")
    assert cloze in (0.0, 1.0)
    seqs = [b[0] for b in batches]
    refs = [(s * 8)[:12] for s in seqs] * 3          # 15 references, all of length 12
    exp = exposures(model, tiny_tokenizer, seqs[:2], refs, "cpu")
    assert exp.shape == (2,) and ((0 <= exp) & (exp <= math.log2(16))).all()

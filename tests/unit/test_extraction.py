"""EL_n and MA (FLoRA Appendix B) on hand-made token arrays, and the batched greedy decoding that feeds them
against one-row-at-a-time full forward passes without a cache."""

import pytest
import torch

from unlearn_repro.metrics.extraction import (
    el_n,
    extraction_scores,
    forgotten,
    greedy_continuations,
    greedy_predictions,
    memorization_accuracy,
    ngram_overlap,
    prefix_lengths,
)
from unlearn_repro.models.build import build_model


def test_ngram_overlap_by_hand():
    assert ngram_overlap([1, 2, 3, 4], [1, 2, 3, 4], 2) == 1.0
    assert ngram_overlap([1, 2, 9, 4], [1, 2, 3, 4], 2) == pytest.approx(1 / 3)  # (1,2) of (1,2),(2,9),(9,4)
    assert ngram_overlap([3, 4, 1, 2], [1, 2, 3, 4], 2) == pytest.approx(2 / 3)  # order-free membership
    assert ngram_overlap([1], [1, 2], 2) == 0.0


def test_el_n_by_hand():
    row = [1, 2, 3, 4, 5]
    # n = 2: prefix lengths 1, 2, 3; true rests [2,3,4,5], [3,4,5], [4,5]
    assert list(prefix_lengths(5, 2)) == [1, 2, 3]
    perfect = [[2, 3, 4, 5], [3, 4, 5], [4, 5]]
    assert el_n(row, perfect, 2) == 1.0
    mixed = [[2, 3, 9, 9], [3, 4, 5], [9, 9]]  # overlaps 1/3, 1, 0
    assert el_n(row, mixed, 2) == pytest.approx((1 / 3 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="continuations"):
        el_n(row, perfect[:2], 2)


def test_memorization_accuracy_by_hand():
    assert memorization_accuracy([1, 2, 3, 4, 5], [2, 3, 0, 5]) == pytest.approx(3 / 4)
    assert memorization_accuracy([7, 8], [0]) == 0.0


def test_forgetting_criterion_needs_both_metrics_below_the_threshold():
    thr = {"el10": 0.05, "ma": 0.3}
    assert forgotten({"el10": 0.0, "ma": 0.3}, thr)
    assert not forgotten({"el10": 0.0, "ma": 0.31}, thr)
    assert not forgotten({"el10": 0.06, "ma": 0.1}, thr)


@pytest.mark.parametrize("name", ["tiny-gpt-neo", "tiny-opt"])
def test_batched_greedy_decoding_matches_naive_decoding(tiny_tokenizer, name):
    torch.manual_seed(0)
    model = build_model(name, tiny_tokenizer, seed=0)
    with torch.no_grad():  # sharpen the random model so greedy choices are stable under float noise
        model.get_output_embeddings().weight.mul_(8)
    pad = tiny_tokenizer.pad_token_id
    # the third row is longer than GPT-Neo's local-attention window (32): the cache must respect it too
    rows = [[5, 9, 30, 7, 2, 60, 61, 62], [11, 4, 8, 70, 71, 72], [(7 * i) % 250 + 3 for i in range(40)]]
    prompts = [r[:t] for r in rows for t in range(1, len(r))]
    lengths = [len(r) - t for r in rows for t in range(1, len(r))]
    got = greedy_continuations(model, prompts, lengths, pad, batch_size=5)

    def naive(prompt, k):  # no padding, no cache: a full forward per generated token
        ids = list(prompt)
        for _ in range(k):
            with torch.no_grad():
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        return ids[len(prompt) :]

    assert got == [naive(p, k) for p, k in zip(prompts, lengths)]
    preds = greedy_predictions(model, rows, pad, batch_size=1)
    assert preds == [[naive(r[: j + 1], 1)[0] for j in range(len(r) - 1)] for r in rows]


def test_extraction_scores_of_a_model_that_knows_the_rows(tiny_tokenizer):
    """A model trained to repeat its rows scores EL = MA = 1 on them, and a model-free check of the plumbing:
    the per-row values average to the reported means."""
    from unlearn_repro.train import Recipe, train

    torch.manual_seed(0)
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
    rows = [[5, 9, 30, 7, 2, 60, 61, 62, 63, 64, 65, 66], [11, 4, 8, 70, 71, 72, 73, 74, 75, 76, 77, 78]]
    train(
        model,
        rows,
        Recipe(epochs=150, lr=3e-3, batch_size=2),
        pad_id=tiny_tokenizer.pad_token_id,
        device="cpu",
    )
    s = extraction_scores(model, rows, tiny_tokenizer.pad_token_id, n=3)
    assert s["ma"] == 1.0 and s["el3"] == 1.0
    assert s["el3"] == pytest.approx(sum(s["el3_rows"]) / 2)

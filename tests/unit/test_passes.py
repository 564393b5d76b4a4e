"""Sample passes (passes.py) against counts worked out by hand from each loop's shape."""

import torch

from unlearn_repro.fisher import per_sample
from unlearn_repro.passes import counting
from unlearn_repro.train import Recipe, train

SEQS = [[1, 5, 9, 12, 40, 7], [3, 4, 5, 6], [8, 9, 10, 11, 12], [20, 21, 22], [30, 31, 32, 33]]


def _model(tokenizer, name="tiny-opt"):
    from unlearn_repro.models.build import build_model

    return build_model(name, tokenizer, seed=0)


def test_a_training_loop_counts_every_row_of_every_epoch(tiny_tokenizer):
    model = _model(tiny_tokenizer)
    with counting() as c:
        recipe = Recipe(epochs=3, lr=1e-3, batch_size=4, seed=0)
        stats = train(model, SEQS * 2, recipe, pad_id=0, device="cpu")
    assert stats["steps"] == 9  # 10 rows in batches of 4: 3 steps an epoch (4, 4, 2)
    assert c.sample_passes == 3 * 10


def test_per_sample_gradients_count_one_pass_each_hooks_and_vmap(tiny_tokenizer):
    model = _model(tiny_tokenizer, "tiny-gpt-neo")
    groups = [[s] for s in SEQS]
    for fn in (per_sample.hook_grads, per_sample.batched_grads):
        with counting() as c:
            fn(model, groups, tiny_tokenizer.pad_token_id, "cpu")
        assert c.sample_passes == len(SEQS), fn.__name__
    with counting() as c:  # groups of two samples: each sample is a pass
        per_sample.batched_grads(model, [SEQS[:2], SEQS[2:4]], tiny_tokenizer.pad_token_id, "cpu")
    assert c.sample_passes == 4


def test_scoring_and_a_closed_counter_do_not_count(tiny_tokenizer):
    model = _model(tiny_tokenizer)
    ids = torch.tensor([SEQS[1], SEQS[3] + [0]])
    with counting() as c:
        with torch.no_grad():
            model(ids)
        model(input_ids=ids).logits.sum().backward()  # a keyword call is counted too
    assert c.sample_passes == 2
    model(ids)  # after the block: the hook is gone
    assert c.sample_passes == 2

"""DP-SGD through the one training loop: opacus's calibration, the loop's update against the ordinary loop,
per-sample gradients against a per-sample loop, and each Hugging Face pitfall (see dp.py)."""

import copy
import math

import pytest
import torch

from unlearn_repro import dp
from unlearn_repro.train import Recipe, collate, lm_loss, train

SEQS = [
    [5, 9, 12, 40, 7, 8],
    [3, 4, 5, 6],
    [8, 9, 10, 11, 12],
    [20, 21, 22],
    [30, 31, 32, 33, 34, 35, 36],
    [6, 7, 8, 9],
]


def _model(tok, name):
    from unlearn_repro.models.build import build_model

    return build_model(name, tok, seed=0)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_noise_multiplier_is_the_accountants_and_the_spent_epsilon_reaches_the_target(tiny_tokenizer):
    from opacus.accountants.utils import get_noise_multiplier

    seqs = SEQS * 4
    n, bs, epochs, eps, delta = len(seqs), 6, 2, 4.0, 1 / len(seqs)
    model = dp.prepare_model(_model(tiny_tokenizer, "tiny-gpt-neo"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    priv = dp.make_private(
        model, opt, n, batch_size=bs, epochs=epochs, max_grad_norm=1.0, delta=delta, seed=0, epsilon=eps
    )
    q, steps = dp.sampling(n, bs)
    assert (q, steps) == (1 / 4, 4)
    expected = get_noise_multiplier(
        target_epsilon=eps, target_delta=delta, sample_rate=q, steps=steps * epochs, accountant="rdp"
    )
    assert priv.noise_multiplier == pytest.approx(expected, rel=1e-6) and priv.steps == 8
    train(
        priv.model,
        seqs,
        Recipe(epochs=epochs, lr=0.01, batch_size=bs, optimizer="sgd"),
        pad_id=0,
        device="cpu",
        objective=dp.per_sequence_lm_loss,
        optimizer=priv.optimizer,
        batches=priv.batches,
    )
    # the accountant's epsilon after exactly the calibrated steps: at most the target, within its tolerance
    assert eps - 0.05 <= priv.epsilon() <= eps + 1e-6


@pytest.mark.parametrize("name", ["tiny-gpt-neo", "tiny-opt"])
def test_no_noise_and_no_clipping_gives_the_ordinary_loops_update(tiny_tokenizer, name):
    ordinary = dp.prepare_model(
        _model(tiny_tokenizer, name), train_token_embeddings=True
    )  # tied embeddings trained
    private = copy.deepcopy(ordinary)
    recipe = Recipe(epochs=1, lr=0.5, batch_size=len(SEQS), optimizer="sgd")
    train(ordinary, SEQS, recipe, pad_id=0, device="cpu", objective=dp.per_sequence_lm_loss)
    opt = torch.optim.SGD([p for p in private.parameters() if p.requires_grad], lr=0.5)
    priv = dp.make_private(
        private,
        opt,
        len(SEQS),
        batch_size=len(SEQS),
        epochs=1,
        max_grad_norm=1e6,
        delta=1e-5,
        seed=0,
        noise_multiplier=0.0,
        poisson=False,
    )
    train(
        priv.model,
        SEQS,
        recipe,
        pad_id=0,
        device="cpu",
        objective=dp.per_sequence_lm_loss,
        optimizer=priv.optimizer,
        batches=priv.batches,
    )
    plain = dp.release(priv.model)
    assert not torch.equal(_flat(plain), _flat(_model(tiny_tokenizer, name)))  # it moved
    assert torch.allclose(_flat(plain), _flat(ordinary), atol=1e-6)


@pytest.mark.parametrize("name", ["tiny-gpt-neo", "tiny-opt"])
def test_clipped_update_is_the_mean_of_clipped_per_sample_gradients(tiny_tokenizer, name):
    """Against a per-sample loop: catches OPT's [batch*time] flattening and the tied embedding's two uses."""
    start = dp.prepare_model(_model(tiny_tokenizer, name), train_token_embeddings=True)
    ref = copy.deepcopy(start)
    params = [p for p in ref.parameters() if p.requires_grad]
    clip, lr, total = 0.05, 1.0, [torch.zeros_like(p) for p in params]
    for s in SEQS:
        g = torch.autograd.grad(dp.per_sequence_lm_loss(ref, collate([s], 0, "cpu")), params)
        norm = torch.sqrt(sum((x**2).sum() for x in g))
        assert norm > clip  # clipping is active
        total = [t + x * min(1.0, clip / float(norm)) for t, x in zip(total, g)]
    expected = torch.cat([(p - lr * t / len(SEQS)).detach().flatten() for p, t in zip(params, total)])
    opt = torch.optim.SGD([p for p in start.parameters() if p.requires_grad], lr=lr)
    priv = dp.make_private(
        start,
        opt,
        len(SEQS),
        batch_size=len(SEQS),
        epochs=1,
        max_grad_norm=clip,
        delta=1e-5,
        seed=0,
        noise_multiplier=0.0,
        poisson=False,
    )
    train(
        priv.model,
        SEQS,
        Recipe(epochs=1, lr=lr, batch_size=len(SEQS), optimizer="sgd"),
        pad_id=0,
        device="cpu",
        objective=dp.per_sequence_lm_loss,
        optimizer=priv.optimizer,
        batches=priv.batches,
    )
    got = torch.cat([p.detach().flatten() for p in priv.model.parameters() if p.requires_grad])
    assert torch.allclose(got, expected, atol=1e-6)


def test_trainable_positional_embeddings_are_refused_by_name(tiny_tokenizer):
    model = _model(tiny_tokenizer, "tiny-gpt-neo")
    with pytest.raises(ValueError, match="transformer.wpe.weight"):
        dp.check_trainable(model)
    frozen = dp.freeze_embeddings(model)
    assert set(frozen) >= {"transformer.wpe.weight", "transformer.wte.weight"}
    dp.check_trainable(model)  # now fine
    assert not model.lm_head.weight.requires_grad  # tied with wte


def test_per_sequence_loss_weighs_sequences_not_tokens(tiny_tokenizer):
    model = _model(tiny_tokenizer, "tiny-opt")
    batch = collate(SEQS[:2], 0, "cpu")  # 6 and 4 tokens: 5 and 3 predicted
    one = [float(lm_loss(model, collate([s], 0, "cpu"))) for s in SEQS[:2]]
    assert float(dp.per_sequence_lm_loss(model, batch)) == pytest.approx(sum(one) / 2, rel=1e-5)
    assert float(lm_loss(model, batch)) == pytest.approx(
        (5 * one[0] + 3 * one[1]) / 8, rel=1e-5
    )  # HF: token mean


def test_poisson_plan_is_seeded_at_the_accountants_rate_and_refuses_empty_batches():
    q, steps = dp.sampling(1000, 50)
    plan = dp.poisson_batches(1000, q, steps, seed=3)
    sizes = [len(b) for e in range(5) for b in plan(e)]
    assert len(sizes) == 5 * steps and abs(sum(sizes) / len(sizes) - 50) < 2  # mean batch = q n
    assert plan(1) == dp.poisson_batches(1000, q, steps, seed=3)(1) and plan(1) != plan(2)
    with pytest.raises(ValueError, match="empty batch"):
        dp.poisson_batches(3, 1e-6, 2, seed=0)(0)


def test_a_private_models_checkpoint_loads_as_an_ordinary_model(tiny_tokenizer, tmp_path):
    from unlearn_repro.models import checkpoint

    model = dp.prepare_model(_model(tiny_tokenizer, "tiny-opt"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    priv = dp.make_private(
        model,
        opt,
        len(SEQS),
        batch_size=3,
        epochs=1,
        max_grad_norm=1.0,
        delta=1e-5,
        seed=0,
        noise_multiplier=1.0,
    )
    train(
        priv.model,
        SEQS,
        Recipe(epochs=1, lr=0.1, batch_size=3, optimizer="sgd"),
        pad_id=0,
        device="cpu",
        objective=dp.per_sequence_lm_loss,
        optimizer=priv.optimizer,
        batches=priv.batches,
    )
    assert any(k.startswith("_module.") for k in priv.model.state_dict())
    checkpoint.save(dp.release(priv.model), tiny_tokenizer, tmp_path / "ck", {"stage": "dp"})
    loaded, _, _ = checkpoint.load(tmp_path / "ck")
    assert type(loaded).__name__ == "OPTForCausalLM"
    assert {type(m).__name__ for m in dp.flattened_layers(loaded)} == {"Linear", "LayerNorm"}
    assert torch.equal(_flat(loaded), _flat(dp.release(priv.model)))
    assert math.isfinite(priv.epsilon())

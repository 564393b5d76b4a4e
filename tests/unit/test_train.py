import pytest
import torch

from unlearn_repro.objectives import RetainRegularized, RetainSampler
from unlearn_repro.train import Hook, Recipe, collate, lm_loss, negated_lm_loss, train


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _fresh(tokenizer):
    from unlearn_repro.models.build import build_model

    return build_model("tiny-opt", tokenizer, seed=0)


SEQS = [[1, 5, 9, 12, 40, 7], [3, 4, 5, 6], [8, 9, 10, 11, 12], [20, 21, 22], [30, 31, 32, 33]] * 3


def test_training_is_deterministic_and_lowers_the_loss(tiny_tokenizer):
    r = Recipe(epochs=3, lr=1e-2, batch_size=4, seed=1)
    a, b = _fresh(tiny_tokenizer), _fresh(tiny_tokenizer)
    sa = train(a, SEQS, r, pad_id=0, device="cpu")
    train(b, SEQS, r, pad_id=0, device="cpu")
    assert torch.equal(_weights(a), _weights(b))
    assert sa["epoch_losses"][-1] < sa["epoch_losses"][0] and sa["steps"] == 12 and not sa["diverged"]


def test_resume_continues_where_it_stopped(tiny_tokenizer, tmp_path):
    r = Recipe(epochs=2, lr=1e-2, batch_size=2, seed=0, checkpoint_every=3)
    full = _fresh(tiny_tokenizer)
    train(full, SEQS, r, pad_id=0, device="cpu")
    # an interrupted run: stop right after the state at step 3 is saved
    part = _fresh(tiny_tokenizer)
    calls = {"n": 0}

    def crashing(model, batch, step):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return model(**batch).loss

    try:
        train(part, SEQS, r, pad_id=0, device="cpu", objective=crashing, resume_dir=tmp_path)
    except KeyboardInterrupt:
        pass
    assert (tmp_path / "train_state.pt").exists()
    resumed = _fresh(tiny_tokenizer)
    stats = train(resumed, SEQS, r, pad_id=0, device="cpu", resume_dir=tmp_path)
    assert torch.allclose(_weights(resumed), _weights(full), atol=1e-6)
    assert stats["steps"] == 16 and not (tmp_path / "train_state.pt").exists()


def test_divergence_is_recorded_not_raised(tiny_tokenizer):
    model = _fresh(tiny_tokenizer)
    stats = train(
        model,
        SEQS,
        Recipe(epochs=50, lr=1e4, batch_size=5, optimizer="sgd"),
        pad_id=0,
        device="cpu",
        objective=negated_lm_loss,
    )
    assert stats["diverged"] and stats["steps"] < 150


def test_gradient_ascent_raises_the_loss(tiny_tokenizer):
    model = _fresh(tiny_tokenizer)
    batch = {"input_ids": torch.tensor([SEQS[0]]), "labels": torch.tensor([SEQS[0]])}
    before = float(model(**batch).loss)
    train(
        model,
        SEQS[:1],
        Recipe(epochs=3, lr=0.5, batch_size=1, optimizer="sgd"),
        pad_id=0,
        device="cpu",
        objective=negated_lm_loss,
    )
    assert float(model(**batch).loss) > before


def test_an_epoch_hook_stops_training_and_step_hooks_see_every_step(tiny_tokenizer):
    class StopAfterTwo(Hook):
        def __init__(self):
            self.steps = []

        def on_step_end(self, step, model, optimizer, loss):
            self.steps.append(step)

        def on_epoch_end(self, epoch, model):
            return epoch == 1

    hook = StopAfterTwo()
    stats = train(
        _fresh(tiny_tokenizer),
        SEQS,
        Recipe(epochs=5, lr=1e-3, batch_size=5),
        pad_id=0,
        device="cpu",
        hooks=[hook],
    )
    assert stats["stopped_after_epoch"] == 2 and stats["steps"] == 6 and hook.steps == list(range(6))


def test_optimizers_come_from_the_registry_with_their_params_arguments(tiny_tokenizer):
    from tests.conftest import ROOT
    from unlearn_repro.config import load
    from unlearn_repro.optim import make_optimizer

    cfg = load(ROOT / "params.yaml", "ci")
    r = Recipe.from_config({"epochs": 1, "lr": 0.1, "batch_size": 2, "optimizer": "sgd"}, cfg)
    assert r.optimizer_args == {"momentum": 0.0}
    model = _fresh(tiny_tokenizer)
    opt = make_optimizer(
        Recipe(1, 0.1, 2, optimizer="sgd", optimizer_args={"momentum": 0.5}), model.parameters()
    )
    assert opt.param_groups[0]["momentum"] == 0.5
    with pytest.raises(KeyError, match="valid choices: adamw, sgd"):
        make_optimizer(Recipe(1, 0.1, 2, optimizer="lion"), model.parameters())
    with pytest.raises(ValueError, match="optimizers.sgd: bad arguments"):
        make_optimizer(Recipe(1, 0.1, 2, optimizer="sgd", optimizer_args={"betas": 1}), model.parameters())


def test_prompt_tokens_carry_no_loss():
    batch = collate([{"ids": [5, 6, 7, 8], "prompt_len": 2}, [9, 10, 11]], pad_id=0, device="cpu")
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [9, 10, 11, -100]]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]


def test_retain_batches_are_a_pure_function_of_the_step():
    retain = [[i, i + 1] for i in range(10)]
    a, b = RetainSampler(retain, 4, 3, 0, "cpu"), RetainSampler(retain, 4, 3, 0, "cpu")
    steps = [a.indices(s) for s in range(7)]
    assert [b.indices(s) for s in (6, 2, 0, 5, 1, 4, 3)] == [steps[s] for s in (6, 2, 0, 5, 1, 4, 3)]
    assert sorted(i for s in steps[:3] for i in s) == list(range(10))  # one epoch = one pass over D+
    with pytest.raises(ValueError, match="retain set is empty"):
        RetainSampler([], 4, 0, 0, "cpu")


def test_retain_term_adds_gamma_times_the_retain_loss(tiny_tokenizer):
    model = _fresh(tiny_tokenizer)
    sampler = RetainSampler(SEQS[5:], 2, 0, 0, "cpu")
    batch = collate(SEQS[:2], 0, "cpu")
    got = RetainRegularized(negated_lm_loss, sampler, 0.3)(model, batch, 4)
    expected = -lm_loss(model, batch) + 0.3 * lm_loss(model, sampler(4))
    assert torch.allclose(got, expected)

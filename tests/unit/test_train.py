import torch

from unlearn_repro.train import Recipe, negated_lm_loss, train


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

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return model(**batch).loss
    try:
        train(part, SEQS, r, pad_id=0, device="cpu", loss_fn=crashing, resume_dir=tmp_path)
    except KeyboardInterrupt:
        pass
    assert (tmp_path / "train_state.pt").exists()
    resumed = _fresh(tiny_tokenizer)
    stats = train(resumed, SEQS, r, pad_id=0, device="cpu", resume_dir=tmp_path)
    assert torch.allclose(_weights(resumed), _weights(full), atol=1e-6)
    assert stats["steps"] == 16 and not (tmp_path / "train_state.pt").exists()


def test_divergence_is_recorded_not_raised(tiny_tokenizer):
    model = _fresh(tiny_tokenizer)
    stats = train(model, SEQS, Recipe(epochs=50, lr=1e4, batch_size=5, optimizer="sgd"), pad_id=0, device="cpu",
                  loss_fn=negated_lm_loss)
    assert stats["diverged"] and stats["steps"] < 150


def test_gradient_ascent_raises_the_loss(tiny_tokenizer):
    model = _fresh(tiny_tokenizer)
    batch = {"input_ids": torch.tensor([SEQS[0]]), "labels": torch.tensor([SEQS[0]])}
    before = float(model(**batch).loss)
    train(model, SEQS[:1], Recipe(epochs=3, lr=0.5, batch_size=1, optimizer="sgd"), pad_id=0, device="cpu",
          loss_fn=negated_lm_loss)
    assert float(model(**batch).loss) > before

"""The methods' updates against independent computations on a tiny model."""

import copy

import pytest
import torch

from tests.conftest import ROOT
from unlearn_repro.config import load
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.methods.newton import flat_grad, segments, trainable
from unlearn_repro.train import collate


def _ctx(tmp_path, **fisher):
    cfg = load(ROOT / "params.yaml", "ci")
    raw = cfg.to_dict()
    raw["fisher"].update(fisher)
    raw["unlearn"]["forget_batch_size"] = 2
    from unlearn_repro.config import Frozen

    return Context(
        cfg=Frozen(raw), device="cpu", pad_id=1, seed=0, pretrained_path=tmp_path, work_dir=tmp_path / "w"
    )


def _flat(model):
    return torch.cat([p.detach().flatten() for p in trainable(model)])


def test_registry_has_the_papers_methods():
    ablation = {
        "fisher_forgetting_isotropic",
        "fisher_removal_diagonal",
        "fisher_removal_identity",
    }  # issue 21
    assert [n for n in METHODS.names() if n not in ablation] == [
        "finetune",
        "fisher_forgetting",
        "fisher_removal",
        "gradient_ascent",
        "gradient_difference",
        "inverted_hinge",
        "npo",
        "preference",
        "retrain",
    ]
    assert METHODS.get("fisher_removal").params(load(ROOT / "params.yaml", "ci")).keys() == {
        "methods.fisher_removal",
        "unlearn",
        "fisher",
    }
    with pytest.raises(KeyError, match="valid choices: finetune"):
        METHODS.get("sisa")


def test_fisher_removal_is_a_damped_newton_step(tiny_model_and_batches, tmp_path):
    """One forget batch, F^-1 rebuilt once: theta' - theta == gamma * F^-1 grad, F^-1 from a dense solve."""
    model, batches, pad = tiny_model_and_batches
    model.double()
    ctx = _ctx(tmp_path, num_grads=3, grad_batch_size=1, block_size=16, chunk=2, rebuild="per_batch")
    ctx.pad_id = pad
    forget, retain = [b[0] for b in batches[:2]], [b[0] for b in batches[2:]]
    before = copy.deepcopy(model)
    # the same D+ gradients the method will draw: its stream is seeded by (seed, cycle); one pass covers D+
    from unlearn_repro.methods.newton import retain_stream

    stream = retain_stream(retain, 1, ctx.seed * 1000 + 1)
    g_plus = torch.stack([flat_grad(before, next(stream), pad, "cpu") for _ in range(3)]).double()
    delta = flat_grad(before, forget, pad, "cpu").double()
    model, stats = METHODS.get("fisher_removal").unlearn(ctx, model, forget, retain, cycle=1)
    d, B = delta.numel(), 16
    expected = torch.empty(d, dtype=torch.float64)
    for s in range(0, d, B):  # block-diagonal F = I + G^T G / m, each block inverted densely
        e = min(s + B, d)
        block = torch.eye(e - s, dtype=torch.float64) + g_plus[:, s:e].T @ g_plus[:, s:e] / 3
        expected[s:e] = 2.5e-4 * torch.linalg.solve(block, delta[s:e])
    got = (_flat(model) - _flat(before)).double()
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-11)  # F^-1 is accumulated in fp32
    assert stats["fisher_rebuilds"] == 1 and not stats["diverged"]


def test_fisher_forgetting_noise_is_bounded_and_seeded(tiny_model_and_batches, tmp_path):
    model, batches, pad = tiny_model_and_batches
    ctx = _ctx(tmp_path, num_grads=2, block_size=16)
    ctx.pad_id = pad
    seqs = [b[0] for b in batches]
    a = copy.deepcopy(model)
    a, _ = METHODS.get("fisher_forgetting").unlearn(ctx, a, seqs[:4], seqs[4:], cycle=1)
    b = copy.deepcopy(model)
    b, _ = METHODS.get("fisher_forgetting").unlearn(ctx, b, seqs[:4], seqs[4:], cycle=1)
    step = _flat(a) - _flat(model)
    assert torch.equal(_flat(a), _flat(b))
    # two forget batches of noise, each ||(mu sigma^2)^1/4 F^-1/4 M|| <= (mu sigma^2)^1/4 ||M|| (lambda = 1)
    scale = (1e-3 * 1e-6) ** 0.25
    d = step.numel()
    assert 0 < step.norm() <= 2 * scale * (d**0.5) * 1.2


def test_gradient_ascent_is_plain_sgd_on_the_negated_loss(tiny_model_and_batches, tmp_path):
    model, batches, pad = tiny_model_and_batches
    model.double()
    ctx = _ctx(tmp_path)
    ctx.pad_id = pad
    forget = [batches[0][0], batches[1][0]]  # one batch of 2
    before = copy.deepcopy(model)
    grad = flat_grad(before, forget, pad, "cpu")
    model, _ = METHODS.get("gradient_ascent").unlearn(ctx, model, forget, [], cycle=1)
    assert torch.allclose(_flat(model) - _flat(before), 5e-5 * grad, rtol=1e-6, atol=1e-12)


def test_segments_cover_every_parameter_once(tiny_model_and_batches):
    model, _, _ = tiny_model_and_batches
    segs = segments(model)
    assert sum(n for _, n in segs.values()) == sum(p.numel() for p in trainable(model))


def _one_sgd_step(tmp_path, model, name, forget, retain, **hp):
    """Run `name` for one SGD step (all forget samples in one batch) and return (theta' - theta, ctx)."""
    cfg = load(ROOT / "params.yaml", "ci").to_dict()
    cfg["unlearn"]["forget_batch_size"] = len(forget)
    cfg["methods"][name].update(optimizer="sgd", lr=1e-2, epochs=1, **hp)
    from unlearn_repro.config import Frozen

    ctx = Context(
        cfg=Frozen(cfg), device="cpu", pad_id=1, seed=0, pretrained_path=tmp_path, work_dir=tmp_path / "w"
    )
    before = copy.deepcopy(model)
    model, stats = METHODS.get(name).unlearn(ctx, model, forget, retain, cycle=1)
    assert stats["steps"] == 1 and not stats["diverged"]
    return _flat(model) - _flat(before), ctx


def _grad(model, loss_fn):
    params = trainable(model)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(model), params)])


def _retain_batch(retain, ctx, pad):
    from unlearn_repro.objectives import RetainSampler

    idx = RetainSampler(
        retain, ctx.cfg.unlearn.forget_batch_size, ctx.seed * 1000 + 1 + 1, pad, "cpu"
    ).indices(0)
    return collate([retain[i] for i in idx], pad, "cpu")


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_gradient_difference_step_is_forget_ascent_plus_retain_descent(
    tiny_model_and_batches, tmp_path, gamma
):
    model, batches, pad = tiny_model_and_batches
    model.double()
    seqs = [b[0] for b in batches]
    forget, retain = seqs[:2], seqs[2:]
    ref = copy.deepcopy(model)
    step, ctx = _one_sgd_step(tmp_path, model, "gradient_difference", forget, retain, gamma=gamma)
    rb = _retain_batch(retain, ctx, pad)
    g = _grad(ref, lambda m: -m(**collate(forget, pad, "cpu")).loss + gamma * m(**rb).loss)
    assert torch.allclose(step, -1e-2 * g, atol=1e-12)


def test_inverted_hinge_step_follows_the_hinge_gradient(tiny_model_and_batches, tmp_path):
    from unlearn_repro.losses import inverted_hinge

    model, batches, pad = tiny_model_and_batches
    model.double()
    seqs = [b[0] for b in batches]
    forget, retain = seqs[:2], seqs[2:]
    ref = copy.deepcopy(model)
    step, ctx = _one_sgd_step(tmp_path, model, "inverted_hinge", forget, retain, gamma=1.0)
    fb, rb = collate(forget, pad, "cpu"), _retain_batch(retain, ctx, pad)
    g = _grad(
        ref,
        lambda m: (
            inverted_hinge(
                m(input_ids=fb["input_ids"], attention_mask=fb["attention_mask"]).logits, fb["labels"]
            )
            + m(**rb).loss
        ),
    )
    assert torch.allclose(step, -1e-2 * g, atol=1e-12)
    assert step.norm() > 0


def test_npo_starts_as_gradient_ascent_on_the_summed_sequence_loss(tiny_model_and_batches, tmp_path):
    """At theta = theta_ref, d NPO / d l_theta = -1/N per sequence: the first step ascends mean summed NLL."""
    model, batches, pad = tiny_model_and_batches
    model.double()
    seqs = [b[0] for b in batches]
    forget = seqs[:3]
    ref = copy.deepcopy(model)
    step, _ = _one_sgd_step(tmp_path, model, "npo", forget, seqs[3:], gamma=0.0, beta=0.7)

    def mean_summed_nll(m):
        b = collate(forget, pad, "cpu")
        logp = torch.log_softmax(
            m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1], -1
        )
        tgt = b["labels"][:, 1:]
        mask = tgt != -100
        return -(logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum() / len(forget)

    assert torch.allclose(step, 1e-2 * _grad(ref, mean_summed_nll), atol=1e-12)


def test_preference_trains_refusals_after_forget_prompts(tiny_model_and_batches, tiny_tokenizer, tmp_path):
    from unlearn_repro.methods.preference import refusal_items, refusals

    model, batches, pad = tiny_model_and_batches
    model.double()
    seqs = [b[0] for b in batches]
    forget = seqs[:2]
    items = refusal_items(tiny_tokenizer, forget, 0.5, 64, seed=1)
    answers = {tiny_tokenizer.decode(it["ids"][it["prompt_len"] : -1]).strip() for it in items}
    assert answers <= set(refusals()) and len(refusals()) >= 10
    for it, s in zip(items, forget):
        assert it["ids"][: it["prompt_len"]] == s[: max(1, len(s) // 2)]
    assert refusal_items(tiny_tokenizer, forget, 0.5, 64, seed=1) == items  # seeded
    ref = copy.deepcopy(model)
    cfg = load(ROOT / "params.yaml", "ci").to_dict()
    cfg["unlearn"]["forget_batch_size"] = 2
    cfg["methods"]["preference"].update(optimizer="sgd", lr=1e-2, gamma=0.0)
    from unlearn_repro.config import Frozen

    ctx = Context(
        cfg=Frozen(cfg),
        device="cpu",
        pad_id=pad,
        seed=0,
        pretrained_path=tmp_path,
        work_dir=tmp_path / "w",
        tokenizer=tiny_tokenizer,
    )
    model, _ = METHODS.get("preference").unlearn(ctx, model, forget, seqs[2:], cycle=1)
    expected_items = refusal_items(tiny_tokenizer, forget, 0.5, cfg["data"]["max_length"], seed=1)
    g = _grad(ref, lambda m: m(**collate(expected_items, pad, "cpu")).loss)
    assert torch.allclose(_flat(model) - _flat(ref), -1e-2 * g, atol=1e-12)


def test_a_wrapped_model_saves_as_merged_plain_weights(tiny_model_and_batches, tiny_tokenizer, tmp_path):
    """LoRA adapters (peft) are merged on save: the checkpoint loads as an ordinary model, same outputs."""
    from peft import LoraConfig, get_peft_model

    from unlearn_repro.models import checkpoint

    model, batches, pad = tiny_model_and_batches
    wrapped = get_peft_model(
        model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    ids = torch.tensor([batches[0][0]])
    with torch.no_grad():
        expected = wrapped(input_ids=ids).logits
    checkpoint.save(wrapped, tiny_tokenizer, tmp_path / "ck", {"stage": "test"})
    loaded, _, meta = checkpoint.load(tmp_path / "ck")
    assert meta["merged_from"].startswith("PeftModel") and type(loaded).__name__ == "GPTNeoForCausalLM"
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)


def test_each_method_declares_what_its_block_lets_a_study_set():
    """A study reads the declaration, never the name: so the declaration must match the block it describes
    (a loss-based method's step is its lr, a retain weight is its gamma, a reference temperature its beta)."""
    from unlearn_repro.methods.loss_based import LossMethod

    for name in METHODS.names():
        impl = METHODS.get(name)
        keys = set(impl.schema["properties"])
        assert impl.loss_based == isinstance(impl, LossMethod), name
        assert set(impl.step_keys) <= keys, name
        if impl.loss_based:
            assert impl.step_key == "lr" and impl.needs_retain == ("gamma" in keys), name
            assert impl.needs_reference == ("beta" in keys), name
        else:
            assert not (impl.needs_retain or impl.needs_reference), name
        assert impl.base_epochs_key is None or impl.base_epochs_key in keys, name
    assert [n for n in METHODS.names() if METHODS.get(n).needs_reference] == ["npo"]
    assert [n for n in METHODS.names() if METHODS.get(n).base_epochs_key] == ["retrain"]


def test_study_block_sets_only_what_the_declaration_asks_for():
    cfg = load(ROOT / "params.yaml", "ci")
    study = dict(step=0.5, retain_weight=2.0, reference_beta=0.3)
    ga = METHODS.get("gradient_ascent").study_block(cfg, {"optimizer": "sophia", "epochs": 4}, **study)
    assert ga == {**cfg.methods.gradient_ascent.to_dict(), "optimizer": "sophia", "epochs": 4, "lr": 0.5}
    npo = METHODS.get("npo").study_block(cfg, {"optimizer": "sophia"}, **study)
    assert (npo["lr"], npo["gamma"], npo["beta"], npo["optimizer"]) == (0.5, 2.0, 0.3, "sophia")
    assert METHODS.get("npo").study_block(cfg)["beta"] == cfg.methods.npo.beta  # None: its own value stays
    with pytest.raises(ValueError, match="'retrain' declares no step_key"):
        METHODS.get("retrain").study_block(cfg, step=0.1)
    ff = METHODS.get("fisher_forgetting").study_block(cfg, step=0.1)  # both keys of its noise scale
    assert (ff["mu"], ff["sigma"]) == (0.1, 0.1)
    run = METHODS.get("gradient_difference").study_config(cfg, {"lr": 0.25}, unlearn={"forget_batch_size": 3})
    assert run.methods.gradient_difference.lr == 0.25 and run.unlearn.forget_batch_size == 3
    assert run.methods.gradient_difference.gamma == cfg.methods.gradient_difference.gamma
    assert run.unlearn.cycle_size == cfg.unlearn.cycle_size and run.methods.npo == cfg.methods.npo


def test_unlearn_cycle_prepares_unlearns_then_merges(monkeypatch, tmp_path):
    """Every study's one cycle: the study's wrappers, the method, the callbacks in between, the merge last."""
    from unlearn_repro.methods.base import Method
    from unlearn_repro.models import checkpoint

    calls = []

    class Recording(Method):
        def unlearn(self, ctx, model, forget, retain, cycle):
            calls.append(("unlearn", model))
            return model + "+unlearned", {"diverged": False}

    def wrap(ctx, model, forget, retain, cycle):
        calls.append(("wrap", model))
        return model + "+wrapped"

    monkeypatch.setattr(checkpoint, "unwrap", lambda m: calls.append(("merge", m)) or "plain")
    ctx = Context(
        cfg=None,
        device="cpu",
        pad_id=0,
        seed=0,
        pretrained_path=tmp_path,
        work_dir=tmp_path,
        wrappers=(wrap,),
    )
    model, stats = Recording().unlearn_cycle(
        ctx,
        "m",
        [],
        [],
        1,
        on_prepared=lambda m: calls.append(("seen", m)),
        on_unlearned=lambda m: calls.append(("trained", m)),
    )
    assert (model, stats) == ("plain", {"diverged": False})
    assert calls == [
        ("wrap", "m"),
        ("seen", "m+wrapped"),
        ("unlearn", "m+wrapped"),
        ("trained", "m+wrapped+unlearned"),
        ("merge", "m+wrapped+unlearned"),
    ]

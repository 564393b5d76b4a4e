"""LoRA target resolution, FLoRA's Fisher-weighted initialization (against numpy's SVD and Eckart-Young) and
the diagonal empirical Fisher (against per-sample gradients computed one model copy at a time)."""

import numpy as np
import pytest
import torch

from unlearn_repro.fisher.diagonal import diagonal_fisher
from unlearn_repro.lora.adapters import add_lora, lora_wrapper, target_modules, trainable_share
from unlearn_repro.lora.flora import fisher_weighted_init, lora_layers, row_weights
from unlearn_repro.models.build import build_model


def _rand(shape, seed):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).double()


def test_shapes_and_exact_reconstruction():
    w = _rand((12, 7), 0)
    ff, fr = _rand((12, 7), 1).abs(), _rand((12, 7), 2).abs()
    a, b, res = fisher_weighted_init(w, ff, fr, 3)
    assert a.shape == (3, 7) and b.shape == (12, 3) and res.shape == (12, 7)
    assert torch.allclose(res + b @ a, w, atol=1e-12)


def test_weighted_product_is_the_best_rank_r_approximation():
    """Eckart-Young: ||D W - D B A||_F equals the tail of D W's singular values (numpy), and no other
    rank-r matrix (random ones, or the unweighted SVD) does better under the row weights."""
    w = _rand((10, 8), 3)
    ff, fr = _rand((10, 8), 4).abs() * 5, _rand((10, 8), 5).abs() + 0.1
    r = 3
    a, b, _ = fisher_weighted_init(w, ff, fr, r, eps=1e-8)
    d = np.sqrt((ff.numpy() / (fr.numpy() + 1e-8)).sum(1))
    dw = d[:, None] * w.numpy()
    s = np.linalg.svd(dw, compute_uv=False)
    err = np.linalg.norm(dw - d[:, None] * (b @ a).numpy())
    assert err == pytest.approx(np.sqrt((s[r:] ** 2).sum()), rel=1e-9)
    u0, s0, v0 = np.linalg.svd(w.numpy())
    plain = (u0[:, :r] * s0[:r]) @ v0[:r]
    assert np.linalg.norm(dw - d[:, None] * plain) > err
    rng = np.random.default_rng(6)
    for _ in range(20):
        cand = rng.standard_normal((10, r)) @ rng.standard_normal((r, 8))
        assert np.linalg.norm(dw - d[:, None] * cand) >= err


def test_uniform_fisher_is_plain_svd():
    w = _rand((9, 6), 7)
    ones = torch.ones_like(w)
    a, b, _ = fisher_weighted_init(w, ones * 2.0, ones, 2)
    u, s, vt = np.linalg.svd(w.numpy())
    assert np.allclose((b @ a).numpy(), (u[:, :2] * s[:2]) @ vt[:2], atol=1e-10)
    # A's rows span W's top right singular vectors (a constant d only rescales the split between A and B)
    assert np.allclose(
        np.abs(a.numpy() / np.linalg.norm(a.numpy(), axis=1, keepdims=True)), np.abs(vt[:2]), atol=1e-10
    )


def test_row_weights_are_sqrt_of_row_sums_of_the_relative_fisher():
    ff = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    fr = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    d = row_weights(ff, fr, eps=0.0)
    assert d[0].item() == pytest.approx(2.0)  # sqrt(1/1 + 3/1)
    assert 0 < d[1].item() < 1e-6  # no importance: a tiny positive weight, still invertible


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="rank"):
        fisher_weighted_init(torch.ones(3, 3), torch.ones(3, 3), torch.ones(3, 3), 4)
    with pytest.raises(ValueError, match="Fisher shapes"):
        fisher_weighted_init(torch.ones(3, 3), torch.ones(3, 2), torch.ones(3, 3), 1)


def test_target_modules_per_family():
    assert target_modules("gpt_neo", ["q", "v", "ffn"]) == ["q_proj", "v_proj", "c_fc", "c_proj"]
    assert target_modules("opt", ["q", "v", "ffn"]) == ["q_proj", "v_proj", "fc1", "fc2"]
    assert target_modules("llama", ["o", "ffn"]) == ["o_proj", "gate_proj", "up_proj", "down_proj"]
    with pytest.raises(ValueError, match="unknown target group"):
        target_modules("opt", ["mlp"])


def test_diagonal_fisher_is_the_mean_of_squared_per_sample_gradients(tiny_tokenizer):
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0).double()
    seqs = [
        [5, 9, 30, 7, 2],
        [11, 4, 8],
        [40, 41, 42, 43],
    ]  # different lengths: padded inside the batched chunk
    named = dict(model.named_parameters())
    # keys of our own, listed against the model's order: the flat layout must map back to each parameter
    params = {
        "fc": named["transformer.h.1.mlp.c_fc.weight"],
        "q": named["transformer.h.0.attn.attention.q_proj.weight"],
    }
    fisher = diagonal_fisher(model, seqs, params)
    for key, param in params.items():
        expect = torch.zeros_like(param)
        for s in seqs:  # independent: a fresh backward per sample through .grad, the loss in fp64 (HF's
            model.zero_grad()  # `labels=` loss computes in fp32 even for a fp64 model)
            ids = torch.tensor([s])
            logits = model(input_ids=ids).logits[0, :-1]
            torch.nn.functional.cross_entropy(logits, ids[0, 1:]).backward()
            expect += param.grad**2
        assert fisher[key].shape == param.shape
        # GPT-Neo computes attention in fp32 even in a fp64 model: padded and unpadded rows agree to ~1e-6
        assert torch.allclose(fisher[key], expect / len(seqs), rtol=1e-5, atol=0)
    assert all(p.requires_grad for p in model.parameters())  # flags restored


@pytest.mark.parametrize(
    "name,groups",
    [
        ("tiny-gpt-neo", ["q", "v", "ffn"]),
        ("tiny-opt", ["q", "v", "ffn"]),
        ("tiny-gpt-neo", ["q", "k", "v", "o"]),
    ],
)
def test_flora_leaves_the_whole_models_output_unchanged(tiny_tokenizer, name, groups):
    torch.manual_seed(0)
    model = build_model(name, tiny_tokenizer, seed=0)
    ids = torch.tensor([[5, 9, 30, 7, 2, 60, 61], [11, 4, 8, 70, 71, 72, 73]])
    before = model(input_ids=ids).logits.detach().clone()
    forget = [[5, 9, 30, 7, 2, 60], [11, 4, 8, 70]]
    retain = [[100, 101, 102, 103], [120, 121, 122], [130, 131, 132, 133, 134]]
    base_w = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapped = lora_wrapper("flora", groups, rank=4, alpha=16)(None, model, forget, retain, 1)
    layers = lora_layers(wrapped)
    assert len(layers) == 4 * len(target_modules(model.config.model_type, groups))
    layer = next(iter(layers.values()))
    assert layer.lora_B["default"].weight.abs().sum() > 0  # FLoRA, not peft's B = 0
    assert layer.scaling["default"] == pytest.approx(16 / 4)
    after = wrapped(input_ids=ids).logits.detach()
    assert torch.allclose(after, before, atol=1e-4)
    assert 0 < trainable_share(wrapped) < 100
    merged = wrapped.merge_and_unload()  # merging restores W = residual + scaling * B A
    for n, p in merged.named_parameters():
        assert torch.allclose(p, base_w[n], atol=1e-5), n


def test_plain_lora_starts_at_the_base_model(tiny_tokenizer):
    model = build_model("tiny-opt", tiny_tokenizer, seed=0)
    ids = torch.tensor([[5, 9, 30, 7]])
    before = model(input_ids=ids).logits.detach().clone()
    wrapped = add_lora(model, ["q", "v"], rank=2, alpha=4)
    assert torch.allclose(wrapped(input_ids=ids).logits, before)


def test_plain_lora_init_is_seeded_by_run_not_by_the_process_rng(tiny_tokenizer):
    from types import SimpleNamespace

    wrap = lora_wrapper("lora", ["q", "v"], rank=2, alpha=4)

    def first_a(burn):
        torch.manual_seed(burn)
        torch.rand(burn + 1)  # whatever the process drew before
        m = wrap(SimpleNamespace(seed=3), build_model("tiny-gpt-neo", tiny_tokenizer, seed=0), [], [], 1)
        return next(iter(lora_layers(m).values())).lora_A["default"].weight.detach().clone()

    assert torch.equal(first_a(1), first_a(7))


def test_flora_reads_qa_items_as_their_whole_text(tiny_tokenizer):
    """TOFU's items (ids and prompt length, as the cross-paper benchmark passes them) give FLoRA the same
    adapters as their token ids."""
    forget = [[5, 9, 30, 7, 2, 60], [11, 4, 8, 70]]
    retain = [[100, 101, 102, 103], [120, 121, 122]]
    items = lambda seqs: [{"ids": s, "prompt_len": 2} for s in seqs]  # noqa: E731
    adapters = []
    for f, r in ((forget, retain), (items(forget), items(retain))):
        model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
        wrapped = lora_wrapper("flora", ["q", "v"], rank=2, alpha=4)(None, model, f, r, 1)
        adapters.append({n: p.detach().clone() for n, p in wrapped.named_parameters() if "lora_" in n})
    assert adapters[0].keys() == adapters[1].keys() and len(adapters[0]) > 0
    assert all(torch.equal(adapters[0][n], adapters[1][n]) for n in adapters[0])

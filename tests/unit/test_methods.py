"""The methods' updates against independent computations on a tiny model."""
import copy

import pytest
import torch

from unlearn_repro.config import load
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.methods.newton import flat_grad, segments, trainable
from tests.conftest import ROOT


def _ctx(tmp_path, **fisher):
    cfg = load(ROOT / "params.yaml", "ci")
    raw = cfg.to_dict()
    raw["fisher"].update(fisher)
    raw["unlearn"]["forget_batch_size"] = 2
    from unlearn_repro.config import Frozen
    return Context(cfg=Frozen(raw), device="cpu", pad_id=1, seed=0, pretrained_path=tmp_path, work_dir=tmp_path / "w")


def _flat(model):
    return torch.cat([p.detach().flatten() for p in trainable(model)])


def test_registry_has_the_papers_methods():
    assert METHODS.names() == ["finetune", "fisher_forgetting", "fisher_removal", "gradient_ascent", "retrain"]
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
    assert 0 < step.norm() <= 2 * scale * (d ** 0.5) * 1.2


def test_gradient_ascent_is_plain_sgd_on_the_negated_loss(tiny_model_and_batches, tmp_path):
    model, batches, pad = tiny_model_and_batches
    model.double()
    ctx = _ctx(tmp_path)
    ctx.pad_id = pad
    forget = [batches[0][0], batches[1][0]]          # one batch of 2
    before = copy.deepcopy(model)
    grad = flat_grad(before, forget, pad, "cpu")
    model, _ = METHODS.get("gradient_ascent").unlearn(ctx, model, forget, [], cycle=1)
    assert torch.allclose(_flat(model) - _flat(before), 5e-5 * grad, rtol=1e-6, atol=1e-12)


def test_segments_cover_every_parameter_once(tiny_model_and_batches):
    model, _, _ = tiny_model_and_batches
    segs = segments(model)
    assert sum(n for _, n in segs.values()) == sum(p.numel() for p in trainable(model))

"""The ablation variants (issue 21) against dense computations: Fisher Removal with a diagonal F^-1 and with
F^-1 = I/lambda, Fisher Forgetting's isotropic noise, Sophia with h held constant."""

import copy

import pytest
import torch

from tests.conftest import ROOT
from unlearn_repro.config import Frozen, load
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.methods.fisher_forgetting_isotropic import isotropic_like
from unlearn_repro.methods.newton import flat_grad, relative_damping, retain_stream, trainable
from unlearn_repro.optim import OPTIMIZERS
from unlearn_repro.optim.sophia_constant import SophiaConstant

GAMMA, M = 3.0e-4, 3


def _ctx(tmp_path, pad, method, block, **fisher):
    raw = load(ROOT / "params.yaml", "ci").to_dict()
    raw["fisher"].update(
        num_grads=M, grad_batch_size=1, block_size=16, chunk=2, rebuild="per_batch", **fisher
    )
    raw["unlearn"]["forget_batch_size"] = 2
    raw["methods"][method] = block
    return Context(
        cfg=Frozen(raw), device="cpu", pad_id=pad, seed=0, pretrained_path=tmp_path, work_dir=tmp_path / "w"
    )


def _flat(model):
    return torch.cat([p.detach().flatten() for p in trainable(model)])


def _one_step(tiny_model_and_batches, tmp_path, method, **fisher):
    """(actual update, forget gradient, the M D+ gradients the method draws) for one forget batch."""
    model, batches, pad = tiny_model_and_batches
    model.double()
    ctx = _ctx(tmp_path, pad, method, {"gamma": GAMMA}, **fisher)
    forget, retain = [b[0] for b in batches[:2]], [b[0] for b in batches[2:]]
    before = copy.deepcopy(model)
    stream = retain_stream(retain, 1, ctx.seed * 1000 + 1)
    g_plus = torch.stack([flat_grad(before, next(stream), pad, "cpu") for _ in range(M)]).double()
    grad = flat_grad(before, forget, pad, "cpu").double()
    model, stats = METHODS.get(method).unlearn(ctx, model, forget, retain, cycle=1)
    assert stats["fisher_rebuilds"] == 1 and not stats["diverged"]
    return (_flat(model) - _flat(before)).double(), grad, g_plus


def test_diagonal_variant_divides_by_the_damped_fisher_diagonal(tiny_model_and_batches, tmp_path):
    lam = 1e-6  # on the Fisher's scale (tiny model), so the curvature matters
    got, grad, g_plus = _one_step(tiny_model_and_batches, tmp_path, "fisher_removal_diagonal", damping=lam)
    diag = g_plus.pow(2).mean(0) + lam
    assert torch.allclose(got, GAMMA * grad / diag, rtol=1e-4, atol=1e-12)
    # and it is neither the block step (blocks of width 16 couple coordinates) nor gradient ascent
    blk = lam * torch.eye(16, dtype=torch.float64) + g_plus[:, :16].T @ g_plus[:, :16] / M
    assert not torch.allclose(got[:16], GAMMA * torch.linalg.solve(blk, grad[:16]), rtol=1e-2, atol=0)
    assert not torch.allclose(got, GAMMA / lam * grad, rtol=1e-2, atol=0)


def test_identity_variant_is_gradient_ascent_with_the_relative_lambda(tiny_model_and_batches, tmp_path):
    got, grad, g_plus = _one_step(
        tiny_model_and_batches,
        tmp_path,
        "fisher_removal_identity",
        damping_mode="relative",
        kappa=10.0,
        update="accumulate",
    )
    lam = relative_damping(float(g_plus.pow(2).mean()), 10.0, 1.0)  # kappa * mean diag F_hat
    assert torch.allclose(got, GAMMA / lam * grad, rtol=1e-5, atol=1e-12)


def test_isotropic_noise_has_the_shaped_norm_and_no_preferred_direction():
    torch.manual_seed(0)
    w = torch.tensor([4.0, 1.0, 0.25, 0.01]).repeat(50)  # F^-1/4 diagonal eigenvalues, strongly spread
    norms, cos = [], []
    for _ in range(200):
        m = torch.randn(w.numel(), dtype=torch.float64)
        iso = isotropic_like(m, w * m)
        norms.append((iso.norm() / (w * m).norm()).item())
        cos.append((iso @ m / (iso.norm() * m.norm())).item())
    assert norms == pytest.approx([1.0] * 200, rel=1e-12) and cos == pytest.approx([1.0] * 200, rel=1e-12)
    # E||F^-1/4 M||^2 = sum w^2: both noises have it (the isotropic one through the shaped one's norm)
    sq = torch.stack([isotropic_like(m, w * m).norm() ** 2 for m in torch.randn(4000, w.numel())])
    assert float(sq.mean()) == pytest.approx(float(w.pow(2).sum()), rel=0.03)


def test_isotropic_variant_step_norm_equals_fisher_forgettings(tiny_model_and_batches, tmp_path):
    """Same seed, same M: one forget batch of each, the two updates have one norm and differ in direction."""
    model, batches, pad = tiny_model_and_batches
    seqs = [b[0] for b in batches]
    steps = {}
    for name in ("fisher_forgetting", "fisher_forgetting_isotropic"):
        ctx = _ctx(tmp_path, pad, name, {"mu": 1e-3, "sigma": 1e-3}, damping=1e-3)
        ctx.cfg = Frozen(
            {**ctx.cfg.to_dict(), "unlearn": {**ctx.cfg.unlearn.to_dict(), "forget_batch_size": 4}}
        )
        m = copy.deepcopy(model)
        m, _ = METHODS.get(name).unlearn(ctx, m, seqs[:4], seqs[4:], cycle=1)
        steps[name] = (_flat(m) - _flat(model)).double()
    a, b = steps["fisher_forgetting"], steps["fisher_forgetting_isotropic"]
    assert float(b.norm()) == pytest.approx(float(a.norm()), rel=1e-4)
    assert float(a @ b / (a.norm() * b.norm())) < 0.999


def test_constant_h_sophia_is_clipped_sign_momentum_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    opt = OPTIMIZERS.get("sophia_constant")([p], lr=0.1, weight_decay=0.1, betas=(0.9, 0.5), rho=0.5)
    assert isinstance(opt, SophiaConstant)
    for g in ([2.0, 0.1, -3.0], [0.5, -0.1, 0.0]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.update_hessian()  # ignored: h stays 0
        opt.step()
    # step 1: decay x0.99 -> [0.99, -1.98, 0.495]; m = [0.2, 0.01, -0.3]; step -0.1 sign(m)
    # step 2: decay x0.99; m = 0.9 m + 0.1 g = [0.23, -0.001, -0.27]; step -0.1 sign(m)
    p1 = [0.99 - 0.1, -1.98 - 0.1, 0.495 + 0.1]
    p2 = [p1[0] * 0.99 - 0.1, p1[1] * 0.99 + 0.1, p1[2] * 0.99 + 0.1]
    assert torch.allclose(p.detach(), torch.tensor(p2, dtype=torch.float64))
    assert opt.clip_rate == 1.0 and float(opt.state[p]["hessian"].abs().max()) == 0.0


def test_constant_positive_h_gives_the_fixed_preconditioned_step():
    """h = c held: the step is lr sign(m) min(|m| / (rho c), 1) with the same c at every step."""
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = SophiaConstant([p], lr=1.0, h=2.0, betas=(0.0, 0.5), rho=1.0, weight_decay=0.0)
    p.grad = torch.tensor([1.0, -5.0], dtype=torch.float64)
    opt.update_hessian(scale=100.0)
    opt.step()
    assert torch.allclose(
        p.detach(), torch.tensor([-0.5, 1.0], dtype=torch.float64)
    )  # |m|/(rho h) = 0.5, 2.5->1
    assert opt.clip_rate == 0.5

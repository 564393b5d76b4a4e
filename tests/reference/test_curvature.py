"""The curvature premise (metrics.curvature) against a dense F_hat built explicitly: per-sample gradients of
a tiny model, blockdiag(lambda I + G^T G / m) as a d x d matrix, inverted and powered with torch.linalg;
Sophia's clip rate against a hand count; relative damping against mean(diag F_hat) computed by hand."""

import copy
import math

import pytest
import torch

from unlearn_repro.fisher import EmpiricalFisherInverse
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.methods.newton import flat_grad, relative_damping, retain_stream
from unlearn_repro.metrics.curvature import (
    newton_premise,
    power_spread,
    sophia_clip,
    verdict,
)
from unlearn_repro.optim import Sophia


def dense_fisher(grads: torch.Tensor, block: int, damping: float, m: int) -> torch.Tensor:
    """blockdiag(lambda I + (1/m) G^T G), built densely and masked to the diagonal blocks (fp64)."""
    d = grads.shape[1]
    f = damping * torch.eye(d, dtype=torch.float64) + grads.double().T @ grads.double() / m
    mask = torch.zeros(d, d, dtype=torch.bool)
    for s in range(0, d, block):
        mask[s : s + block, s : s + block] = True
    return torch.where(mask, f, torch.zeros_like(f))


SMALL = ("h.3.ln_1", "h.3.ln_2", "h.3.attn.attention.out_proj.bias", "h.3.mlp.c_proj.bias")  # d = 384


def _small(model):
    """A copy of the model in fp64 with only a few hundred trainable parameters: small enough for
    a dense F."""
    model = copy.deepcopy(model).double()
    for name, p in model.named_parameters():
        p.requires_grad_(any(k in name for k in SMALL))
    return model


def _model_grads(tiny_model_and_batches, n: int):
    model, batches, pad = tiny_model_and_batches
    model = _small(model)
    seqs = [b[0] for b in batches]
    grads = torch.stack([flat_grad(model, [seqs[i % len(seqs)]], pad, "cpu") for i in range(n)]).double()
    return model, seqs, pad, grads


def test_premise_numbers_match_the_dense_fisher(tiny_model_and_batches):
    """cosine, norm ratio and F^-1/4 spread from the Woodbury blocks equal those of the dense inverse."""
    grads = _model_grads(tiny_model_and_batches, 5)[3]
    g_plus, g = grads[:4], grads[4]
    d, block, m, lam = g_plus.shape[1], 20, 4, 1e-4  # 384 = 19 blocks of 20 + 4: padding
    fisher = EmpiricalFisherInverse(d, block, lam, m, dtype=torch.float64)
    fisher.accumulate(g_plus)
    dense_inv = torch.linalg.inv(dense_fisher(g_plus, block, lam, m))
    ref = dense_inv @ g
    got = newton_premise(fisher.matmul(g), g, lam)
    assert got["cosine"] == pytest.approx(float(ref @ g / (ref.norm() * g.norm())), rel=1e-9)
    assert got["norm_ratio"] == pytest.approx(float(lam * ref.norm() / g.norm()), rel=1e-9)
    w = torch.linalg.eigvalsh(dense_inv).pow(0.25)  # eigenvalues of F^-1/4, all d of them
    spread = power_spread(fisher.eigenvalues(), lam)
    assert fisher.eigenvalues().numel() == d  # padding of the last block dropped
    assert spread["spread"] == pytest.approx(float(w.std(unbiased=False) / w.mean()), rel=1e-7)
    assert spread["noise_cosine"] == pytest.approx(float(w.mean() / w.pow(2).mean().sqrt()), rel=1e-7)
    # the premise is not met trivially: with this damping the curvature bends the step
    assert got["cosine"] < 0.95 and verdict("fisher_removal", got) == "met"


def test_prior_dominated_fisher_is_degenerate(tiny_model_and_batches):
    """With lambda far above the Fisher's scale F^-1 ~ I / lambda: cosine ~ 1, ratio ~ 1, spread ~ 0."""
    _, _, _, grads = _model_grads(tiny_model_and_batches, 5)
    d = grads.shape[1]
    fisher = EmpiricalFisherInverse(d, 16, 1e3, 4, dtype=torch.float64)
    fisher.accumulate(grads[:4])
    got = newton_premise(fisher.matmul(grads[4]), grads[4], 1e3)
    assert got["cosine"] > 0.999 and got["norm_ratio"] == pytest.approx(1, abs=1e-3)
    assert verdict("fisher_removal", got) == "curvature-degenerate"
    spread = power_spread(fisher.eigenvalues(), 1e3)
    assert spread["spread"] < 1e-3 and verdict("fisher_forgetting", spread) == "curvature-degenerate"


def test_relative_damping_is_kappa_times_the_fisher_diagonal(tiny_model_and_batches):
    """set_damping after accumulating gives the same matrix as building with that lambda from the start."""
    _, _, _, grads = _model_grads(tiny_model_and_batches, 4)
    d, m = grads.shape[1], 4
    diag = float(torch.diagonal(grads.T @ grads / m).mean())  # mean of diag F_hat, by hand
    fisher = EmpiricalFisherInverse(d, 16, 1.0, m, dtype=torch.float64)
    fisher.accumulate(grads[:3])
    fisher.accumulate(grads[3:])
    assert fisher.diag_mean() == pytest.approx(diag, rel=1e-12)
    lam = relative_damping(fisher.diag_mean(), 0.5, 1.0)
    fisher.set_damping(lam)
    assert torch.allclose(fisher.dense(), torch.linalg.inv(dense_fisher(grads, 16, 0.5 * diag, m)), rtol=1e-8)
    assert relative_damping(0.0, 0.5, 1.0) == 1.0
    rank1 = EmpiricalFisherInverse(d, 16, 1.0, m, dtype=torch.float64)
    rank1.update(grads[0])
    with pytest.raises(ValueError, match="accumulate"):
        rank1.set_damping(0.1)


def test_sophia_clip_rate_and_unclipped_share_by_hand():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = Sophia([p], lr=0.1, betas=(0.0, 0.5), rho=1.0, weight_decay=0.0)
    opt.state[p]["step"], opt.state[p]["exp_avg"] = 0, torch.zeros(4, dtype=torch.float64)
    opt.state[p]["hessian"] = torch.tensor([1.0, 1.0, 4.0, 0.0], dtype=torch.float64)
    p.grad = torch.tensor([0.5, -2.0, 1.0, 1e-3], dtype=torch.float64)  # ratios 0.5, 2 -> 1, 0.25, huge -> 1
    opt.step()
    assert opt.clip_rate == 0.5  # 2 of 4 clipped, counted by hand
    assert opt.unclipped_share == pytest.approx((0.5 + 0.25) / (0.5 + 1 + 0.25 + 1))
    h = torch.tensor([1.0, 1.0, 4.0, 0.0], dtype=torch.float64)
    assert sophia_clip(p.grad, h, 1.0, 1e-15)[:2] == (2, 4)
    assert verdict("sophia", {"clip_rate": opt.clip_rate}) == "met"
    assert verdict("sophia", {"clip_rate": 0.97}) == "curvature-degenerate"
    assert verdict("sophia", {"clip_rate": math.nan}) == "not measured"


def _ctx(tmp_path, **fisher):
    from tests.conftest import ROOT
    from unlearn_repro.config import Frozen, load

    raw = load(ROOT / "params.yaml", "ci").to_dict()
    raw["fisher"].update(fisher)
    raw["unlearn"]["forget_batch_size"] = 2
    return Context(
        cfg=Frozen(raw), device="cpu", pad_id=1, seed=0, pretrained_path=tmp_path, work_dir=tmp_path / "w"
    )


def test_fisher_removal_run_reports_its_premise(tiny_model_and_batches, tmp_path):
    """The stats of a Fisher Removal cycle hold the premise of its step, computed densely here, with the
    relative damping lambda = kappa * mean diag F_hat of the D+ gradients the method drew."""
    model, batches, pad = tiny_model_and_batches
    model = _small(model)
    ctx = _ctx(
        tmp_path, num_grads=3, block_size=16, chunk=2, rebuild="per_batch", damping_mode="relative", kappa=0.1
    )
    ctx.pad_id = pad
    forget, retain = [b[0] for b in batches[:2]], [b[0] for b in batches[2:]]
    stream = retain_stream(retain, 1, ctx.seed * 1000 + 1)
    g_plus = torch.stack([flat_grad(model, next(stream), pad, "cpu") for _ in range(3)]).double()
    g = flat_grad(model, forget, pad, "cpu").double()
    lam = 0.1 * float(torch.diagonal(g_plus.T @ g_plus / 3).mean())
    ref = torch.linalg.solve(dense_fisher(g_plus, 16, lam, 3), g)
    _, stats = METHODS.get("fisher_removal").unlearn(ctx, model, forget, retain, cycle=1)
    c = stats["curvature"]
    assert c["damping"] == pytest.approx(lam, rel=1e-6)
    assert c["cosine"] == pytest.approx(float(ref @ g / (ref.norm() * g.norm())), rel=1e-4)
    assert c["norm_ratio"] == pytest.approx(float(lam * ref.norm() / g.norm()), rel=1e-4)
    assert stats["curvature_steps"]["cosine"] == [pytest.approx(c["cosine"])]  # one forget batch: one step


def test_fisher_forgetting_run_reports_the_spread(tiny_model_and_batches, tmp_path):
    model, batches, pad = tiny_model_and_batches
    ctx = _ctx(tmp_path, num_grads=2, block_size=16, damping=1e-6)
    ctx.pad_id = pad
    seqs = [b[0] for b in batches]
    _, stats = METHODS.get("fisher_forgetting").unlearn(ctx, _small(model), seqs[:2], seqs[2:], cycle=1)
    c = stats["curvature"]
    assert c["spread"] > 0.1 and c["noise_cosine"] == pytest.approx(
        1 / math.sqrt(1 + c["spread"] ** 2), rel=1e-6
    )
    assert 0 < c["sampled_noise_cosine"] < 1


def test_regime_rules_pick_by_the_written_rule():
    from unlearn_repro.metrics.curvature import (
        select_kappa,
        select_rho,
        select_step,
        step_candidates,
    )

    rows = [
        {"kappa": 0.01, "cosine": 0.5, "noise_cosine": 0.8},
        {"kappa": 0.1, "cosine": 0.85, "noise_cosine": 0.94},
        {"kappa": 1.0, "cosine": 0.88, "noise_cosine": 0.97},
        {"kappa": 10.0, "cosine": 0.93, "noise_cosine": 0.99},
    ]
    assert select_kappa(rows) == (0.1, True)  # kappa 1 fails on the noise, 10 on the margin
    assert select_kappa(rows[2:]) == (1.0, False)  # no kappa shapes the noise: Fisher Removal's alone
    assert select_kappa(rows[3:]) == (None, False)
    assert list(step_candidates(decades=1)) == [1e-3, 5e-4, 2.5e-4, 1e-4, 5e-5, 2.5e-5, 1e-5]
    seen = []

    def measure(step):  # Delta NLL grows with the step: 2e3 * step
        seen.append(step)
        return {"delta_test_nll": 2e3 * step}

    chosen, _ = select_step(measure, bound=0.1)
    assert chosen == 5e-5 and seen == [1e-3, 5e-4, 2.5e-4, 1e-4, 5e-5]  # stops at the first
    assert select_step(lambda s: {"delta_test_nll": math.nan}, decades=0)[0] is None
    clip = [
        {"rho": 0.04, "clip_rate": 1.0},
        {"rho": 1, "clip_rate": 0.7},
        {"rho": 10, "clip_rate": 0.45},
        {"rho": 100, "clip_rate": 0.05},
    ]
    assert select_rho(clip) == 10 and select_rho(clip[:1]) is None


def test_sophia_summary_means_per_epoch_and_verdict():
    from unlearn_repro.metrics.curvature import sophia_summary

    s = sophia_summary([1.0, 0.9, 0.5, 0.3, 0.2], [0.0, 0.1, 0.4, 0.6, 0.8], steps_per_epoch=2)
    assert s["clip_rate_per_epoch"] == pytest.approx([0.95, 0.4, 0.2])
    assert s["unclipped_share_per_epoch"] == pytest.approx([0.05, 0.5, 0.8])
    assert s["curvature"]["clip_rate"] == pytest.approx(0.58) and s["curvature"]["verdict"] == "met"
    assert sophia_summary([1.0, 0.99], [0.0, 0.0], 1)["curvature"]["verdict"] == "curvature-degenerate"
    assert sophia_summary([], [], 3) == {}

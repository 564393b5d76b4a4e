"""Sophia (SOUL's second-order optimizer): steps checked against hand-computed values and Eq. 11."""

import math

import pytest
import torch

from unlearn_repro.optim import OPTIMIZERS, CurvatureHook, Sophia, make_optimizer
from unlearn_repro.optim.sophia import gnb_loss
from unlearn_repro.train import Recipe


def _param(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def test_hand_computed_step():
    p = _param([1.0, -2.0])
    opt = Sophia([p], lr=0.1, betas=(0.9, 0.5), rho=0.5, weight_decay=0.1)
    p.grad = torch.tensor([2.0, 0.1], dtype=torch.float64)
    opt.update_hessian()  # h = 0.5 * g^2 = [2.0, 0.005]
    assert torch.allclose(opt.state[p]["hessian"], torch.tensor([2.0, 0.005], dtype=torch.float64))
    p.grad = torch.tensor([0.5, -0.1], dtype=torch.float64)
    opt.step()
    # decay: [0.99, -1.98]; m = 0.1 g = [0.05, -0.01]; rho h = [1.0, 0.0025]; ratio = [0.05, 4 -> 1]
    assert torch.allclose(
        p.detach(), torch.tensor([0.99 - 0.1 * 0.05, -1.98 + 0.1 * 1.0], dtype=torch.float64)
    )
    assert opt.clip_rate == pytest.approx(0.5)


def test_zero_curvature_clips_every_coordinate_to_a_sign_step():
    p = _param([0.0, 0.0, 0.0])
    opt = Sophia([p], lr=0.01, weight_decay=0.0)
    p.grad = torch.tensor([3.0, -1e-6, 0.2], dtype=torch.float64)
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([-0.01, 0.01, -0.01], dtype=torch.float64))
    assert opt.clip_rate == 1.0


def test_large_curvature_gives_the_newton_like_step():
    """h large, clipping inactive: the step is lr * m / (rho h) (SOUL Eq. 11 without the clip)."""
    torch.manual_seed(0)
    p = _param(torch.randn(50).tolist())
    start = p.detach().clone()
    lr, rho, b1, b2 = 0.05, 0.04, 0.965, 0.99
    opt = Sophia([p], lr=lr, betas=(b1, b2), rho=rho, weight_decay=0.0)
    p.grad = torch.full((50,), 100.0, dtype=torch.float64)
    opt.update_hessian()
    h = (1 - b2) * 100.0**2
    g = torch.randn(50, dtype=torch.float64)
    p.grad = g.clone()
    opt.step()
    m = (1 - b1) * g
    assert torch.allclose(start - p.detach(), lr * m / (rho * h))
    assert opt.clip_rate == 0.0


def test_every_hyperparameter_is_in_the_param_groups_and_the_registry_builds_it():
    model = torch.nn.Linear(3, 2)
    recipe = Recipe(
        epochs=1,
        lr=0.02,
        batch_size=2,
        weight_decay=0.1,
        optimizer="sophia",
        optimizer_args={"rho": 0.05, "estimator": "squared_grad", "hessian_every": 1},
    )
    opt = make_optimizer(recipe, model.parameters())
    assert isinstance(opt, Sophia) and "sophia" in OPTIMIZERS.names()
    g = opt.param_groups[0]
    assert (g["lr"], g["rho"], g["weight_decay"], g["betas"], g["eps"], g["estimator"]) == (
        0.02,
        0.05,
        0.1,
        (0.965, 0.99),
        1e-15,
        "squared_grad",
    )
    with pytest.raises(ValueError, match="estimator"):
        Sophia(model.parameters(), lr=0.1, estimator="hutchinson")


def _tiny_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=11,
            n_embd=8,
            n_layer=1,
            n_head=2,
            n_positions=16,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )


def test_squared_grad_hook_folds_the_step_gradient_every_step():
    model = _tiny_lm()
    opt = Sophia(model.parameters(), lr=0.0, estimator="squared_grad", weight_decay=0.0)
    hook = CurvatureHook([], 2, 0, "cpu", seed=0)
    w = model.lm_head.weight
    w.grad = torch.full_like(w, 2.0)
    opt.step()
    hook.on_step_end(0, model, opt, 0.0)
    assert torch.allclose(opt.state[w]["hessian"], torch.full_like(w, 0.01 * 4.0))
    assert hook.clip_rates == [1.0]


def test_gnb_hook_folds_batch_size_times_squared_sampled_gradient_every_k_steps():
    model = _tiny_lm()
    items = [{"ids": [1, 2, 3, 4, 5], "prompt_len": 2}, {"ids": [3, 4, 5, 6], "prompt_len": 1}]
    opt = Sophia(model.parameters(), lr=0.0, weight_decay=0.0, estimator="gnb", hessian_every=3)
    hook = CurvatureHook(items, 2, 0, "cpu", seed=7)
    w = model.lm_head.weight
    for step in (1, 2):  # not a multiple of k: nothing folded
        hook.on_step_end(step, model, opt, 0.0)
    assert w not in opt.state or float(opt.state[w]["hessian"].abs().sum()) == 0.0
    hook.on_step_end(3, model, opt, 0.0)
    # independent recomputation: the same batch and sampled labels, B = 2 sequences
    model.zero_grad()
    gnb_loss(model, hook.sampler(3), torch.Generator().manual_seed(7 * 1_000_003 + 3)).backward()
    expected = (1 - 0.99) * 2 * w.grad**2
    assert float(expected.abs().sum()) > 0
    assert torch.allclose(opt.state[w]["hessian"], expected)
    assert math.isnan(hook.clip_rates[0])  # no step() was taken yet

"""Optimizers by name: the training loop asks this registry, so a new optimizer (SOUL's Sophia) is one
registered factory plus its arguments under `optimizers.<name>` in params.yaml."""

from __future__ import annotations

from collections.abc import Callable

import torch

from unlearn_repro.optim.sophia import CurvatureHook, Sophia
from unlearn_repro.optim.sophia_constant import make_sophia_constant
from unlearn_repro.registry import Registry

__all__ = ["OPTIMIZERS", "CurvatureHook", "Sophia", "make_optimizer"]

# factory(params, lr, weight_decay, **args) -> torch.optim.Optimizer
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("adamw")
def _adamw(params, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps)


@OPTIMIZERS.register("sgd")
def _sgd(params, lr, weight_decay=0.0, momentum=0.0):
    """Plain theta <- theta - lr * grad with momentum 0 (Alg. 1 as written)."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)


@OPTIMIZERS.register("sophia")
def _sophia(
    params, lr, weight_decay=0.1, betas=(0.965, 0.99), rho=0.04, eps=1e-15, estimator="gnb", hessian_every=10
):
    """SOUL's second-order optimizer; its curvature comes from sophia.CurvatureHook in the loop."""
    return Sophia(
        params,
        lr=lr,
        betas=tuple(betas),
        rho=rho,
        weight_decay=weight_decay,
        eps=eps,
        estimator=estimator,
        hessian_every=hessian_every,
    )


def make_optimizer(recipe, params) -> torch.optim.Optimizer:
    """The recipe's optimizer over `params`, with its arguments from params.yaml `optimizers.<name>`."""
    factory = OPTIMIZERS.get(recipe.optimizer)
    try:
        return factory(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **dict(recipe.optimizer_args))
    except TypeError as e:
        raise ValueError(
            f"optimizers.{recipe.optimizer}: bad arguments {dict(recipe.optimizer_args)}: {e}"
        ) from None


OPTIMIZERS.register("sophia_constant")(make_sophia_constant)  # issue 21: Sophia with h held constant

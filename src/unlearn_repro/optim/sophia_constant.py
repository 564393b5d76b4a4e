"""Sophia with its curvature h held constant (ablation, issue 21): the same clipped momentum step
theta <- theta - lr sign(m) min(|m| / max(rho h, eps), 1), but h never updated from the estimator.

Why: with h = 0 (the default) every coordinate is clipped and the step is lr sign(m), sign-momentum descent:
Sophia minus its second-order information, everything else (momentum, clipping rule, decoupled weight decay,
the training loop's CurvatureHook bookkeeping of the clip rate) the same.
optim/__init__.py registers `make_sophia_constant` as `sophia_constant`."""

from __future__ import annotations

import torch

from unlearn_repro.optim import memory
from unlearn_repro.optim.sophia import Sophia

memory.OPTIMIZER_STATES.setdefault("sophia_constant", 2)  # m and h, as Sophia (the memory plan's count)


class SophiaConstant(Sophia):
    """Sophia whose h is `h` everywhere and stays there (update_hessian does nothing)."""

    def __init__(self, params, lr, h: float = 0.0, **kwargs):
        if h < 0:
            raise ValueError(f"SophiaConstant: h must be >= 0, got {h}")
        super().__init__(params, lr, **kwargs)
        self.h = float(h)

    def _state(self, p):
        fresh = not self.state[p]
        st = super()._state(p)
        if fresh:
            st["hessian"].fill_(self.h)
        return st

    @torch.no_grad()
    def update_hessian(self, scale: float = 1.0) -> None:
        """h is held constant: the estimator's sample is ignored."""


def make_sophia_constant(
    params,
    lr,
    weight_decay=0.1,
    betas=(0.965, 0.99),
    rho=0.04,
    eps=1e-15,
    h=0.0,
    estimator="squared_grad",
    hessian_every=10,
):
    """Sophia's arguments plus the constant h; estimator squared_grad: no GNB pass for an h never used."""
    return SophiaConstant(
        params,
        lr=lr,
        h=h,
        betas=tuple(betas),
        rho=rho,
        weight_decay=weight_decay,
        eps=eps,
        estimator=estimator,
        hessian_every=hessian_every,
    )

"""Fisher Forgetting with isotropic noise (ablation, issue 21):
theta <- theta + (mu sigma^2)^(1/4) r M / ||M||,
r = ||F^(-1/4) M|| (the shaped noise's norm for the same draw M ~ N(0, I)).

Why: the same noise magnitude, step by step, as Fisher Forgetting, but in a uniformly random direction, so the
only difference is the Fisher's shaping of the noise. Not in the main study."""

from __future__ import annotations

import torch

from unlearn_repro.methods.base import POS_NUM, object_schema, register
from unlearn_repro.methods.fisher_forgetting import FisherForgetting
from unlearn_repro.metrics.curvature import QUARTER


def isotropic_like(noise: torch.Tensor, shaped: torch.Tensor) -> torch.Tensor:
    """`noise` rescaled to the norm of `shaped` (its direction: uniform on the sphere for noise ~ N(0, I))."""
    return noise * (shaped.norm() / noise.norm())


@register
class FisherForgettingIsotropic(FisherForgetting):
    name, label = "fisher_forgetting_isotropic", "Fisher Forgetting (isotropic noise)"
    schema = object_schema(mu=POS_NUM, sigma=POS_NUM)

    def step(self, ctx, model, fisher, forget_batch, generator):
        p = self.hp(ctx.cfg)
        noise = torch.randn(fisher.dim, generator=generator).to(fisher.device)
        shaped = fisher.power_matmul(noise, QUARTER)
        return (p.mu * p.sigma**2) ** 0.25 * isotropic_like(noise, shaped), {"sampled_noise_cosine": 1.0}

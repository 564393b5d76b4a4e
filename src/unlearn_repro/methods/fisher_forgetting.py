"""Fisher Forgetting (Alg. 3): theta <- theta + (mu sigma^2)^(1/4) F^(-1/4) M with M ~ N(0, I).

F^(-1/4) acts on M per block (a matrix power through eigh), so the noise has covariance
(mu sigma^2)^(1/2) F^(-1/2): large where D+ is insensitive, small where it matters (Golatkar et al.)."""

from __future__ import annotations

import torch

from unlearn_repro.methods.base import POS_NUM, object_schema, register
from unlearn_repro.methods.newton import NewtonMethod
from unlearn_repro.metrics.curvature import QUARTER, newton_premise, power_spread


@register
class FisherForgetting(NewtonMethod):
    name, label = "fisher_forgetting", "Fisher Forgetting"
    schema = object_schema(mu=POS_NUM, sigma=POS_NUM)
    powers = True
    step_key = ("mu", "sigma")  # set together, as the paper's grid does: noise scale (mu sigma^2)^1/4

    def step(self, ctx, model, fisher, forget_batch, generator):
        p = ctx.cfg.methods.fisher_forgetting
        noise = torch.randn(fisher.dim, generator=generator).to(fisher.device)
        shaped = fisher.power_matmul(noise, QUARTER)
        drawn = newton_premise(shaped, noise, fisher.damping**QUARTER)  # this draw's cosine with M
        return (p.mu * p.sigma**2) ** 0.25 * shaped, {"sampled_noise_cosine": drawn["cosine"]}

    def rebuild_premise(self, fisher):
        """The spread of F^-1/4's eigenvalues (from the decomposition power_matmul caches anyway)."""
        return {**super().rebuild_premise(fisher), **power_spread(fisher.eigenvalues(), fisher.damping)}

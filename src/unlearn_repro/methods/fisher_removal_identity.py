"""Fisher Removal with F^-1 = I / lambda (ablation, issue 21): theta <- theta + (gamma / lambda) g.

Why: gradient ascent with Fisher Removal's own step rule, lambda included (relative damping: the same
lambda = kappa mean diag F_hat from the same D+ gradients), so the only difference to Fisher Removal is the
curvature. The D+ gradients are still drawn for lambda; the Fisher is kept at width-1 blocks (cheap, same
lambda). Not in the main study."""

from __future__ import annotations

from unlearn_repro.methods.base import register
from unlearn_repro.methods.fisher_removal_diagonal import FisherRemovalVariant


@register
class FisherRemovalIdentity(FisherRemovalVariant):
    name, label = "fisher_removal_identity", "Fisher Removal (F^-1 = I/lambda)"
    block_size = 1

    def direction(self, fisher, grad):
        return grad / fisher.damping

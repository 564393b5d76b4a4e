"""Sophia (Liu et al., ICLR 2024) as SOUL uses it (Algorithm 1, Eq. 11): a clipped, diagonally
preconditioned momentum step. The curvature EMA is fed from outside the step, every k steps, by a
`CurvatureHook` in the training loop (the estimate needs its own forward/backward pass).

Update, per coordinate (official SophiaG, `hessian` is the EMA h):
    h <- b2 h + (1 - b2) * scale * g*g            (update_hessian; g = p.grad at that moment)
    theta <- theta (1 - lr wd)                     (decoupled weight decay)
    m <- b1 m + (1 - b1) g
    theta <- theta - lr sign(m) min(|m| / max(rho h, eps), 1)

The official code's hidden batch-size factor (Liuhong99/Sophia, sophia.py): SophiaG divides by
`rho * bs * hess + 1e-15`, where `hess` is the EMA of the squared gradient of the *mean* CE on sampled
labels and `bs` is an argument of `step()` (default 5120; one version of train_sophiag.py instead passes
`rho * total_bs` as rho, total_bs = 480 sequences). Sophia's GNB estimator is h_hat = B * g*g, and
`CurvatureHook` folds exactly that (scale = B, the sequences in the GNB batch), so
    rho_ours * B * g^2 = rho_official * bs * g^2   <=>   rho_ours = rho_official * bs / B;
with B = bs the two rhos are the same number. `squared_grad` (SOUL's released code) folds the unlearning
gradient itself with scale 1, so there rho_ours = rho_official * bs.
"""

from __future__ import annotations

import math

import torch

from unlearn_repro.batches import Hook
from unlearn_repro.objectives import RetainSampler

ESTIMATORS = ("gnb", "squared_grad")


class Sophia(torch.optim.Optimizer):
    """Every hyperparameter lives in the param groups (estimator and hessian_every too: the hook reads them
    there), so `optimizer.param_groups` shows the whole configuration."""

    def __init__(
        self,
        params,
        lr,
        betas=(0.965, 0.99),
        rho=0.04,
        weight_decay=0.1,
        eps=1e-15,
        *,
        estimator: str = "gnb",
        hessian_every: int = 10,
    ):
        if lr < 0 or rho <= 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(
                f"Sophia: need lr >= 0, rho > 0, eps > 0, weight_decay >= 0; got lr={lr}, rho={rho}, "
                f"eps={eps}, weight_decay={weight_decay}"
            )
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Sophia: betas must lie in [0, 1), got {betas}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"Sophia: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if hessian_every < 1:
            raise ValueError(f"Sophia: hessian_every must be >= 1, got {hessian_every}")
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas),
                rho=rho,
                weight_decay=weight_decay,
                eps=eps,
                estimator=estimator,
                hessian_every=hessian_every,
            ),
        )
        self.clip_rate = math.nan  # share of coordinates whose step was clipped in the last step()
        self.unclipped_share = (
            math.nan
        )  # share of the last step's L1 mass from unclipped (curvature-scaled) ones

    def _state(self, p):
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["hessian"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def update_hessian(self, scale: float = 1.0) -> None:
        """Fold the gradient now in p.grad into the curvature EMA: h <- b2 h + (1 - b2) scale g*g."""
        for group in self.param_groups:
            b2 = group["betas"][1]
            for p in group["params"]:
                if p.grad is not None:
                    self._state(p)["hessian"].mul_(b2).addcmul_(p.grad, p.grad, value=(1 - b2) * scale)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sums, total = [], 0  # per tensor: clipped, unclipped mass, mass
        for group in self.param_groups:
            lr, (b1, _), rho, wd, eps = (
                group["lr"],
                group["betas"],
                group["rho"],
                group["weight_decay"],
                group["eps"],
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self._state(p)
                st["step"] += 1
                p.mul_(1 - lr * wd)
                m = st["exp_avg"].mul_(b1).add_(p.grad, alpha=1 - b1)
                ratio = m.abs() / torch.clamp(rho * st["hessian"], min=eps)
                free = ratio < 1
                total += ratio.numel()
                ratio.clamp_(max=1.0)
                sums.append(
                    torch.stack([(~free).sum().double(), (ratio * free).sum().double(), ratio.sum().double()])
                )
                p.addcmul_(m.sign(), ratio, value=-lr)
        clipped, free_mass, mass = (
            torch.stack(sums).sum(0).tolist() if sums else (0, 0.0, 0.0)
        )  # one host sync
        self.clip_rate = clipped / total if total else math.nan
        self.unclipped_share = free_mass / mass if mass else math.nan
        return loss


class CurvatureHook(Hook):
    """Feeds a Sophia optimizer's curvature EMA from the training loop and records its clip rate per step.

    gnb           every `hessian_every` steps: labels sampled from the model's own predictive distribution
                  on a batch of `items` (answer tokens only), the gradient g of their mean CE, h_hat = B g*g
                  (Sophia's Gauss-Newton-Bartlett estimator; B = sequences in the batch)
    squared_grad  every step: h_hat = g*g of the unlearning loss's own gradient (SOUL's released code)
    With another optimizer it does nothing (so FO and SO runs share one code path).
    """

    def __init__(self, items, batch_size: int, pad_id: int, device, seed: int):
        self.sampler = RetainSampler(list(items), batch_size, seed, pad_id, device) if items else None
        self.seed = seed
        self.clip_rates: list[float] = []
        self.unclipped_shares: list[float] = []

    def on_step_end(self, step, model, optimizer, loss):
        if not isinstance(optimizer, Sophia):
            return
        self.clip_rates.append(optimizer.clip_rate)
        self.unclipped_shares.append(optimizer.unclipped_share)
        group = optimizer.param_groups[0]
        if group["estimator"] == "squared_grad":
            optimizer.update_hessian()  # p.grad still holds this step's unlearning gradient
        elif step % group["hessian_every"] == 0:
            if self.sampler is None:
                raise ValueError("CurvatureHook: the gnb estimator needs items to sample labels on")
            batch = self.sampler(step)
            optimizer.zero_grad(set_to_none=True)
            gnb_loss(model, batch, torch.Generator().manual_seed(self.seed * 1_000_003 + step)).backward()
            optimizer.update_hessian(scale=float(batch["input_ids"].shape[0]))
            optimizer.zero_grad(set_to_none=True)


def gnb_loss(model, batch: dict, generator: torch.Generator) -> torch.Tensor:
    """Mean CE of the model's predictions against labels drawn from those predictions (labelled positions)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    keep = batch["labels"][:, 1:] != -100
    logits = logits[keep].float()
    with torch.no_grad():
        sampled = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).squeeze(-1)
    return torch.nn.functional.cross_entropy(logits, sampled.to(logits.device))

"""The curvature premise of the second-order methods, measured on the update each run takes.

A second-order method only differs from its first-order counterpart where its curvature term bends or
rescales the step. Each number below says how much it did:

  Fisher Removal   cosine(F^-1 g, g) and lambda ||F^-1 g|| / ||g|| (the step's norm over that of the
                   gradient-ascent step gamma/lambda g it becomes when F^-1 = I/lambda)
  Fisher Forgetting  spread of F^-1/4's eigenvalues w (std / mean); the noise F^-1/4 M, M ~ N(0, I), then has
                   expected cosine mean(w) / rms(w) = 1 / sqrt(1 + spread^2) with the isotropic noise M
  Sophia           clip rate (share of coordinates whose step is the clipped sign(m)) and the share of the
                   step's L1 mass carried by the unclipped, curvature-scaled coordinates

A run is "curvature-degenerate" when its step is, to within the threshold, the first-order one: cosine (or
expected noise cosine) above COSINE_MAX, or a Sophia clip rate above CLIP_MAX (sign-momentum descent).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

# tensors come in as arguments: the thresholds and verdicts import without torch (the DAG build)
if TYPE_CHECKING:
    import torch

COSINE_MAX = 0.95  # above: the second-order step points where the first-order one does
COSINE_SELECT = 0.9  # the regime rule picks damping with this margin below COSINE_MAX
CLIP_MAX = 0.9  # above: Sophia is sign-momentum descent (rho h plays no part)
CLIP_BAND = (0.1, 0.9)  # the regime rule's target for Sophia's clip rate (docs/curvature.md)
QUARTER = 0.25  # Fisher Forgetting's power of F^-1


def newton_premise(step_dir: torch.Tensor, grad: torch.Tensor, damping: float) -> dict:
    """cosine(F^-1 g, g) and the norm ratio lambda ||F^-1 g|| / ||g|| from F^-1 g (`step_dir`) and g."""
    a, b = step_dir.double().flatten(), grad.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0 or nb == 0:
        return {"cosine": math.nan, "norm_ratio": math.nan}
    return {"cosine": float(a @ b) / (na * nb), "norm_ratio": damping * na / nb}


def power_spread(inverse_eigenvalues: torch.Tensor, damping: float, p: float = QUARTER) -> dict:
    """Spread (std / mean) of (F^-1)^p's eigenvalues, the noise's expected cosine with isotropic noise,
    and its rms gain over the prior's lambda^-p (1 when F^-1 = I / lambda)."""
    w = inverse_eigenvalues.double().clamp_min(0).pow(p)
    mean, rms = float(w.mean()), float(w.pow(2).mean().sqrt())
    spread = float(w.std(unbiased=False)) / mean
    return {"spread": spread, "noise_cosine": mean / rms, "noise_norm_ratio": rms * damping**p}


def sophia_clip(m: torch.Tensor, h: torch.Tensor, rho: float, eps: float) -> tuple[int, int, float, float]:
    """(clipped, total, unclipped L1 mass, total L1 mass) of one Sophia step over one tensor: ratio
    |m| / max(rho h, eps) is clipped at 1 where >= 1 (the optimizer's own rule)."""
    ratio = m.abs() / (rho * h).clamp(min=eps)
    clipped = ratio >= 1
    step = ratio.clamp(max=1.0)
    return int(clipped.sum()), ratio.numel(), float(step[~clipped].sum()), float(step.sum())


def verdict(kind: str, premise: dict) -> str:
    """'met', 'curvature-degenerate' or 'not measured' for one run's premise (mean over its steps)."""
    key, limit = {
        "fisher_removal": ("cosine", COSINE_MAX),
        "fisher_forgetting": ("noise_cosine", COSINE_MAX),
        "sophia": ("clip_rate", CLIP_MAX),
    }[kind]
    v = premise.get(key)
    if v is None or not math.isfinite(v):
        return "not measured"
    return "curvature-degenerate" if v > limit else "met"


def mean_premise(rows: list[dict]) -> dict:
    """Per key, the mean over steps (NaN-free); plus the largest cosine seen (a single degenerate step)."""
    keys = {k for r in rows for k in r}
    out = {}
    for k in sorted(keys):
        vals = [r[k] for r in rows if r.get(k) is not None and math.isfinite(r[k])]
        out[k] = sum(vals) / len(vals) if vals else math.nan
    for k in ("cosine", "noise_cosine"):
        vals = [r[k] for r in rows if k in r and math.isfinite(r[k])]
        if vals:
            out[f"{k}_max"] = max(vals)
    return out


def sophia_summary(clip_rates: list[float], unclipped: list[float], steps_per_epoch: int) -> dict:
    """A Sophia run's premise: per-epoch means of the clip rate and unclipped share, their run means and
    the verdict (empty for a run without Sophia)."""
    if not clip_rates:
        return {}

    def per_epoch(xs):
        return [
            sum(xs[i : i + steps_per_epoch]) / len(xs[i : i + steps_per_epoch])
            for i in range(0, len(xs), steps_per_epoch)
        ]

    premise = {
        "clip_rate": sum(clip_rates) / len(clip_rates),
        "unclipped_share": sum(unclipped) / len(unclipped),
    }
    return {
        "clip_rate_per_epoch": per_epoch(clip_rates),
        "unclipped_share_per_epoch": per_epoch(unclipped),
        "curvature": {**premise, "verdict": verdict("sophia", premise)},
    }


# -- the regime rule (docs/curvature.md): damping on the Fisher's scale, steps from the paper's grid -------
PAPER_GRID = (1.0e-4, 2.5e-4, 5.0e-4, 1.0e-3)  # gamma, mu = sigma: the paper's grid search range [1e-4, 1e-3]
NLL_BOUND = 0.1  # nats per test token a chosen step may cost (test PPL +10.5 %)


def select_kappa(rows: list[dict], limit: float = COSINE_SELECT) -> tuple[float | None, bool]:
    """(kappa, whether Fisher Forgetting's noise is shaped too). The largest kappa (the most damped, most
    stable F^-1) at which Fisher Removal's cosine is at most `limit` (a margin below the verdict's COSINE_MAX:
    other batches and cycles vary) and Fisher Forgetting's expected noise cosine at most COSINE_MAX; if no
    kappa shapes the noise, the largest meeting Fisher Removal's condition alone (Fisher Forgetting is then
    curvature-degenerate at every kappa, and the table says so). None if no kappa bends the step."""
    removal = [r for r in rows if r["cosine"] <= limit]
    both = [r["kappa"] for r in removal if r["noise_cosine"] <= COSINE_MAX]
    if both:
        return max(both), True
    return (max(r["kappa"] for r in removal) if removal else None), False


def step_candidates(grid=PAPER_GRID, decades: int = 4):
    """The grid, largest first, then the grid a decade lower, and so on (`decades` times): under a damping far
    below the paper's lambda = 1 the paper's steps may all be too large, and the rule goes down, never up."""
    seen = set()
    for k in range(decades + 1):
        for v in sorted(grid, reverse=True):
            step = float(f"{v * 10.0**-k:.3g}")
            if step not in seen:
                seen.add(step)
                yield step


def select_step(
    measure, bound: float = NLL_BOUND, grid=PAPER_GRID, decades: int = 4
) -> tuple[float | None, list]:
    """The largest step of `step_candidates` whose measured Delta test NLL (`measure(step) -> dict` with
    'delta_test_nll') is at most `bound`; scanning stops at the first such step. (chosen or
    None, every row)."""
    rows = []
    for step in step_candidates(grid, decades):
        row = {"step": step, **measure(step)}
        rows.append(row)
        d = row["delta_test_nll"]
        if d is not None and math.isfinite(d) and d <= bound:
            return step, rows
    return None, rows


def select_rho(rows: list[dict], band: tuple[float, float] = CLIP_BAND) -> float | None:
    """Of the rhos measured, the one whose clip rate lies in `band` and nearest its middle (None
    if none does)."""
    mid = sum(band) / 2
    ok = [r for r in rows if band[0] <= r["clip_rate"] <= band[1]]
    return min(ok, key=lambda r: abs(r["clip_rate"] - mid))["rho"] if ok else None

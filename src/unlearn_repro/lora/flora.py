"""FLoRA (FLoRA paper §3.4, Eq. 2-4): LoRA adapters initialized with the principal components of each target
weight W after weighting its rows by their relative Fisher importance for the forget set, so unlearning moves
the directions that matter to D_f but not to D_r. The base weight becomes W - BA: the output is unchanged."""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer

from unlearn_repro.fisher.diagonal import diagonal_fisher


def row_weights(fisher_forget: torch.Tensor, fisher_retain: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """d = sqrt(F_rel · 1), F_rel = F_f / (F_r + eps); rows with no importance get a tiny positive weight
    (diag(d) must be invertible)."""
    rel = (fisher_forget.double() / (fisher_retain.double() + eps)).sum(dim=1)
    d = rel.clamp_min(0).sqrt()
    floor = max(float(d.max()) * 1e-8, 1e-30)
    return d.clamp_min(floor)


def fisher_weighted_init(
    weight: torch.Tensor,
    fisher_forget: torch.Tensor,
    fisher_retain: torch.Tensor,
    rank: int,
    eps: float = 1e-8,
):
    """(A [rank, d_in], B [d_out, rank], residual [d_out, d_in]) for a weight W [d_out, d_in]: the rank-r SVD
    diag(d) W ~ U S V^T gives B = diag(d)^-1 U S^1/2, A = S^1/2 V^T (Eq. 4's closed form), so diag(d) B A is
    the best rank-r approximation of diag(d) W; residual = W - B A."""
    _check(weight, fisher_forget, fisher_retain, rank)
    return _factors(weight, row_weights(fisher_forget, fisher_retain, eps), rank)


def _check(weight, fisher_forget, fisher_retain, rank: int) -> None:
    if weight.dim() != 2:
        raise ValueError(
            f"fisher_weighted_init: weight must be 2-D [d_out, d_in], got shape {tuple(weight.shape)}"
        )
    if fisher_forget.shape != weight.shape or fisher_retain.shape != weight.shape:
        raise ValueError(
            f"fisher_weighted_init: Fisher shapes {tuple(fisher_forget.shape)}, "
            f"{tuple(fisher_retain.shape)} differ from the weight's {tuple(weight.shape)}"
        )
    if not 1 <= rank <= min(weight.shape):
        raise ValueError(f"fisher_weighted_init: rank {rank} outside 1..{min(weight.shape)}")


def _factors(weight: torch.Tensor, d: torch.Tensor, rank: int):
    """fisher_weighted_init for given row weights d."""
    w = weight.detach().double()
    u, s, vh = torch.linalg.svd(d[:, None] * w, full_matrices=False)
    root = s[:rank].sqrt()
    b = u[:, :rank] * root / d[:, None]
    a = root[:, None] * vh[:rank]
    residual = w - b @ a
    return a.to(weight.dtype), b.to(weight.dtype), residual.to(weight.dtype)


def lora_layers(peft_model, adapter: str = "default") -> dict:
    """{module name: peft LoRA layer} of a peft model."""
    return {n: m for n, m in peft_model.named_modules() if isinstance(m, LoraLayer) and adapter in m.lora_A}


@torch.no_grad()
def _write(layer, a, b, residual, adapter: str) -> None:
    scaling = layer.scaling[adapter]  # peft adds lora_B(lora_A(x)) * alpha / r: store B / scaling
    layer.lora_A[adapter].weight.copy_(a)
    layer.lora_B[adapter].weight.copy_(b / scaling)
    layer.get_base_layer().weight.copy_(residual)


def flora_init(peft_model, forget, retain, eps: float = 1e-8, adapter: str = "default") -> dict:
    """Overwrite the freshly added (B = 0) LoRA adapters of `peft_model` with FLoRA's initialization, from the
    diagonal empirical Fisher of each target weight on `forget` and on `retain`. Returns the row weights."""
    layers = lora_layers(peft_model, adapter)
    if not layers:
        raise ValueError("flora_init: the model has no LoRA layers")
    weights = {n: m.get_base_layer().weight for n, m in layers.items()}
    f_forget = diagonal_fisher(peft_model, forget, weights)
    f_retain = diagonal_fisher(peft_model, retain, weights)
    rows = {}
    for n, m in layers.items():
        rank = m.lora_A[adapter].weight.shape[0]
        _check(weights[n], f_forget[n], f_retain[n], rank)
        rows[n] = row_weights(f_forget[n], f_retain[n], eps)
        _write(m, *_factors(weights[n], rows[n], rank), adapter)
    return rows

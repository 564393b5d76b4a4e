"""Diagonal empirical Fisher: the mean of squared per-sample gradients, F_hat = (1/|D|) sum_x (dL(x)/dtheta)^2
(FLoRA Eq. 2), for named parameters. One backward per sample (a batch gradient squared would be the square
of the mean, not the mean of the squares)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def diagonal_fisher(model, seqs: Sequence[Sequence[int]], params: Mapping[str, torch.nn.Parameter]) -> dict:
    """{name: mean over `seqs` of (d CE(x) / d param)^2}, CE = the model's mean next-token loss of one sequence.
    Gradients flow to `params` only; the model's requires_grad flags are restored afterwards."""
    if not seqs:
        raise ValueError("diagonal_fisher: no sequences")
    device = next(model.parameters()).device
    flags = {p: p.requires_grad for p in model.parameters()}
    wanted = {id(p) for p in params.values()}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    was_training = model.training
    model.eval()
    sums = {k: torch.zeros_like(p, dtype=torch.float64) for k, p in params.items()}
    try:
        for s in seqs:
            ids = torch.as_tensor([list(s)], dtype=torch.long, device=device)
            loss = model(input_ids=ids, labels=ids).loss
            grads = torch.autograd.grad(loss, list(params.values()))
            for k, g in zip(params, grads):
                sums[k] += g.double() ** 2
    finally:
        for p, f in flags.items():
            p.requires_grad_(f)
        model.train(was_training)
    return {k: (v / len(seqs)).to(params[k].dtype) for k, v in sums.items()}

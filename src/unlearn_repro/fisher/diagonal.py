"""Diagonal empirical Fisher: the mean of squared per-sample gradients, F_hat = (1/|D|) sum_x (dL(x)/dtheta)^2
(FLoRA Eq. 2), for named parameters. Per-sample gradients (a batch gradient squared would be the square of
the mean, not the mean of the squares), computed in batched chunks by `fisher.per_sample.stream`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from unlearn_repro.fisher.per_sample import stream, trainable_named

CHUNK_BYTES = 1 << 30  # per-sample gradients held at once (4 bytes per entry)


def diagonal_fisher(model, seqs: Sequence[Sequence[int]], params: Mapping[str, torch.nn.Parameter]) -> dict:
    """{name: mean over `seqs` of (d CE(x) / d param)^2}, CE = the model's mean next-token loss of one
    sequence. Gradients flow to `params` only; the model's requires_grad flags are restored afterwards."""
    if not seqs:
        raise ValueError("diagonal_fisher: no sequences")
    device = next(model.parameters()).device
    flags = {p: p.requires_grad for p in model.parameters()}
    key_of = {id(p): k for k, p in params.items()}
    for p in model.parameters():
        p.requires_grad_(id(p) in key_of)
    was_training = model.training
    model.eval()
    try:
        order = [key_of[id(p)] for p in trainable_named(model).values()]  # the flat gradient's layout
        if sorted(order) != sorted(params):
            raise ValueError(
                f"diagonal_fisher: {sorted(set(params) - set(order))} are not distinct parameters of "
                "the model"
            )
        sizes = [params[k].numel() for k in order]
        chunk = max(1, min(64, CHUNK_BYTES // (4 * sum(sizes))))
        total = torch.zeros(sum(sizes), dtype=torch.float64, device=device)
        groups = ([list(s)] for s in seqs)  # one sequence per gradient
        for block in stream(model, groups, len(seqs), chunk, pad_id=0, device=device):
            for row in block:
                total.addcmul_(row, row)  # squared in fp64, no [chunk, d] temporaries
    finally:
        for p, f in flags.items():
            p.requires_grad_(f)
        model.train(was_training)
    parts = torch.split(total / len(seqs), sizes)
    return {k: v.reshape(params[k].shape).to(params[k].dtype) for k, v in zip(order, parts)}

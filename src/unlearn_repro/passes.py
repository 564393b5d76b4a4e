"""Sample passes: a run's cost in a unit every method shares (issue 25's column beside runtime).

The methods count their own work in different units (optimizer steps over batches, Newton steps over
`fisher.num_grads` per-sample gradients, Sophia's curvature estimates every k steps), so the count is taken
at the model instead: every sequence that goes through a causal LM's forward with gradients on is one sample
pass (a forward and its backward): training steps, per-sample gradients (also inside torch.func.vmap),
curvature estimates. Scoring and generation (no gradient) are not counted. A global module hook sees every
model a run loads, retraining's fresh one included. A row that only fills a short per-sample group
(fisher.per_sample.pad_groups, with groups of more than one sequence) is computed, so it counts too."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass
class PassCount:
    sample_passes: int = 0


def _rows(t: torch.Tensor) -> int:
    """Sequences in a [..., L] id tensor; inside vmap the batched dimensions count too (the unwrapped
    tensor's leading dimensions)."""
    f = torch._C._functorch
    while f.is_functorch_wrapped_tensor(t):
        t = f.get_unwrapped(t)
    return t.numel() // max(1, t.shape[-1]) if t.dim() else 1


@contextlib.contextmanager
def counting():
    """Count sample passes while the block runs: `with counting() as c: ...; c.sample_passes`."""
    from transformers import GenerationMixin  # the causal-LM heads; a PEFT wrapper calls one once

    count = PassCount()

    def hook(module, args, kwargs, output):
        if not torch.is_grad_enabled() or not isinstance(module, GenerationMixin):
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None and kwargs.get("inputs_embeds") is not None:
            ids = kwargs["inputs_embeds"][..., 0]  # [..., L, H] -> [..., L]
        if isinstance(ids, torch.Tensor):
            count.sample_passes += _rows(ids)

    handle = torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()

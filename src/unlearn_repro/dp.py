"""DP-SGD through opacus for the one training loop (train.train): the private model, optimizer and batch
plan are made here and handed to the loop; nothing here trains.

The pitfalls of Hugging Face causal LMs under opacus, each handled (and tested in tests/unit/test_dp.py):

* loss: HF's `.loss` is a token mean over the whole batch, which couples the samples; opacus's
  "mean" reduction expects the mean over samples of a per-sample loss -> `per_sequence_lm_loss`.
* learned positional embeddings: GPT-Neo's `wpe` sees position ids shared by the batch (a per-sample
  gradient of batch 1) and OPT's `embed_positions` is called with the attention mask and an int, which
  opacus cannot hook: positional embeddings are frozen (pretrained, public); `check_trainable` refuses
  a model where one is trainable, naming it.
* tied input/output embeddings: opacus sums the two uses' per-sample gradients (hooks mode); they are
  frozen by default (`train_token_embeddings: false`), a common DP fine-tuning choice.
* OPT flattens [batch, time, hidden] to [batch*time, hidden] before fc1, fc2 and a layer norm, so opacus
  sees batch*time "samples": such layers (found by a probe forward) get opacus's rule summed per sequence.
* Poisson sampling: `poisson_batches` draws each epoch's batches with the sampling rate the accountant uses,
  seeded (a pure function of seed and epoch, like train.batch_order); an empty draw is refused.
* `_module.` prefixes: checkpoints.save unwraps the GradSampleModule; `release` puts OPT's layers back.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from unlearn_repro import losses
from unlearn_repro.models.checkpoint import unwrap
from unlearn_repro.train import batch_order

POSITIONAL = ("wpe", "embed_positions")  # GPT-Neo, OPT learned positional embeddings
TOKEN_EMBEDDINGS = ("wte", "embed_tokens")  # tied with lm_head in both families


def per_sequence_lm_loss(model, batch, step: int = 0) -> torch.Tensor:
    """Mean over sequences of each sequence's mean token NLL: a per-sample loss averaged over the batch
    (what opacus's loss_reduction="mean" expects), not HF's token mean over the batch."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    nll, mask = losses.token_nll(out.logits, batch["labels"])
    return (nll.sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def freeze_embeddings(model, train_token_embeddings: bool = False) -> list[str]:
    """Freeze the positional embeddings (always) and the tied token embeddings / LM head (unless asked to
    train them); return the frozen parameter names."""
    frozen = []
    for name, p in model.named_parameters():
        if any(k in name.split(".") for k in POSITIONAL) or (
            not train_token_embeddings and any(k in name.split(".") for k in TOKEN_EMBEDDINGS)
        ):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def check_trainable(model) -> None:
    """Refuse layers opacus computes wrong or no per-sample gradients for (see the module doc)."""
    bad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and any(k in n.split(".") for k in POSITIONAL)
    ]
    if bad:
        raise ValueError(
            f"DP-SGD: trainable learned positional embeddings {bad}: opacus has no per-sample rule for "
            "them in GPT-Neo / OPT (position ids are shared by the batch); freeze them "
            "(dp.freeze_embeddings)"
        )


class TokenFlattened:
    """Mixin for a layer called on [batch*time, features] (OPT's fc1, fc2 and final_layer_norm): `sequences`
    (set before each forward by a hook on the model) says how many samples the rows belong to."""

    sequences: int = 0


_FOLDED: dict[type, type] = {}


def _folded_class(base: type) -> type:
    """`base` with opacus's own per-sample rule, whose per-token gradients are summed per sequence."""
    if base not in _FOLDED:
        # heavy: only the DP path needs opacus (the Snakefile imports pipeline.privacy, so this module)
        from opacus.grad_sample import GradSampleModule
        from opacus.grad_sample.utils import register_grad_sampler

        rule = GradSampleModule.GRAD_SAMPLERS[base]
        cls = type(f"TokenFlattened{base.__name__}", (TokenFlattened, base), {})

        def folded(layer, activations, backprops):
            if isinstance(layer, nn.Linear):  # direct: never materialize the per-token outer products
                return _linear_per_sequence(layer, activations[0], backprops)
            return {
                p: g.reshape(layer.sequences, -1, *g.shape[1:]).sum(1)
                for p, g in rule(layer, activations, backprops).items()
            }

        register_grad_sampler(cls)(folded)
        _FOLDED[base] = cls
    return _FOLDED[base]


def _linear_per_sequence(layer, a, g):
    """Per-sequence gradients of a Linear applied to [batch*time] rows: sum_t g_t a_t^T for each sequence."""
    b = layer.sequences
    a, g = a.reshape(b, -1, a.shape[-1]), g.reshape(b, -1, g.shape[-1])
    out = {layer.weight: torch.einsum("bto,bti->boi", g, a)} if layer.weight.requires_grad else {}
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = g.sum(1)
    return out


def flattened_layers(model) -> list[nn.Module]:
    """Layers with trainable weights whose input is [batch*time, ...]: found by one probe forward."""
    seen: dict[nn.Module, int] = {}

    def record(module, args):  # returns None: the input passes unchanged
        seen.setdefault(module, args[0].shape[0])

    hooks = [
        m.register_forward_pre_hook(record)
        for m in model.modules()
        if any(p.requires_grad for p in m.parameters(recurse=False))
    ]
    try:
        with torch.no_grad():
            model(input_ids=torch.zeros(2, 3, dtype=torch.long, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return [m for m, rows in seen.items() if rows == 6]


def prepare_model(model, train_token_embeddings: bool = False):
    """Freeze what opacus cannot handle and give layers that see [batch*time] rows a per-sequence rule."""
    freeze_embeddings(model, train_token_embeddings)
    check_trainable(model)
    layers = flattened_layers(model)
    for layer in layers:
        layer.__class__ = _folded_class(type(layer))
    if layers:
        model.register_forward_pre_hook(_set_sequences, with_kwargs=True)
    return model


def _set_sequences(model, args, kwargs):
    """Before each forward: tell the flattened layers the batch size (a copy of the model finds its own)."""
    n = kwargs.get("input_ids", args[0] if args else None).shape[0]
    for layer in model.modules():
        if isinstance(layer, TokenFlattened):
            layer.sequences = n
            layer.max_batch_len = n  # opacus scales a mean loss's backprops by this (not by batch*time)


def release(model):
    """The plain HF model back (OPT's Linears as nn.Linear, every parameter trainable): what is saved."""
    model = unwrap(model)
    for m in model.modules():
        if isinstance(m, TokenFlattened):
            m.__class__ = type(m).__mro__[2]  # the layer's own class
        m._forward_pre_hooks.clear()
        m._forward_hooks.clear()
        m._backward_hooks.clear()
    for p in model.parameters():
        p.requires_grad_(True)
        for attr in ("grad_sample", "_forward_counter", "_current_grad_sample"):
            if hasattr(p, attr):
                delattr(p, attr)
    return model


def sampling(n: int, batch_size: int) -> tuple[float, int]:
    """(sampling rate q, steps per epoch) as opacus derives them from a DataLoader of `batch_size`."""
    steps = math.ceil(n / batch_size)
    return 1.0 / steps, steps


def poisson_batches(n: int, sample_rate: float, steps: int, seed: int):
    """Epoch -> Poisson-sampled batches: each sample in each step independently with probability q (the
    sampling the accountant assumes), seeded like train.batch_order."""

    def plan(epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        draws = torch.rand(steps, n, generator=g) < sample_rate
        batches = [torch.nonzero(row).flatten().tolist() for row in draws]
        if any(not b for b in batches):
            raise ValueError(
                f"DP-SGD: Poisson sampling drew an empty batch (expected size {n * sample_rate:.1f} of "
                f"{n} samples); raise the batch size"
            )
        return batches

    return plan


@dataclass
class Private:
    """What DP fine-tuning hands the loop, and what it reports afterwards."""

    model: object
    optimizer: object
    batches: object  # epoch -> index lists (train.train's `batches`)
    engine: object
    noise_multiplier: float
    max_grad_norm: float
    delta: float
    sample_rate: float
    steps: int

    def epsilon(self) -> float:
        """ε spent so far (the accountant's, for the steps actually taken)."""
        return float(self.engine.get_epsilon(self.delta)) if self.noise_multiplier > 0 else math.inf


def make_private(
    model,
    optimizer,
    n: int,
    *,
    batch_size: int,
    epochs: int,
    max_grad_norm: float,
    delta: float,
    seed: int,
    epsilon: float | None = None,
    noise_multiplier: float | None = None,
    accountant: str = "rdp",
    poisson: bool = True,
) -> Private:
    """Wrap model and optimizer with opacus: noise calibrated to (epsilon, delta) over `epochs` by the
    accountant (make_private_with_epsilon), or a given noise multiplier (tests: 0). The returned plan
    samples at the same rate the accountant assumes."""
    # heavy: only the DP path needs opacus (the Snakefile imports pipeline.privacy, so this module)
    from opacus import PrivacyEngine

    if (epsilon is None) == (noise_multiplier is None):
        raise ValueError("DP-SGD: give exactly one of epsilon and noise_multiplier")
    q, steps = sampling(n, batch_size)
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size)  # tells opacus n and q only
    common = dict(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        max_grad_norm=max_grad_norm,
        poisson_sampling=poisson,
        noise_generator=torch.Generator().manual_seed(seed),
        loss_reduction="mean",
    )
    with warnings.catch_warnings():  # seeded noise on purpose (reproducible runs), not opacus's secure RNG
        warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
        engine = PrivacyEngine(accountant=accountant)
        if epsilon is not None:
            pmodel, popt, _ = engine.make_private_with_epsilon(
                target_epsilon=epsilon, target_delta=delta, epochs=epochs, **common
            )
        else:
            pmodel, popt, _ = engine.make_private(noise_multiplier=noise_multiplier, **common)
    plan = poisson_batches(n, q, steps, seed) if poisson else (lambda e: batch_order(n, batch_size, seed, e))
    return Private(
        pmodel,
        popt,
        plan,
        engine,
        float(popt.noise_multiplier),
        float(max_grad_norm),
        float(delta),
        q,
        steps * epochs,
    )

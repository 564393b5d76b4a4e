"""What the Newton-type methods share: flat gradients, the inverse-Fisher estimate from D+, and the
per-forget-batch loop (Alg. 2/3 lines 2-11). Each method supplies only its parameter update."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence

import torch

from unlearn_repro.fisher import EmpiricalFisherInverse, per_sample, plan_layout
from unlearn_repro.fisher.per_sample import flat_grad  # noqa: F401 (the forget-batch gradient of the methods)
from unlearn_repro.fisher.woodbury import layout_line, layout_record
from unlearn_repro.methods.base import Method
from unlearn_repro.metrics.curvature import mean_premise
from unlearn_repro.objectives import RetainSampler
from unlearn_repro.progress import progress
from unlearn_repro.train import batch_order


def trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def segments(model) -> dict[str, tuple[int, int]]:
    """name -> (offset, length) of each parameter tensor in the flattened vector (for diagnostics)."""
    out, offset = {}, 0
    seen = set()
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = (offset, p.numel())
            offset += p.numel()
    return out


@torch.no_grad()
def add_to_params(model, delta: torch.Tensor) -> None:
    offset = 0
    for p in trainable(model):
        n = p.numel()
        p.add_(delta[offset : offset + n].view_as(p).to(p.dtype))
        offset += n


def retain_stream(retain: Sequence[Sequence[int]], batch_size: int, seed: int):
    """Endless seeded stream of D+ batches (reshuffled each pass): the order RetainSampler draws."""
    sampler = RetainSampler(retain, batch_size, seed, pad_id=None, device=None)
    for step in itertools.count():
        yield [retain[i] for i in sampler.indices(step)]


def model_bytes(model) -> int:
    """The model's parameters and buffers, plus one flat gradient of the trainable ones
    (the forget step's)."""
    held = sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))
    return held + 4 * sum(p.numel() for p in trainable(model))


def estimate_inverse_fisher(
    model, batches, fcfg, pad_id, device, desc="fisher", width: int = 0, power: bool = False
) -> EmpiricalFisherInverse:
    """F^-1 from `fcfg.num_grads` D+ gradients: rank-1 Eq. 8, batched rank-k Woodbury, or accumulated block
    Fisher inverted once (fisher.update); all three give the same matrix. The gradients come in chunks of
    `fcfg.chunk` from one batched pass each (fisher.grads: hooks or vmap) or one backward each (loop); the
    layout of F^-1 (shards, storage precision) is planned before anything is allocated, counting F^-1, its
    inversion workspace, the gradient chunk (`width`: longest D+ sequence) and the model; a smaller chunk than
    `fcfg.chunk` is taken when that is what fits (same matrix, slower)."""
    model.eval()
    dim = per_sample.grad_dim(model)
    row = per_sample.row_bytes(
        model, width or model.config.max_position_embeddings, fcfg.grad_batch_size, fcfg.grads
    )
    devices, dtype, chunk, plan = plan_layout(
        dim,
        fcfg.block_size,
        device=device,
        storage=fcfg.storage,
        shards=fcfg.shards,
        max_bytes=int(fcfg.max_memory_gb * 2**30),
        chunk=fcfg.chunk,
        grad_row_bytes=row,
        model_bytes=model_bytes(model),
        power=power,
    )
    relative = fcfg.get("damping_mode", "absolute") == "relative"
    if relative and fcfg.update != "accumulate":
        raise ValueError(
            "fisher.damping_mode: relative sets lambda from the accumulated Fisher before inverting "
            f"it: it needs fisher.update: accumulate (got {fcfg.update})"
        )
    fisher = EmpiricalFisherInverse(
        dim, fcfg.block_size, fcfg.damping, fcfg.num_grads, dtype=dtype, devices=devices
    )
    fisher.layout = layout_record(devices, dtype, chunk, plan, fcfg.chunk)
    _log_layout(fisher.layout)
    add = {
        "accumulate": fisher.accumulate,
        "batched": fisher.update_batch,
        "rank1": lambda g: [fisher.update(r) for r in g],
    }[fcfg.update]
    chunks = per_sample.stream(model, batches, fcfg.num_grads, chunk, pad_id, device, method=fcfg.grads)
    for grads in progress(chunks, total=math.ceil(fcfg.num_grads / chunk), desc=desc, every_s=30):
        add(grads)
        del grads
    if relative:
        fisher.set_damping(relative_damping(fisher.diag_mean(), fcfg.kappa, fcfg.damping))
    fisher.finalize()  # the inversion counts in the Fisher step's time
    return fisher


def relative_damping(diag_mean: float, kappa: float, fallback: float) -> float:
    """lambda = kappa * mean(diag F_hat): damping on the Fisher's own scale, so that lambda neither swamps the
    curvature (F^-1 ~ I/lambda) nor vanishes under it whatever the model's gradient scale. A Fisher of zero
    gradients has no scale: the absolute fisher.damping then."""
    return kappa * diag_mean if diag_mean > 0 else fallback


_logged_layout: dict | None = None


def _log_layout(layout: dict) -> None:
    """Print the chosen layout once per job (F^-1 is rebuilt per forget batch: one line, not hundreds), and
    again only if a later rebuild chose another (free memory changed)."""
    global _logged_layout
    if layout != _logged_layout:
        print(layout_line(layout), flush=True)
        _logged_layout = layout


class NewtonMethod(Method):
    """Alg. 2/3 skeleton: for each forget batch, (re)build F^-1 from D+ and apply `step`."""

    sections = ("fisher",)
    powers = False  # uses F^-1 powers (an eigendecomposition cached beside F^-1: counted in the memory plan)

    def step(
        self, ctx, model, fisher: EmpiricalFisherInverse, forget_batch, generator
    ) -> tuple[torch.Tensor, dict]:
        """(the parameter update, its curvature premise: metrics.curvature)."""
        raise NotImplementedError

    def rebuild_premise(self, fisher: EmpiricalFisherInverse) -> dict:
        """Premise numbers of a new F^-1 itself (not of a step): its damping and scale, and a method's own."""
        return {"damping": fisher.damping, "diag_mean": fisher.diag_mean()}

    def unlearn(self, ctx, model, forget, retain, cycle):
        fcfg = ctx.cfg.fisher
        batches = retain_stream(retain, fcfg.grad_batch_size, ctx.seed * 1000 + cycle)
        generator = torch.Generator(device="cpu").manual_seed(ctx.seed * 1000 + cycle)
        forget_batches = [
            [forget[i] for i in idx]
            for idx in batch_order(len(forget), ctx.cfg.unlearn.forget_batch_size, ctx.seed, cycle)
        ]
        t0, fisher_time, deviations, update_norms = time.perf_counter(), 0.0, [], []  # norms: one per batch
        premises, steps = [], []  # per rebuild and step; per step
        fisher, layouts, width = None, [], max(len(per_sample._ids(s)) for s in retain)
        for b, batch in enumerate(forget_batches):
            if fisher is None or fcfg.rebuild == "per_batch":
                t1 = time.perf_counter()
                fisher = None  # the previous F^-1 is freed before the next is allocated (not two at the peak)
                fisher = estimate_inverse_fisher(
                    model,
                    batches,
                    fcfg,
                    ctx.pad_id,
                    ctx.device,
                    desc=f"{self.name} cycle {cycle} batch {b + 1}/{len(forget_batches)}",
                    width=width,
                    power=self.powers,
                )
                fisher_time += time.perf_counter() - t1
                deviations.append(fisher.deviation_from_prior(_layer_segments(model)))
                layouts.append(fisher.layout)
                premises.append(self.rebuild_premise(fisher))
            delta, premise = self.step(ctx, model, fisher, batch, generator)
            premises.append(premise)
            steps.append(premise)
            if not torch.isfinite(delta).all():
                return model, {
                    "diverged": True,
                    "wall_time_s": time.perf_counter() - t0,
                    "diverged_reason": f"non-finite Newton update in forget batch {b + 1}",
                    "fisher_layout": _largest(layouts),
                    "curvature": mean_premise(premises),
                }
            add_to_params(model, delta)
            update_norms.append(float(delta.norm()))
        return model, {
            "wall_time_s": time.perf_counter() - t0,
            "fisher_time_s": fisher_time,
            "fisher_rebuilds": len(deviations),
            "forget_batches": len(forget_batches),
            "fisher_deviation": _mean_dicts(deviations),
            "update_norm_mean": sum(update_norms) / len(update_norms),
            "curvature": mean_premise(premises),
            "curvature_steps": _per_step(steps),
            "fisher_layout": _largest(layouts),
            "diverged": False,
        }


def _layer_segments(model) -> dict[str, tuple[int, int]]:
    """Group parameter tensors by layer (e.g. transformer.h.0) for the ||F^-1 - I/lambda|| diagnostic."""
    groups: dict[str, tuple[int, int]] = {}
    for name, (off, n) in segments(model).items():
        parts = name.split(".")
        key = ".".join(
            parts[: parts.index("h") + 2]
            if "h" in parts
            else parts[: parts.index("layers") + 2]
            if "layers" in parts
            else parts[:-1]
        )
        lo, length = groups.get(key, (off, 0))
        groups[key] = (min(lo, off), off + n - min(lo, off))
    return groups


def _largest(layouts: list[dict]) -> dict:
    """The cycle's layout with the highest planned peak (rebuilds normally all choose the same one)."""
    return max(layouts, key=lambda x: x["planned_peak_gib"]) if layouts else {}


def _per_step(steps: list[dict]) -> dict[str, list[float]]:
    """The step premises as one series per number (MLflow step metrics)."""
    return {k: [p.get(k, math.nan) for p in steps] for k in (steps[0] if steps else {})}


def _mean_dicts(ds: list[dict]) -> dict:
    return {k: sum(d[k] for d in ds) / len(ds) for k in ds[0]} if ds else {}

"""Memory plan of a full-parameter training job (SOUL's unlearning with Sophia or AdamW, TOFU's fine-tuning),
counted in bytes before anything is allocated, so a 7B job that cannot fit stops at its start with the
settings that would fit, not with a CUDA out-of-memory error an hour in.

Per device, at the peak of a step (the backward pass):
    weights      n_params x dtype bytes          (the model trains in its own dtype: bf16 states at bf16)
    gradients    n_params x dtype bytes
    states       n_params x dtype bytes x k      (k = 2 for Sophia: momentum m and curvature EMA h;
                                                  2 for AdamW: exp_avg, exp_avg_sq; 0 for SGD)
    reference    n_params x dtype bytes          (NPO's frozen copy of the model; 0 otherwise)
    activations  an estimate: Korthikanti et al. (2022, "Reducing activation recomputation", Eq. 2) per layer
                 s b h (34 + 5 a s / h) bytes at 16 bits (x2 at 32 bits), plus the logits and their float32
                 loss copies, b s V (dtype + 8) bytes, for every sequence of the step (forget + retain batch:
                 their losses are summed before one backward)
`gpus` > 1 divides weights, gradients, states and the reference as a fully sharded job would (FSDP / ZeRO-3);
activations stay per device. This pipeline's training loop runs on one device, so its jobs plan with
gpus=1; `gpus_needed` says how many devices the sharded layout would take.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZER_STATES = {"sophia": 2, "adamw": 2, "sgd": 0, None: 0}  # d-sized tensors per parameter
MAX_GPUS = 64


class TrainingMemoryError(MemoryError):
    """The job would not fit its device: raised before loading, naming the numbers and what would fit."""


@dataclass(frozen=True)
class Shape:
    """What the activation estimate needs of a causal LM's config (hidden size h, heads a,
    layers, vocab V)."""

    n_params: int
    hidden: int
    heads: int
    layers: int
    vocab: int

    @classmethod
    def of_config(cls, config, n_params: int) -> Shape:
        def get(*names):
            return next(getattr(config, n) for n in names if getattr(config, n, None) is not None)

        return cls(
            n_params,
            get("hidden_size", "n_embd"),
            get("num_attention_heads", "num_heads", "n_head"),
            get("num_hidden_layers", "num_layers", "n_layer"),
            get("vocab_size"),
        )


@dataclass(frozen=True)
class Plan:
    """Bytes per device of one training step's peak, by part."""

    weights: int
    gradients: int
    states: int
    reference: int
    activations: int
    gpus: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.states + self.reference + self.activations

    def describe(self) -> str:
        parts = ("weights", "gradients", "states", "reference", "activations")
        return (
            f"{size(self.total)} per device on {self.gpus} GPU(s) ("
            + ", ".join(f"{p} {size(getattr(self, p))}" for p in parts if getattr(self, p))
            + ")"
        )


def size(n: int) -> str:
    """Bytes as GiB (MiB below 0.1 GiB: the CPU rehearsal's models)."""
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"


def activation_bytes(shape: Shape, sequences: int, seq_len: int, dtype: str) -> int:
    """Activations kept for the backward pass of `sequences` sequences of `seq_len` tokens (an estimate)."""
    width = DTYPE_BYTES[dtype]
    s, h, a = seq_len, shape.hidden, shape.heads
    per_layer = s * sequences * h * (34 + 5 * a * s // h) * width // 2
    logits = sequences * s * shape.vocab * (width + 8)
    return shape.layers * per_layer + logits


def training_plan(
    shape: Shape,
    *,
    dtype: str,
    optimizer: str | None,
    sequences: int,
    seq_len: int,
    reference: bool = False,
    gpus: int = 1,
) -> Plan:
    """The peak bytes per device of one training step; optimizer None: inference only (no gradients, no
    states, activations of one forward's logits)."""
    if dtype not in DTYPE_BYTES or optimizer not in OPTIMIZER_STATES or gpus < 1:
        raise ValueError(
            f"memory plan: dtype must be one of {list(DTYPE_BYTES)}, optimizer one of "
            f"{[o for o in OPTIMIZER_STATES if o]} or None, gpus >= 1; "
            f"got {dtype!r}, {optimizer!r}, {gpus}"
        )
    d = shape.n_params * DTYPE_BYTES[dtype]

    def shard(n):
        return -(-n // gpus)

    if optimizer is None:
        acts = sequences * seq_len * shape.vocab * (DTYPE_BYTES[dtype] + 8)
        return Plan(shard(d), 0, 0, shard(d) if reference else 0, acts, gpus)
    return Plan(
        shard(d),
        shard(d),
        shard(d * OPTIMIZER_STATES[optimizer]),
        shard(d) if reference else 0,
        activation_bytes(shape, sequences, seq_len, dtype),
        gpus,
    )


def gpus_needed(budget_bytes: int, **plan_args) -> int | None:
    """The fewest devices of `budget_bytes` each on which the sharded plan fits; None if even MAX_GPUS do not
    (the activations alone exceed a device)."""
    for gpus in range(1, MAX_GPUS + 1):
        if training_plan(gpus=gpus, **plan_args).total <= budget_bytes:
            return gpus
    return None


def largest_batch(budget_bytes: int, batch_size: int, batches: int = 1, **plan_args) -> int:
    """The largest batch size <= `batch_size` (`batches` batches per step, e.g. forget + retain) whose
    one-device plan fits; 0 if none."""
    return next(
        (
            b
            for b in range(batch_size, 0, -1)
            if training_plan(sequences=b * batches, **plan_args).total <= budget_bytes
        ),
        0,
    )


def check_fits(
    budget_bytes: int, *, what: str, batch_key: str, batch_size: int, batches: int = 1, **plan_args
) -> Plan:
    """The one-device plan of a step over `batches` batches of `batch_size` sequences, or TrainingMemoryError
    naming what fits: a smaller batch (`batch_key`: the params key that sets it), bf16, or the devices a
    sharded job would need."""
    step = dict(plan_args, sequences=batch_size * batches)
    plan = training_plan(gpus=1, **step)
    if plan.total <= budget_bytes:
        return plan
    hints = []
    if (b := largest_batch(budget_bytes, batch_size, batches, **plan_args)) > 0:
        hints.append(f"{batch_key}: {b}")
    if step["dtype"] == "float32" and training_plan(**{**step, "dtype": "bfloat16"}).total <= budget_bytes:
        hints.append("dtype bfloat16")
    if (g := gpus_needed(budget_bytes, **step)) is not None and g > 1:
        hints.append(
            f"{g} such GPUs with sharded weights and states (FSDP / ZeRO-3, which this pipeline's "
            "single-device training loop does not do)"
        )
    hints.append(f"a device with {size(plan.total)} free")
    raise TrainingMemoryError(
        f"{what}: needs {plan.describe()}, more than the {size(budget_bytes)} available; "
        f"what fits: {'; or '.join(hints)}"
    )


def n_params_of(config) -> int:
    """The parameter count of a Hugging Face causal LM config, built on the meta device (no memory)."""
    import transformers  # here, not at the top: the DAG build imports this module (via the method registry)

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())

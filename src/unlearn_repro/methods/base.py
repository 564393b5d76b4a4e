"""What every unlearning method declares (name, label, params, what a study must give it) and gets
(Context) and provides (Method.prepare, Method.unlearn). The declaration is the one place a method's name is
branched on: the Snakemake rerun triggers, the DVC stage params, MLflow params, run.json, report labels, the
schema's method lists and each study's choice of the values it passes (Method.study_config) all read it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_repro.frozen import overlay
from unlearn_repro.models import checkpoint
from unlearn_repro.registry import Registry


@dataclass
class Context:
    cfg: object  # the resolved params (unlearn_repro.frozen.Frozen)
    device: object
    pad_id: int
    seed: int
    pretrained_path: Path  # the model before fine-tuning on D (what retraining starts from)
    work_dir: Path  # scratch space for resume state
    tokenizer: object = None  # for methods that build text (PO's refusal answers)
    hooks: Sequence = field(default_factory=tuple)  # train.Hook objects a study adds (early stopping, ...)
    wrappers: Sequence = field(
        default_factory=tuple
    )  # a study's fn(ctx, model, forget, retain, cycle) -> model


class Method:
    """A registered unlearning method.

    name       the key in `methods.enabled` and of its params block `methods.<name>`
    label      how tables and figures name it
    sections   other params sections its runs depend on (e.g. `fisher`); `unlearn` always counts
    schema     JSON Schema of its params block (config validation merges it into params.schema.yaml)

    What a study asks of it (so that no study branches on its name):
    loss_based       it trains with the shared loop (train.train) over the forget set, with the recipe of its
                     block (optimizer, lr, epochs, weight_decay) and a study's hooks: the studies that set
                     such a recipe (TOFU, TDEC) can run it, and their schema lists name exactly these methods
    step_key         the key(s) of its block that a study's step size sets (TOFU's / TDEC's learning rate, the
                     privacy grid's default, the cross-paper benchmark's grid): a key, a tuple of keys all
                     set together (Fisher Forgetting's mu and sigma), or None: it has none
    needs_retain     it draws D+ batches weighed by its block's `gamma` (a study sets its retain weight there)
    needs_reference  it compares with a frozen reference model at inverse temperature `beta` (of its block)
    base_epochs_key  the key of its block a study that trains its own base model sets to that training's
                     epochs (retraining repeats the base model's training); None: none
    """

    name = "method"
    label = "Method"
    sections: tuple[str, ...] = ()
    schema: dict = {"type": "object", "additionalProperties": False, "properties": {}}
    loss_based = False
    step_key: str | tuple[str, ...] | None = None
    needs_retain = False
    needs_reference = False
    base_epochs_key: str | None = None

    @property
    def step_keys(self) -> tuple[str, ...]:
        """Every key its step size sets (none without a step_key)."""
        if self.step_key is None:
            return ()
        return (self.step_key,) if isinstance(self.step_key, str) else tuple(self.step_key)

    def prepare(self, ctx: Context, model, forget, retain, cycle: int):
        """The one point between loading a model and unlearning a cycle where the model may be wrapped
        (LoRA adapters, a private-training wrapper): a study's `ctx.wrappers`, then the method's own. Called
        at the start of every cycle on a plain model; after the cycle unlearn_cycle merges the wrapper back
        (models.checkpoint.unwrap), so a resumed run and an uninterrupted one see the same models."""
        for wrap in ctx.wrappers:
            model = wrap(ctx, model, forget, retain, cycle)
        return model

    def unlearn(
        self,
        ctx: Context,
        model,
        forget: Sequence[Sequence[int]],
        retain: Sequence[Sequence[int]],
        cycle: int,
    ):
        """Remove `forget` (this cycle's D-) from `model`, knowing `retain` (D+ after this cycle);
        return (model, stats). May return a different model object."""
        raise NotImplementedError

    def unlearn_cycle(
        self,
        ctx: Context,
        model,
        forget,
        retain,
        cycle: int,
        *,
        on_prepared: Callable | None = None,
        on_unlearned: Callable | None = None,
    ):
        """prepare -> unlearn -> merge, the one way every study runs a cycle: returns (plain model, stats).
        `on_prepared(model)` sees the wrapped model before unlearning (TDEC: its trainable share),
        `on_unlearned(model)` the unlearned one before its adapters merge (TDEC scores it as trained)."""
        model = self.prepare(ctx, model, forget, retain, cycle)  # where a study or method wraps it (LoRA)
        if on_prepared is not None:
            on_prepared(model)
        model, stats = self.unlearn(ctx, model, forget, retain, cycle)
        if on_unlearned is not None:
            on_unlearned(model)
        return checkpoint.unwrap(model), stats  # merged: the next cycle (and a resumed run) starts plain

    def study_block(
        self, cfg, values: Mapping = (), *, step=None, retain_weight=None, reference_beta=None
    ) -> dict:
        """Its params block as a study runs it: the study's `values` of its keys (optimizer, epochs, ...),
        `step` on its step_key, `retain_weight` on gamma only if it needs retain batches and
        `reference_beta` on beta only if it needs a reference model (None: its own value stays)."""
        block = {**_plain(self.hp(cfg)), **dict(values)}
        if step is not None:
            if not self.step_keys:
                raise ValueError(f"method {self.name!r} declares no step_key: a study cannot set its step")
            block.update({k: step for k in self.step_keys})
        if self.needs_retain and retain_weight is not None:
            block["gamma"] = retain_weight
        if self.needs_reference and reference_beta is not None:
            block["beta"] = reference_beta
        return block

    def study_config(self, cfg, block: Mapping | None = None, **sections):
        """The params this method runs with in a study: `block` (see study_block) as its params block and
        the study's other `sections` (unlearn, data, optimizers, ...) merged over cfg."""
        over = dict(sections)
        if block is not None:
            over["methods"] = {**over.get("methods", {}), self.name: dict(block)}
        return overlay(cfg, over)

    def grid_config(self, cfg, values: Mapping):
        """The params of one point of a study's step grid over the main study's setting (the ablations',
        the privacy study's, the cross-paper benchmark's): `values` over its block, unlearning stopped after
        cycle 1."""
        return self.study_config(
            cfg, self.study_block(cfg, values), unlearn={"table_cycles": [1], "extended_datasets": []}
        )

    def hp(self, cfg):
        """This method's own params block (`methods.<name>`)."""
        return cfg.methods[self.name] if self.name in cfg.methods else {}

    def params_sections(self) -> tuple[str, ...]:
        """The params paths this method's runs depend on."""
        return (f"methods.{self.name}", "unlearn", *self.sections)

    def params(self, cfg) -> dict:
        """Every value that defines this method's runs, by params path (logged, and a rerun trigger)."""
        return {
            s: _plain(self.hp(cfg) if s.startswith("methods.") else cfg[s]) for s in self.params_sections()
        }


def _plain(v):
    return v.to_dict() if hasattr(v, "to_dict") else dict(v)


def loss_based_names() -> list[str]:
    """The registered methods the loss-based studies (TOFU, TDEC) can run (their schema lists)."""
    return [n for n in METHODS.names() if METHODS.get(n).loss_based]


METHODS: Registry[Method] = Registry("unlearning method")


def register(cls):
    METHODS.register(cls.name)(cls())
    return cls


def object_schema(optional=(), **properties) -> dict:
    """The JSON Schema of a params block: these keys, all required except `optional`, no others."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": [k for k in properties if k not in optional],
    }


POS_INT = {"type": "integer", "minimum": 1}
POS_NUM = {"type": "number", "exclusiveMinimum": 0}
NONNEG_NUM = {"type": "number", "minimum": 0}

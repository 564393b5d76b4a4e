"""What every unlearning method declares (name, label, params) and gets (Context) and provides
(Method.prepare, Method.unlearn). The declaration is the one place a method's name is branched on: the
Snakemake rerun triggers, the DVC stage params, MLflow params, run.json and report labels all read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from unlearn_repro.registry import Registry


@dataclass
class Context:
    cfg: object                 # the resolved params (unlearn_repro.config.Frozen)
    device: object
    pad_id: int
    seed: int
    pretrained_path: Path       # the model before fine-tuning on D (what retraining starts from)
    work_dir: Path              # scratch space for resume state
    tokenizer: object = None    # for methods that build text (PO's refusal answers)
    hooks: Sequence = field(default_factory=tuple)  # train.Hook objects a study adds (early stopping, ...)
    wrappers: Sequence = field(default_factory=tuple)  # a study's fn(ctx, model, forget, retain, cycle) -> model


class Method:
    """A registered unlearning method.

    name       the key in `methods.enabled` and of its params block `methods.<name>`
    label      how tables and figures name it
    sections   other params sections its runs depend on (e.g. `fisher`); `unlearn` always counts
    schema     JSON Schema of its params block (config validation merges it into params.schema.yaml)
    """
    name = "method"
    label = "Method"
    sections: tuple[str, ...] = ()
    schema: dict = {"type": "object", "additionalProperties": False, "properties": {}}

    def prepare(self, ctx: Context, model, forget, retain, cycle: int):
        """The one point between loading a model and unlearning a cycle where the model may be wrapped
        (LoRA adapters, a private-training wrapper): a study's `ctx.wrappers`, then the method's own. Called
        at the start of every cycle on a plain model; after the cycle the pipeline merges the wrapper back
        (models.checkpoint.unwrap), so a resumed run and an uninterrupted one see the same models."""
        for wrap in ctx.wrappers:
            model = wrap(ctx, model, forget, retain, cycle)
        return model

    def unlearn(self, ctx: Context, model, forget: Sequence[Sequence[int]], retain: Sequence[Sequence[int]],
                cycle: int):
        """Remove `forget` (this cycle's D-) from `model`, knowing `retain` (D+ after this cycle);
        return (model, stats). May return a different model object."""
        raise NotImplementedError

    def hp(self, cfg):
        """This method's own params block (`methods.<name>`)."""
        return cfg.methods[self.name] if self.name in cfg.methods else {}

    def params_sections(self) -> tuple[str, ...]:
        """The params paths this method's runs depend on."""
        return (f"methods.{self.name}", "unlearn", *self.sections)

    def params(self, cfg) -> dict:
        """Every value that defines this method's runs, by params path (logged, and a rerun trigger)."""
        return {s: _plain(self.hp(cfg) if s.startswith("methods.") else cfg[s]) for s in self.params_sections()}


def _plain(v):
    return v.to_dict() if hasattr(v, "to_dict") else dict(v)


METHODS: Registry[Method] = Registry("unlearning method")


def register(cls):
    METHODS.register(cls.name)(cls())
    return cls


def object_schema(optional=(), **properties) -> dict:
    """The JSON Schema of a params block: these keys, all required except `optional`, no others."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [k for k in properties if k not in optional]}


POS_INT = {"type": "integer", "minimum": 1}
POS_NUM = {"type": "number", "exclusiveMinimum": 0}
NONNEG_NUM = {"type": "number", "minimum": 0}

"""What every unlearning method gets (Context) and provides (Method.unlearn)."""
from __future__ import annotations

from dataclasses import dataclass
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


class Method:
    """unlearn(ctx, model, forget, retain, cycle) -> (model, stats): remove `forget` (this cycle's D-)
    from `model`, knowing `retain` (D+ after this cycle). May return a different model object."""
    name = "method"

    def unlearn(self, ctx: Context, model, forget: Sequence[Sequence[int]], retain: Sequence[Sequence[int]],
                cycle: int):
        raise NotImplementedError

    def params(self, cfg) -> dict:
        """The hyperparameters that define this method's runs (logged, and a Snakemake rerun trigger)."""
        return dict(cfg.methods[self.name]) if self.name in cfg.methods else {}


METHODS: Registry[Method] = Registry("unlearning method")


def register(cls):
    METHODS.register(cls.name)(cls())
    return cls

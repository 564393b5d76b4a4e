"""The cross-paper benchmark's matrix (issue 25): its entries (a method, its optimizer, its adapter), the
forget tasks each can run on (and why not, where it cannot), the step grid of every entry, and the point
files the DAG builds; pipeline/crossbench_points.py runs a point.

An entry's grid is its step size on the task (`centre`) times each of `crossbench.factors`: the same size
and span for every entry with a step size (docs/crossbench.md states the rule and why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unlearn_repro.config import ConfigError
from unlearn_repro.methods import METHODS
from unlearn_repro.pipeline import study_seeds

BENCHMARKS = ("tasks", "tofu", "tdec", "memorization")
NOT_LOSS_BASED = "{label} does not train with the shared loop over the forget set, which {task} runs"
WHY_NOT = {  # benchmark -> (test(entry, impl), reason); the first that matches says why a cell is empty
    "tofu": (
        (lambda e, impl: e.method == "retrain", "TOFU's retain model is the retraining reference"),
        (lambda e, impl: not impl.loss_based, NOT_LOSS_BASED.format(label="{label}", task="TOFU")),
    ),
    "tdec": (
        (
            lambda e, impl: e.method == "retrain",
            "TDEC's models saw the forget set in pretraining: no retrain",
        ),
        (lambda e, impl: not impl.loss_based, NOT_LOSS_BASED.format(label="{label}", task="TDEC")),
    ),
}


@dataclass(frozen=True)
class Entry:
    """A leaderboard row: `method` trained with `optimizer` (None: its block's own) through `adapter`."""

    name: str
    method: str
    optimizer: str | None = None
    adapter: str = "full"

    @property
    def style(self) -> str:
        """Its name in report/style.py's tables (one colour per entry in every figure)."""
        if self.adapter != "full":
            return f"{self.adapter}+{self.method}"
        return f"{self.optimizer}+{self.method}" if self.optimizer else self.method

    @property
    def label(self) -> str:
        base = METHODS.get(self.method).label
        if self.adapter != "full":
            base = f"{'FLoRA' if self.adapter == 'flora' else 'LoRA'} + {base}"
        return f"{base} (Sophia)" if self.optimizer == "sophia" else base

    @property
    def second_order(self) -> bool:
        """Curvature in the update: a Newton-type method (F^-1) or the Sophia optimizer."""
        from unlearn_repro.methods.newton import NewtonMethod

        return self.optimizer == "sophia" or isinstance(METHODS.get(self.method), NewtonMethod)


def entries(cfg) -> dict[str, Entry]:
    """The entries that run (crossbench.enabled, null: all), in the order of crossbench.entries."""
    x = cfg.crossbench
    return {n: Entry(n, **e.to_dict()) for n, e in x.entries.items() if x.enabled is None or n in x.enabled}


def seeds(cfg) -> list[int]:
    return study_seeds(cfg, "crossbench")


def why_not(cfg, benchmark: str, entry: Entry) -> str | None:
    """Why `entry` cannot run on `benchmark` (None: it can)."""
    impl = METHODS.get(entry.method)
    for test, reason in WHY_NOT.get(benchmark, ()):
        if test(entry, impl):
            return reason.format(label=impl.label)
    if entry.optimizer and not impl.loss_based:
        return f"{impl.label} takes no optimizer"
    if entry.adapter != "full" and not impl.loss_based:
        return f"{impl.label} does not train adapters"
    return None


def runnable(cfg, benchmark: str) -> list[str]:
    return [n for n, e in entries(cfg).items() if why_not(cfg, benchmark, e) is None]


def rerun_params(cfg, benchmark: str, entry: str) -> dict:
    """What a point job's numbers depend on besides its inputs (its rule's `params:`, a rerun trigger)."""
    e = entries(cfg)[entry]
    return {
        "grid": grid(cfg, benchmark, e),
        "method": METHODS.get(e.method).params(cfg),
        "entry": cfg.crossbench.entries[entry].to_dict(),
        "bound": cfg.crossbench.bounds.get(benchmark),
        "sophia": sophia_args(cfg) if e.optimizer == "sophia" else None,
    }


def settings(cfg, benchmark: str) -> list[dict]:
    """Where a benchmark runs: its (dataset, model) pairs, TOFU's model, TDEC's models, (corpus, model)."""
    x = cfg.crossbench
    if benchmark == "tasks":
        models = [m for m in (x.tasks.models or cfg.models) if m in cfg.models]
        return [{"dataset": d, "model": m} for d in x.tasks.datasets if d in cfg.data.tasks for m in models]
    if benchmark == "tofu":
        return [{"model": cfg.tofu.model}]
    if benchmark == "tdec":
        return [{"model": m} for m in cfg.tdec.models]
    mem = cfg.memorization
    models = [m for m in (mem.models or cfg.models) if m in (x.memorization.models or cfg.models)]
    return [{"dataset": c, "model": m} for c in x.memorization.corpora if c in mem.corpora for m in models]


def check(cfg) -> None:
    """The block against the rest (at DAG build): seeds, entries' methods and optimizers."""
    seeds(cfg)
    unknown = [n for n in cfg.crossbench.enabled or () if n not in cfg.crossbench.entries]
    if unknown:
        raise ConfigError(
            f"params.yaml: crossbench.enabled {unknown} are not in crossbench.entries "
            f"({', '.join(cfg.crossbench.entries)})"
        )
    for name, e in entries(cfg).items():
        if e.method not in METHODS.names():
            raise ConfigError(
                f"params.yaml: crossbench.entries.{name}.method {e.method!r} is not a method "
                f"({', '.join(METHODS.names())})"
            )
        if e.optimizer and e.optimizer not in cfg.optimizers:
            raise ConfigError(
                f"params.yaml: crossbench.entries.{name}.optimizer {e.optimizer!r} has no block in optimizers"
            )


def replicates(cfg, benchmark: str) -> list[int]:
    """A task's seeds: crossbench's (tasks, TOFU), TDEC's forget sets, the memorization study's seeds."""
    if benchmark == "tdec":
        return list(range(cfg.tdec.forget_sets))
    if benchmark == "memorization":
        return list(cfg.memorization.seeds)
    return seeds(cfg)


def point_file(root, benchmark: str, where: dict, entry: str, seed: int) -> str:
    """Where a point job writes (rules/crossbench.smk's outputs)."""
    setting = "/".join(where[k] for k in ("dataset", "model") if k in where and benchmark != "tofu")
    return str(Path(root) / "points" / benchmark / setting / entry / f"seed{seed}.json").replace("//", "/")


def point_files(cfg, root) -> list[str]:
    """Every point job's output: each runnable entry x setting x replicate of each task."""
    return [
        point_file(root, b, where, e, s)
        for b in BENCHMARKS
        for where in settings(cfg, b)
        for e in runnable(cfg, b)
        for s in replicates(cfg, b)
    ]


# -- the grid --------------------------------------------------------------------------------------------


def centre(cfg, benchmark: str, entry: Entry) -> dict:
    """The entry's step on a task: the task's study's own value for this method (TOFU: tofu.lr for its
    optimizer kind; TDEC: the lr of tdec.configs' first configuration with this method and adapter, else
    with this adapter), else the method's params block (the main study's, the memorization study's). Off
    TDEC, the only study that tunes adapters, an adapter entry's step is scaled by `adapter_scale`."""
    impl = METHODS.get(entry.method)
    keys = impl.step_keys
    if not keys:
        return {}
    if benchmark == "tdec":
        same = _tdec_configs(cfg, entry.method, entry.adapter)
        if same:
            return {"lr": float(same[0].lr)}
    scale = adapter_scale(cfg, entry)
    if benchmark == "tofu":
        kind = "SO" if entry.optimizer == "sophia" else "FO"
        lr = cfg.tofu.lr.get(entry.method, {}).get(kind)
        if lr is not None:
            return {"lr": float(lr) * scale}
    block = impl.hp(cfg)
    return {k: float(block[k]) * scale for k in keys}


def _tdec_configs(cfg, method: str, adapter: str) -> list:
    """tdec.configs with this method and adapter, else with this adapter."""
    configs = list(cfg.tdec.configs.values())
    same = [c for c in configs if c.adapter == adapter and c.method == method]
    return same or [c for c in configs if c.adapter == adapter]


def adapter_scale(cfg, entry: Entry) -> float:
    """How much larger a step the FLoRA paper gives an adapter than full fine-tuning (tdec.configs, the
    paper's Table 1 lrs: 2e-4 for LoRA / FLoRA over 5e-5 for full, 4x), for the tasks whose study trains no
    adapters; 1 for a full-parameter entry, or where tdec.configs has no pair to take the ratio from."""
    if entry.adapter == "full":
        return 1.0
    mine = _tdec_configs(cfg, entry.method, entry.adapter)
    full = _tdec_configs(cfg, mine[0].method, "full") if mine else []  # one method's pair where there is one
    return float(mine[0].lr) / float(full[0].lr) if mine and full else 1.0


def grid(cfg, benchmark: str, entry: Entry) -> list[dict]:
    """[{factor, values}]: the centre times each factor; one point (factor 1) for a method without a step."""
    c = centre(cfg, benchmark, entry)
    if not c:
        return [{"factor": 1.0, "values": {}}]
    return [{"factor": float(f), "values": {k: v * f for k, v in c.items()}} for f in cfg.crossbench.factors]


def entry_values(entry: Entry, values: dict) -> dict:
    """What one grid point sets in the method's params block: its step, and the entry's optimizer."""
    return {**values, **({"optimizer": entry.optimizer} if entry.optimizer else {})}


def sophia_args(cfg) -> dict:
    """The TOFU study's re-pick of Sophia's arguments (tofu.sophia), which every Sophia entry runs with."""
    args = cfg.tofu.get("sophia", {})
    return args.to_dict() if hasattr(args, "to_dict") else dict(args)

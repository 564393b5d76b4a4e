"""The cross-paper benchmark's jobs (issue 25): every entry (a method, its optimizer, its adapter) at every
factor of one step grid on each forget task, run and scored by that task's own study code; nothing here
computes a method or a metric itself.

* tasks         the main study's setting: cycle 1 of pipeline.unlearning.run, scored by
                pipeline.evaluation.evaluate_run (efficacy -Delta exp in bits, utility loss Delta test NLL)
* tofu          pipeline.tofu.tofu_unlearn, lean (efficacy forget quality, utility loss the base model's
                model utility minus the run's)
* tdec          pipeline.tdec.run on one forget set (efficacy the drop of the forget set's MA in points,
                utility loss ln(PPL / PPL before) of the validation rows, nats per token)
* memorization  pipeline.memorization.unlearn_extraction (efficacy the share of the base model's memorized
                targets no longer extracted; §6 measures no utility)

An entry's grid is its step size on the task (`centre`) times each of `crossbench.factors`: the same size
and span for every entry with a step size (docs/crossbench.md states the rule and why).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from unlearn_repro.config import ConfigError
from unlearn_repro.frozen import overlay
from unlearn_repro.io import read_json, write_json
from unlearn_repro.methods import METHODS
from unlearn_repro.pipeline import study_seeds
from unlearn_repro.tracking import NullTracker

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
    with this adapter), else the method's params block (the main study's, the memorization study's)."""
    impl = METHODS.get(entry.method)
    keys = impl.step_keys
    if not keys:
        return {}
    if benchmark == "tofu":
        kind = "SO" if entry.optimizer == "sophia" else "FO"
        lr = cfg.tofu.lr.get(entry.method, {}).get(kind)
        if lr is not None:
            return {"lr": float(lr)}
    if benchmark == "tdec":
        configs = list(cfg.tdec.configs.values())
        same = [c for c in configs if c.adapter == entry.adapter and c.method == entry.method]
        same = same or [c for c in configs if c.adapter == entry.adapter]
        if same:
            return {"lr": float(same[0].lr)}
    block = impl.hp(cfg)
    return {k: float(block[k]) for k in keys}


def grid(cfg, benchmark: str, entry: Entry) -> list[dict]:
    """[{factor, values}]: the centre times each factor; one point (factor 1) for a method without a step."""
    c = centre(cfg, benchmark, entry)
    if not c:
        return [{"factor": 1.0, "values": {}}]
    return [{"factor": float(f), "values": {k: v * f for k, v in c.items()}} for f in cfg.crossbench.factors]


def entry_values(entry: Entry, values: dict) -> dict:
    """What one grid point sets in the method's params block: its step, and the entry's optimizer."""
    return {**values, **({"optimizer": entry.optimizer} if entry.optimizer else {})}


# -- what every point shares -----------------------------------------------------------------------------


def sophia_feed(entry: Entry, seed: int):
    """(hooks, wrappers) that feed a Sophia entry's curvature estimate from each cycle's forget set, as the
    TOFU study's CurvatureHook does (a study that does not run Sophia has no such hook); none otherwise."""
    if entry.optimizer != "sophia":
        return (), ()
    from unlearn_repro.objectives import RetainSampler
    from unlearn_repro.optim.sophia import CurvatureHook

    hook = CurvatureHook((), 1, 0, "cpu", seed)

    def feed(ctx, model, forget, retain, cycle):
        hook.sampler = RetainSampler(
            list(forget), ctx.cfg.unlearn.forget_batch_size, ctx.seed, ctx.pad_id, ctx.device
        )
        return model

    return (hook,), (feed,)


def adapter_wrappers(cfg, entry: Entry) -> tuple:
    """A LoRA / FLoRA entry's wrapper, with TDEC's adapter settings (tdec.lora: the FLoRA paper's)."""
    if entry.adapter == "full":
        return ()
    from unlearn_repro.lora.adapters import lora_wrapper

    lo = cfg.tdec.lora
    return (
        lora_wrapper(
            entry.adapter, list(lo.targets), lo.rank, lo.alpha, lo.fisher_eps, lo.fisher_retain_rows
        ),
    )


def clip_rate(hooks) -> float | None:
    rates = [r for h in hooks for r in h.clip_rates]
    return sum(rates) / len(rates) if rates else None


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _log_point(tracker, benchmark: str, entry: Entry, where: dict, seed: int, point: dict) -> None:
    """One MLflow child run per entry x grid point x seed (the report's parent run adopts it)."""
    who = {"benchmark": benchmark, "entry": entry.name, "method": entry.method, **where, "seed": str(seed)}
    metrics = {k: v for k, v in point.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tracker.log_run(
        f"crossbench/{benchmark}/{entry.name}/{'/'.join(where.values())}/seed{seed}/x{point['factor']:g}",
        {"values": point["values"], "optimizer": entry.optimizer or "", "adapter": entry.adapter},
        {k: v for k, v in metrics.items() if math.isfinite(v)},
        {"stage": "crossbench_point", "study": "crossbench", **who, "factor": f"{point['factor']:g}"},
    )


def points(cfg, benchmark: str, entry_name: str, where: dict, seed: int, inputs: dict, out, tracker) -> dict:
    """Every grid point of one entry on one task setting and seed: run, scored, recorded (out: JSON)."""
    entry = entries(cfg)[entry_name]
    reason = why_not(cfg, benchmark, entry)
    if reason:
        raise ValueError(f"crossbench: {entry_name} cannot run on {benchmark}: {reason}")
    if entry.optimizer == "sophia":  # one Sophia on every task: the TOFU study's (its regime rule's rho)
        cfg = overlay(cfg, {"optimizers": {"sophia": sophia_args(cfg)}})
    work, rows = Path(str(out) + ".work"), []
    for p in grid(cfg, benchmark, entry):
        start = time.perf_counter()
        row = POINT[benchmark](cfg, entry, p["values"], where, seed, inputs, work / f"x{p['factor']:g}")
        row = {**p, **row, "wall_s": time.perf_counter() - start}
        rows.append(row)
        _log_point(tracker, benchmark, entry, where, seed, row)
        print(
            f"[crossbench] {benchmark} {entry_name} {' '.join(where.values())} seed {seed} x{p['factor']:g}: "
            f"efficacy {_f(row['efficacy'])}, utility loss {_f(row['utility_loss'])}",
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": benchmark,
        "entry": entry_name,
        "method": entry.method,
        "optimizer": entry.optimizer,
        "adapter": entry.adapter,
        **where,
        "seed": seed,
        "points": rows,
    }
    write_json(out, result)
    return result


def sophia_args(cfg) -> dict:
    """The TOFU study's re-pick of Sophia's arguments (tofu.sophia), which every Sophia entry runs with."""
    args = cfg.tofu.get("sophia", {})
    return args.to_dict() if hasattr(args, "to_dict") else dict(args)


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# -- one point per benchmark -----------------------------------------------------------------------------


def _tasks(cfg, entry, values, where, seed, inputs, work) -> dict:
    from unlearn_repro.pipeline.evaluation import evaluate_run
    from unlearn_repro.pipeline.unlearning import run

    run_cfg = METHODS.get(entry.method).grid_config(cfg, entry_values(entry, values))
    hooks, feed = sophia_feed(entry, seed)
    run(
        run_cfg,
        dataset=where["dataset"],
        model_name=where["model"],
        method=entry.method,
        seed=seed,
        finetuned=inputs["finetuned"],
        pretrained=inputs["pretrained"],
        data_dir=inputs["data"],
        split_file=inputs["split"],
        out_dir=work,
        tracker=NullTracker(),
        hooks=hooks,
        wrappers=(*feed, *adapter_wrappers(cfg, entry)),
    )
    ev = evaluate_run(
        run_cfg, work, inputs["base"], inputs["data"], inputs["reference"], inputs["split"],
        work / "metrics.json", NullTracker(),
    )  # fmt: skip
    row = ev["cycles"][0]
    dexp = _num(row.get("delta_exp"))
    return {
        "efficacy": None if dexp is None else -dexp,
        "utility_loss": _num(row.get("delta_test_nll")),
        "delta_acc": _num(row.get("delta_acc")),
        "retain_accuracy": _num(row.get("retain_accuracy")),
        "diverged": bool(row.get("diverged")),
        "runtime_s": row.get("runtime_s"),
        "premise": row.get("curvature") or _sophia_premise(hooks),
    }


def _sophia_premise(hooks) -> dict | None:
    rate = clip_rate(hooks)
    return None if rate is None else {"clip_rate": rate}


def _tofu(cfg, entry, values, where, seed, inputs, work) -> dict:
    from unlearn_repro.pipeline.tofu import tofu_unlearn

    kind = "SO" if entry.optimizer == "sophia" else "FO"
    optimizer = entry.optimizer or cfg.tofu.optimizers.FO  # as the TOFU study trains a first-order run
    run_cfg = overlay(
        cfg,
        {"tofu": {"optimizers": {kind: optimizer}, "lr": {entry.method: {kind: float(values["lr"])}}}},
    )
    work.mkdir(parents=True, exist_ok=True)
    summary = tofu_unlearn(
        run_cfg, entry.method, kind, seed, inputs["base"], inputs["retain"], work / "run.json",
        NullTracker(), curves=False, wrappers=adapter_wrappers(cfg, entry),
    )  # fmt: skip
    final = summary["final"]
    base_utility = _num(read_json(Path(inputs["base"]) / "meta.json")["metrics"].get("model_utility"))
    utility = _num(final.get("model_utility"))
    parts = {k: _num(v) for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {
        "efficacy": _num(final.get("forget_quality")),
        "utility_loss": None if utility is None or base_utility is None else base_utility - utility,
        **parts,  # model utility's parts and forget quality's: TOFU's final metrics, each split's
        "diverged": bool(summary["train_stats"].get("diverged")),
        "runtime_s": summary["runtime_s"],
        "premise": summary.get("curvature"),
    }


def _tdec(cfg, entry, values, where, seed, inputs, work) -> dict:
    """TDEC's forget sets are its seeds: `seed` is the set (tdec.run runs one configuration on each)."""
    from unlearn_repro.pipeline import tdec

    spec = {"method": entry.method, "adapter": entry.adapter, "lr": float(values["lr"])}
    run_cfg = overlay(
        cfg,
        {
            "tdec": {
                "configs": {entry.name: spec},
                "enabled": [entry.name],
                "ablation": {"configs": []},
                **({"optimizer": entry.optimizer} if entry.optimizer else {}),
            }
        },
    )
    hooks, feed = sophia_feed(entry, seed)
    summary = tdec.run(
        run_cfg, where["model"], entry.name, inputs["base"], inputs["tasks"], work / "run.json",
        NullTracker(), hooks=hooks, wrappers=feed, sets=[seed],
    )  # fmt: skip
    res = summary["sets"][0]
    premise = read_json(Path(inputs["base"]) / "meta.json")["premise"]
    base_ma, base_ppl = premise["forget_sets"][seed]["ma"], premise["ppl"]
    return {
        "efficacy": 100.0 * (base_ma - res["ma"]),
        "utility_loss": math.log(res["ppl"] / base_ppl),  # nats per token, as the tasks' Delta test NLL
        "forgotten": bool(res["forgotten"]),
        "epochs": res["epochs"],  # None: not forgotten within tdec.max_epochs
        "epochs_run": res["epochs_run"],
        "el": res["el"],
        "ma": res["ma"],
        "ppl": res["ppl"],
        "reasoning": res["reasoning"],
        "diverged": bool(res["diverged"]),
        "runtime_s": res["wall_time_s"],
        "premise": _sophia_premise(hooks),
    }


def _memorization(cfg, entry, values, where, seed, inputs, work) -> dict:
    from unlearn_repro.pipeline.memorization import unlearn_extraction

    impl = METHODS.get(entry.method)  # unlearn_extraction lays the memorization study's settings over it
    run_cfg = impl.study_config(cfg, impl.study_block(cfg, entry_values(entry, values)))
    hooks, feed = sophia_feed(entry, seed)
    res = unlearn_extraction(
        run_cfg, entry.method, where["dataset"], where["model"], seed, inputs["memorized"],
        inputs["pretrained"], inputs["data"], inputs["split"], work, NullTracker(),
        hooks=hooks, wrappers=(*feed, *adapter_wrappers(cfg, entry)),
    )  # fmt: skip
    base, run = read_json(inputs["base"]), read_json(Path(work) / "run.json")
    n = max(1, int(base["memorized"]))
    return {
        "efficacy": (base["memorized"] - res["memorized"]) / n,
        "utility_loss": None,  # §6 measures none
        "memorized": res["memorized"],
        "base_memorized": base["memorized"],
        "diverged": bool(res.get("diverged")),
        "runtime_s": res.get("runtime_s"),
        "premise": run["cycles"][0].get("curvature") or _sophia_premise(hooks),
    }


POINT = {"tasks": _tasks, "tofu": _tofu, "tdec": _tdec, "memorization": _memorization}

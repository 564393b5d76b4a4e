"""One job of the cross-paper benchmark (issue 25): every grid point of one entry on one forget task
setting and replicate, run and scored by that task's own study code; nothing here computes a method or a
metric itself.

* tasks         the main study's setting: cycle 1 of pipeline.unlearning.run, scored by
                pipeline.evaluation.evaluate_run (efficacy -Delta exp in bits, utility loss Delta test NLL)
* tofu          pipeline.tofu.tofu_unlearn, lean (efficacy forget quality, utility loss the base model's
                model utility minus the run's)
* tdec          pipeline.tdec.run on one forget set (efficacy the drop of the forget set's MA in points,
                utility loss ln(PPL / PPL before) of the validation rows, nats per token)
* memorization  pipeline.memorization.unlearn_extraction (efficacy the share of the base model's memorized
                targets no longer extracted; §6 measures no utility)

Each point also records its cost: the method's runtime, the point's wall time and its sample passes
(passes.py: sequences through a forward and backward of the model, the same count for every method).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from unlearn_repro.frozen import overlay
from unlearn_repro.io import read_json, write_json
from unlearn_repro.methods import METHODS
from unlearn_repro.passes import counting
from unlearn_repro.pipeline.crossbench import Entry, entries, entry_values, grid, sophia_args, why_not
from unlearn_repro.tracking import NullTracker


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
        with counting() as count:
            row = POINT[benchmark](cfg, entry, p["values"], where, seed, inputs, work / f"x{p['factor']:g}")
        row = {**p, **row, "wall_s": time.perf_counter() - start, "sample_passes": count.sample_passes}
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

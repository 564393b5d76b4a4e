"""The ablations' jobs (issue 21): grid points that are ordinary runs of the shared steps, with one method
or optimizer swapped and one step size set; nothing here computes a method or a metric itself.

* newton_points: a Newton-type variant at each grid value: cycle 1 of the main study's unlearning
  (pipeline.unlearning.run), scored by the main study's evaluation (pipeline.evaluation.evaluate_run against
  the same base evaluation), so Delta exp, Delta test NLL and retain accuracy are the main tables' numbers.
* sophia_points: one TOFU loss with one optimizer at each learning rate: the TOFU study's run
  (pipeline.tofu.tofu_unlearn, lean: TOFU's final metrics only) with its second-order slot
  (`tofu.optimizers.SO`) naming that optimizer.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from unlearn_repro.config import ConfigError
from unlearn_repro.frozen import overlay
from unlearn_repro.io import write_json
from unlearn_repro.methods import METHODS
from unlearn_repro.pipeline import study_seeds
from unlearn_repro.pipeline.main_points import is_main_point, main_cycle
from unlearn_repro.tracking import StudyTracker

SOPHIA_ARGS = ("betas", "rho", "eps")  # what sophia_constant shares with the study's Sophia


def seeds(cfg) -> list[int]:
    """ablations.seeds, or the main study's seeds (null)."""
    return study_seeds(cfg, "ablations")


def datasets(cfg) -> list[str]:
    """The study's tasks that this run prepares (ablations.datasets within data.tasks)."""
    return [d for d in cfg.ablations.datasets if d in cfg.data.tasks]


def check(cfg) -> None:
    """The block against the rest (at DAG build): seeds, grid keys of each method's block. A run whose
    data.tasks holds none of ablations.datasets has no Newton-type comparisons (only TOFU's)."""
    a = cfg.ablations
    seeds(cfg)  # a seed the main study does not run: ConfigError
    for name, comp in a.newton.items():
        for m in comp.methods:
            keys = set(METHODS.get(m).schema.get("properties", {}))
            if not set(comp["keys"]) <= keys:
                raise ConfigError(
                    f"params.yaml: ablations.newton.{name}.keys {list(comp['keys'])} are not keys "
                    f"of method {m!r} ({sorted(keys)})"
                )


def grid(comp, method: str) -> list[float]:
    """A comparison's grid for one method: its own `steps` where given (e.g. F^-1 = I/lambda, whose step
    gamma/lambda g is far longer than gamma F^-1 g at the same gamma), else the shared `values`."""
    steps = comp.get("steps") or {}
    return list(steps[method] if method in steps else comp["values"])


def study_tags(tags: dict) -> dict:
    """`study=ablations` and `ablations_stage` in place of `stage`: never counted as another study's run."""
    return {
        **{k: v for k, v in tags.items() if k != "stage"},
        "study": "ablations",
        "ablations_stage": tags.get("stage", ""),
    }


def newton_config(cfg, method: str, keys, value: float):
    """The config with the method's grid keys set to `value` and unlearning stopped after cycle 1."""
    return METHODS.get(method).grid_config(cfg, dict.fromkeys(keys, value))


NEWTON_KEYS = (
    "delta_exp",
    "delta_test_nll",
    "retain_accuracy",
    "delta_retain_acc",
    "delta_acc",
    "diverged",
    "runtime_s",
    "curvature",
)  # a point's values: its cycle-1 row of the main study's evaluation


def newton_points(
    cfg,
    *,
    comparison: str,
    method: str,
    dataset: str,
    model_name: str,
    seed: int,
    finetuned,
    pretrained,
    data_dir,
    reference,
    split_file,
    base_eval,
    out,
    tracker,
    main=None,
) -> dict:
    """Each grid value: cycle 1 unlearned and evaluated by the main study's steps; row and premise kept. The
    value that is the main study's own setting is read from its run `main` (pipeline/main_points.py)."""
    comp = cfg.ablations.newton[comparison]
    study = StudyTracker(tracker, "ablations", study_tags)
    work, points = Path(out).with_suffix(".work"), []
    main_row = main_cycle(main)
    inputs = dict(
        method=method,
        dataset=dataset,
        model_name=model_name,
        seed=seed,
        finetuned=finetuned,
        pretrained=pretrained,
        data_dir=data_dir,
        split_file=split_file,
    )  # what pipeline.unlearning.run takes besides the config
    for value in grid(comp, method):
        row = main_row if main_row and is_main_point(cfg, method, comp["keys"], value) else None
        if row is None:
            run_cfg = newton_config(cfg, method, comp["keys"], value)
            row = _evaluated_cycle1(run_cfg, work / f"{value:g}", base_eval, reference, study, **inputs)
        points.append({"value": float(value), **{k: row.get(k) for k in NEWTON_KEYS}})
        print(
            f"[ablations] {comparison} {method} {dataset} {model_name} seed {seed} {value:g}: "
            f"dexp {_f(row.get('delta_exp'))}, dNLL {_f(row.get('delta_test_nll'))}"
            + (" (the main study's run)" if row is main_row else ""),
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "comparison": comparison,
        "method": method,
        "dataset": dataset,
        "model": model_name,
        "seed": seed,
        "keys": list(comp["keys"]),
        "points": points,
    }
    write_json(out, result)
    return result


def _evaluated_cycle1(run_cfg, run_dir: Path, base_eval, reference, tracker, **inputs) -> dict:
    """Cycle 1 of the main study's unlearning under `run_cfg`, evaluated as the main study does: its row."""
    from unlearn_repro.pipeline.evaluation import evaluate_run
    from unlearn_repro.pipeline.unlearning import run

    run(run_cfg, out_dir=run_dir, tracker=tracker, **inputs)
    ev = evaluate_run(
        run_cfg,
        run_dir,
        base_eval,
        inputs["data_dir"],
        reference,
        inputs["split_file"],
        run_dir / "metrics.json",
        tracker,
    )
    shutil.rmtree(run_dir)
    return ev["cycles"][0]


def sophia_config(cfg, method: str, optimizer: str, lr: float):
    """The TOFU study's config with `optimizer` in its second-order slot at learning rate `lr`; a constant-h
    Sophia gets the study's Sophia momentum, rho and eps (only h differs)."""
    sophia = {**cfg.optimizers.get("sophia", {}), **cfg.tofu.get("sophia", {})}
    const = {k: sophia[k] for k in SOPHIA_ARGS if k in sophia}
    return overlay(
        cfg,
        {
            "tofu": {"optimizers": {"SO": optimizer}, "lr": {method: {"SO": float(lr)}}},
            "optimizers": {"sophia_constant": {**const, **cfg.optimizers.get("sophia_constant", {})}},
        },
    )


def sophia_points(cfg, *, method: str, optimizer: str, seed: int, base, retain, out, tracker) -> dict:
    """Each learning rate of the grid: the TOFU study's unlearning run and its final TOFU metrics (lean: no
    per-epoch curves, no SOUL columns)."""
    from unlearn_repro.pipeline.tofu import tofu_unlearn

    study = StudyTracker(tracker, "ablations", study_tags)
    work, points = Path(out).with_suffix(".work"), []
    work.mkdir(parents=True, exist_ok=True)
    for lr in cfg.ablations.sophia.lr:
        summary = tofu_unlearn(
            sophia_config(cfg, method, optimizer, lr),
            method,
            "SO",
            seed,
            base,
            retain,
            work / f"{lr:g}.json",
            study,
            curves=False,  # TOFU's final metrics only: all a point reads (docs/ablations.md)
        )
        final = summary["final"]
        points.append(
            {
                "value": float(lr),
                "diverged": bool(summary["train_stats"].get("diverged")),
                **{
                    k: final.get(k)
                    for k in ("forget_acc", "forget_quality", "forget_rouge", "model_utility", "retain_acc")
                },
                "curvature": summary.get("curvature"),
                "runtime_s": summary["runtime_s"],
            }
        )
        print(
            f"[ablations] sophia {method} {optimizer} seed {seed} lr {lr:g}: forget acc "
            f"{_f(final.get('forget_acc'))}, utility {_f(final.get('model_utility'))}",
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "comparison": f"sophia_{method}",
        "method": optimizer,
        "loss": method,
        "dataset": "tofu",
        "model": cfg.tofu.model,
        "seed": seed,
        "keys": ["lr"],
        "points": points,
    }
    write_json(out, result)
    return result


def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

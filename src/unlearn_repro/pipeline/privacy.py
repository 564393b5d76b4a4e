"""The privacy study (paper §7): DP-SGD fine-tuning vs unlearning on the same 128 samples (Figure 3).

* dp_models: the pretrained model fine-tuned on D with DP-SGD (opacus, through train.train) at each ε of
  `privacy.epsilons`; each model saved as an ordinary checkpoint with the ε the accountant says it spent,
  then audited: exposure of the main study's cycle-1 forget set (§7.1), task accuracy, test NLL; and the
  measured DP slowdown against ordinary fine-tuning of the same data and recipe, timed in the same job.
* unlearning_points: one method at each value of its coefficient grid, through the main study's
  pipeline.unlearning.run (cycle 1 only, the coefficient overridden in the config), each result scored
  the same way (§7.2).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from unlearn_repro import dp
from unlearn_repro.config import ConfigError
from unlearn_repro.data.encoding import split_sequences
from unlearn_repro.frozen import Frozen
from unlearn_repro.io import read_json, write_json
from unlearn_repro.methods import METHODS
from unlearn_repro.metrics.scores import score
from unlearn_repro.models import checkpoint
from unlearn_repro.optim import make_optimizer
from unlearn_repro.pipeline import open_checkpoint, study_seeds
from unlearn_repro.pipeline.evaluation import task_inputs
from unlearn_repro.pipeline.main_points import is_main_point, main_cycle
from unlearn_repro.pipeline.unlearning import run
from unlearn_repro.tracking import StudyTracker
from unlearn_repro.train import Recipe, train

AUDIT = ("exposure", "accuracy", "test_nll")


def datasets(cfg) -> list[str]:
    """The study's data sets that this run prepares (privacy.datasets within data.tasks)."""
    return [d for d in cfg.privacy.datasets if d in cfg.data.tasks]


def seeds(cfg) -> list[int]:
    """privacy.seeds, or the main study's seeds (null): each seed audits its own split's cycle-1 forget set
    and draws its own DP-SGD noise and unlearning noise."""
    return study_seeds(cfg, "privacy")


def check(cfg) -> None:
    """The study's params against the rest (at DAG build): data sets, seeds, grids of enabled methods."""
    p = cfg.privacy
    if not datasets(cfg):
        raise ConfigError(
            f"params.yaml: none of privacy.datasets {list(p.datasets)} is in data.tasks "
            f"{list(cfg.data.tasks)}"
        )
    seeds(cfg)  # a seed the main study does not run: ConfigError
    for m in methods(cfg):
        if m not in p.grids:
            raise ConfigError(f"params.yaml: privacy.grids has no grid for method {m!r} (in privacy.methods)")
        if "keys" not in p.grids[m] and not METHODS.get(m).step_keys:
            raise ConfigError(
                f"params.yaml: privacy.grids.{m} needs `keys`: method {m!r} declares no step size (step_key)"
            )
        known = set(cfg.methods[m]) if m in cfg.methods else set()
        unknown = [k for k in grid_keys(cfg, m) if k not in known]
        if unknown:
            raise ConfigError(
                f"params.yaml: privacy.grids.{m}.keys {unknown} are not keys of methods.{m} ({sorted(known)})"
            )


def grid_keys(cfg, method: str) -> list[str]:
    """The params the method's grid sets: its `keys`, else the method's declared step size (`step_key`)."""
    grid = cfg.privacy.grids[method]
    return list(grid["keys"]) if "keys" in grid else list(METHODS.get(method).step_keys)


def methods(cfg) -> list[str]:
    """The methods with a curve: listed in privacy.methods and enabled in methods.enabled."""
    return [m for m in cfg.privacy.methods if m in cfg.methods.enabled]


def study_tags(tags: dict) -> dict:
    """This study's MLflow tags: `study=privacy` and `privacy_stage` in place of `stage` (which names the
    main pipeline's per-model jobs), so its runs never count as the main study's."""
    return {
        **{k: v for k, v in tags.items() if k != "stage"},
        "study": "privacy",
        "privacy_stage": tags["stage"],
    }


def _forget_idx(split_file) -> list[int]:
    return list(read_json(split_file)["cycles"][0])


def _audit(cfg, model, tok, inputs, forget_idx) -> dict:
    s = score(AUDIT, model, tok, inputs, forget_idx, cfg)
    return {
        "exposure": float(np.mean(s["exposure"])),
        "accuracy": float(s["accuracy"]),
        "test_nll": float(s["test_nll"]),
    }


def dp_recipe(cfg, seed: int) -> Recipe:
    """The fine-tuning recipe with the study's overrides (privacy.finetune), its batches drawn by `seed`."""
    return Recipe.from_config({**cfg.finetune.to_dict(), **cfg.privacy.finetune.to_dict()}, cfg, seed=seed)


def dp_models(
    cfg,
    *,
    dataset: str,
    model_name: str,
    seed: int,
    pretrained,
    finetuned,
    data_dir,
    reference,
    split_file,
    out_dir,
    tracker,
) -> dict:
    """DP-SGD fine-tune the pretrained model at each ε (noise and batches drawn by `seed`), save, audit the
    seed's forget set; plus the ordinary model's point (ε = ∞)."""
    p, out_dir = cfg.privacy, Path(out_dir)
    forget_idx = _forget_idx(split_file)
    recipe = dp_recipe(cfg, seed)
    ordinary, tok, base_meta, device = open_checkpoint(cfg, finetuned)
    inputs = task_inputs(cfg, tok, Path(data_dir), str(reference))
    seqs = split_sequences(tok, data_dir, "train", cfg.data.max_length)
    delta = p.delta if p.delta is not None else 1.0 / len(seqs)
    base_s = base_meta["train_stats"]["wall_time_s"] / cfg.finetune.epochs  # the base model's own run
    points = [
        {
            "method": "dp_sgd",
            "coefficient": "epsilon",
            "value": math.inf,
            "epsilon": math.inf,
            "epsilon_spent": math.inf,
            "noise_multiplier": 0.0,
            "max_grad_norm": None,
            "delta": delta,
            "base_run_epoch_s": base_s,
            **_audit(cfg, ordinary, tok, inputs, forget_idx),
        }
    ]
    del ordinary
    for eps in p.epsilons:
        model, tok, _, device = open_checkpoint(cfg, pretrained)
        dp.prepare_model(model.train(), p.train_token_embeddings)  # opacus wraps a model in training mode
        optimizer = make_optimizer(recipe, [q for q in model.parameters() if q.requires_grad])
        priv = dp.make_private(
            model,
            optimizer,
            len(seqs),
            batch_size=recipe.batch_size,
            epochs=recipe.epochs,
            max_grad_norm=p.max_grad_norm,
            delta=delta,
            seed=seed,
            epsilon=float(eps),
            accountant=p.accountant,
        )
        stats = train(
            priv.model,
            seqs,
            recipe,
            pad_id=tok.pad_token_id,
            device=device,
            objective=dp.per_sequence_lm_loss,
            optimizer=priv.optimizer,
            batches=priv.batches,
            desc=f"DP-SGD eps={eps} {model_name} on {dataset}",
        )
        spent = priv.epsilon()
        model = dp.release(priv.model)
        epoch_s = stats["wall_time_s"] / recipe.epochs
        point = {
            "ordinary_epoch_s": ordinary_epoch_s(cfg, pretrained, seqs, recipe, tok.pad_token_id),
            "method": "dp_sgd",
            "coefficient": "epsilon",
            "value": float(eps),
            "epsilon": float(eps),
            "epsilon_spent": spent,
            "noise_multiplier": priv.noise_multiplier,
            "max_grad_norm": priv.max_grad_norm,
            "delta": delta,
            "sample_rate": priv.sample_rate,
            "steps": stats["steps"],
            "wall_time_s": stats["wall_time_s"],
            "epoch_s": epoch_s,
            "base_run_epoch_s": base_s,
            "diverged": stats["diverged"],
            **_audit(cfg, model, tok, inputs, forget_idx),
        }
        point["slowdown"] = epoch_s / point["ordinary_epoch_s"]
        checkpoint.save(
            model,
            tok,
            out_dir / "models" / f"eps{eps:g}",
            {
                "model": model_name,
                "dataset": dataset,
                "stage": "dp_finetuned",
                "dp": point,
                "params": {
                    "privacy": p.to_dict(),
                    "recipe": recipe.__dict__ | {"optimizer_args": dict(recipe.optimizer_args)},
                },
            },
        )
        points.append(point)
        print(
            f"[privacy] {model_name} {dataset}: eps {eps} -> spent {spent:.3f}, "
            f"sigma {priv.noise_multiplier:.3f}, exposure {point['exposure']:.3f}, "
            f"test NLL {point['test_nll']:.3f}, slowdown {point['slowdown']:.2f}x",
            flush=True,
        )
        tracker.log_run(
            f"privacy/dp/{dataset}/{model_name}/seed{seed}/eps{eps:g}",
            {
                "target_epsilon": eps,
                "delta": delta,
                "max_grad_norm": p.max_grad_norm,
                "accountant": p.accountant,
                "train_token_embeddings": p.train_token_embeddings,
                "recipe": {k: v for k, v in recipe.__dict__.items() if k != "optimizer_args"},
            },
            {
                k: point[k]
                for k in (
                    "epsilon_spent",
                    "noise_multiplier",
                    "max_grad_norm",
                    "exposure",
                    "accuracy",
                    "test_nll",
                    "wall_time_s",
                    "slowdown",
                )
            },
            study_tags({"stage": "dp", "dataset": dataset, "model": model_name, "seed": str(seed)}),
            record=point,
        )
    result = {
        "dataset": dataset,
        "model": model_name,
        "seed": seed,
        "n_train": len(seqs),
        "n_forget": len(forget_idx),
        "points": points,
    }
    write_json(out_dir / "points.json", result)
    return result


def ordinary_epoch_s(cfg, pretrained, seqs, recipe: Recipe, pad_id: int) -> float:
    """Wall seconds of one epoch of ordinary fine-tuning with the same recipe, timed in the same process right
    after a DP run (same load, warm caches): the denominator of the DP slowdown."""
    model, _, _, device = open_checkpoint(cfg, pretrained)
    stats = train(
        model,
        seqs,
        replace(recipe, epochs=1),
        pad_id=pad_id,
        device=device,
        objective=dp.per_sequence_lm_loss,
        desc="ordinary fine-tuning (timing)",
    )
    return stats["wall_time_s"]


def point_config(cfg, method: str, keys, value: float) -> Frozen:
    """The config with the method's coefficient(s) set to `value` and unlearning stopped after cycle 1."""
    return METHODS.get(method).grid_config(cfg, dict.fromkeys(keys, value))


def unlearning_points(
    cfg,
    *,
    method: str,
    dataset: str,
    model_name: str,
    seed: int,
    pretrained,
    finetuned,
    data_dir,
    reference,
    split_file,
    out,
    tracker,
    main=None,
) -> dict:
    """Each value of the method's grid: unlearn cycle 1 of the seed's split (the 128 samples) with the main
    pipeline, audit. The value that is the main study's own setting is read from its run `main`
    (pipeline/main_points.py): the main study's cycle 1 scores the same samples with the same scorers."""
    grid, keys = cfg.privacy.grids[method], grid_keys(cfg, method)
    work = Path(out).with_suffix(".work")
    main_row, points, scoring = main_cycle(main), [], {}
    run_inputs = dict(
        method=method,
        dataset=dataset,
        model_name=model_name,
        seed=seed,
        finetuned=finetuned,
        pretrained=pretrained,
        data_dir=data_dir,
        split_file=split_file,
    )  # what pipeline.unlearning.run takes besides the config
    for value in grid["values"]:
        t0 = time.perf_counter()
        if main_row and is_main_point(cfg, method, keys, value):
            audit, cycle, diverged = {k: main_row[k] for k in AUDIT}, main_row, False
        else:
            audit, cycle, diverged = _audited_cycle1(
                cfg,
                point_config(cfg, method, keys, value),
                work / f"{value:g}",
                reference,
                scoring,
                StudyTracker(tracker, "privacy", study_tags),
                **run_inputs,
            )
        point = {
            "method": method,
            "coefficient": "=".join(keys),
            "value": float(value),
            "runtime_s": cycle["runtime_s"],
            "diverged": diverged,
            **audit,
            "curvature": cycle.get("curvature"),
        }  # metrics.curvature (second-order methods)
        points.append(point)
        tracker.log_run(
            f"privacy/point/{method}/{dataset}/{model_name}/seed{seed}/{value:g}",
            {"method": method, "coefficient": point["coefficient"], "value": value},
            {k: audit[k] for k in AUDIT} | {"runtime_s": cycle["runtime_s"], "diverged": float(diverged)},
            study_tags(
                {
                    "stage": "point",
                    "dataset": dataset,
                    "model": model_name,
                    "method": method,
                    "seed": str(seed),
                }
            ),
            record=point,
        )
        print(
            f"[privacy] {method} {point['coefficient']}={value:g}: exposure {audit['exposure']:.3f}, "
            f"test NLL {audit['test_nll']:.3f} ({time.perf_counter() - t0:.1f}s"
            + (", the main study's run)" if cycle is main_row else ")"),
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    result = {
        "dataset": dataset,
        "model": model_name,
        "method": method,
        "seed": seed,
        "points": points,
    }
    write_json(out, result)
    return result


def _audited_cycle1(cfg, run_cfg, run_dir: Path, reference, scoring: dict, tracker, **inputs) -> tuple:
    """Cycle 1 of the main study's unlearning under `run_cfg`, audited on its forget set: (audit, the cycle's
    record, diverged). `scoring` keeps the task's inputs, read and tokenized at a job's first point."""
    summary = run(run_cfg, out_dir=run_dir, tracker=tracker, **inputs)
    model, tok, _, _ = open_checkpoint(cfg, run_dir / "checkpoints" / "cycle1")
    if not scoring:
        scoring.update(task_inputs(cfg, tok, Path(inputs["data_dir"]), str(reference)))
    cycle = summary["cycles"][0]
    diverged = bool(cycle.get("diverged")) or not all(torch.isfinite(q).all() for q in model.parameters())
    audit = _audit(cfg, model, tok, scoring, _forget_idx(inputs["split_file"]))
    shutil.rmtree(run_dir)
    return audit, cycle, diverged

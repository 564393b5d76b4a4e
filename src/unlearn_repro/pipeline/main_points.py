"""A study's grid point at the main study's own setting is the main study's cycle 1: read, not rerun.

The privacy study and the Newton-type ablations run, at each value of a step grid, cycle 1 of the main
study's unlearning (`Method.grid_config`: the method's params block with that value, unlearning stopped
after cycle 1). Where the value leaves the block as it is, that point is the main study's run of the same
method, task, model and seed, bit for bit: the same steps on the same models and samples, and cycle 1 does
not depend on the cycles after it (benchmarks/results/main_points_amd.md checks every such point of a
published run). So those studies read the main run's cycle-1 row instead of computing it again; its
`runtime_s` is then the main run's cycle 1. A main run whose cycle 1 diverged is not read: the study
computes that point itself, as it always did."""

from __future__ import annotations

import math
from pathlib import Path

from unlearn_repro.io import read_json
from unlearn_repro.methods import METHODS


def is_main_point(cfg, method: str, keys, value: float) -> bool:
    """Whether setting `keys` to `value` leaves the method's params block (`methods.<method>`) unchanged."""
    m = METHODS.get(method)
    return m.study_block(cfg, dict.fromkeys(keys, value)) == m.study_block(cfg)


def main_metrics(cfg, runs_root, method: str, dataset: str, model: str, seed: int, keys, values) -> list[str]:
    """The main run's metrics file that a grid repeats at one of its `values` ([] where none is the main
    setting, or the main study does not run this method, task, model or seed)."""
    runs = (
        method in cfg.methods.enabled
        and dataset in cfg.data.tasks
        and model in cfg.models
        and int(seed) in cfg.seeds
    )
    if not runs or not any(is_main_point(cfg, method, keys, v) for v in values):
        return []
    return [str(Path(runs_root) / method / dataset / model / f"seed{seed}" / "metrics.json")]


def main_cycle(metrics_file) -> dict | None:
    """The main run's cycle-1 metrics row; None where it diverged or a score is not a number."""
    if not metrics_file:
        return None
    row = read_json(metrics_file)["cycles"][0]
    scores = [row.get(k) for k in ("accuracy", "test_nll", "exposure")]
    if row.get("diverged") or any(v is None or not math.isfinite(v) for v in scores):
        return None
    return row


def main_arg(wildcards, input) -> str:
    """A rule's `--main FILE` argument where its job reads a point from the main study's run (a Snakemake
    params function: `input.main` is what main_metrics gave)."""
    return " ".join(f"--main {p}" for p in input.main)

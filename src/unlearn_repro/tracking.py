"""Experiment tracking. Library code talks to a Tracker; only MlflowTracker imports mlflow.

Every CLI job logs one MLflow run at its end, inside a file lock: several parallel Snakemake jobs
finishing together then queue for the sqlite store instead of failing on "database is locked", and the
store's first-time schema creation is never raced. Runs of one pipeline invocation share the tag
`pipeline_run` (set by the Snakefile through UNLEARN_PIPELINE_RUN) and so can be filtered as a group.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Mapping, Protocol

from unlearn_repro.io import git_commit


class Tracker(Protocol):
    def log_run(self, name: str, params: Mapping, metrics: Mapping[str, float], tags: Mapping[str, str],
                step_metrics: Mapping[str, list[float]] | None = None) -> None: ...


class NullTracker:
    def log_run(self, name, params, metrics, tags, step_metrics=None) -> None:
        pass


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class MlflowTracker:
    def __init__(self, uri: str, experiment: str, lock_path: str | Path | None = None, retries: int = 5,
                 profile: str | None = None):
        self.uri, self.experiment, self.retries, self.profile = uri, experiment, retries, profile
        if lock_path is None:
            lock_path = (uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else "mlflow") + ".lock"
        self.lock_path = str(lock_path)

    def log_run(self, name, params, metrics, tags, step_metrics=None) -> None:
        from filelock import FileLock
        import mlflow

        tags = {**tags, "git_commit": git_commit(), "pipeline_run": os.environ.get("UNLEARN_PIPELINE_RUN", "manual"),
                **({"profile": self.profile} if self.profile else {})}
        flat = {k: str(v)[:500] for k, v in _flatten(params).items()}
        clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        for attempt in range(self.retries):
            try:
                with FileLock(self.lock_path, timeout=600):
                    mlflow.set_tracking_uri(self.uri)
                    mlflow.set_experiment(self.experiment)
                    with mlflow.start_run(run_name=name, tags=tags):
                        mlflow.log_params(flat)
                        mlflow.log_metrics(clean)
                        for key, values in (step_metrics or {}).items():
                            for step, v in enumerate(values, 1):
                                if v is not None and math.isfinite(v):
                                    mlflow.log_metric(key, float(v), step=step)
                return
            except Exception as e:  # sqlite contention or a transient store error: retry, then give up loudly
                if attempt == self.retries - 1:
                    raise RuntimeError(f"MLflow logging to {self.uri} failed after {self.retries} tries: {e}") from e
                time.sleep(1 + attempt)


def make_tracker(cfg) -> Tracker:
    """One MLflow experiment per profile (`<experiment>-<profile>`), every run tagged with its profile."""
    t = cfg.tracking
    return MlflowTracker(t.uri, f"{t.experiment}-{cfg.profile}", profile=cfg.profile) if t.enabled else NullTracker()

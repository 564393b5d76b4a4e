"""Experiment tracking. Library code talks to a Tracker; only MlflowTracker imports mlflow.

Every CLI job logs one MLflow run at its end, inside a file lock: several parallel Snakemake jobs
finishing together then queue for the sqlite store instead of failing on "database is locked", and the
store's first-time schema creation is never raced. Runs of one pipeline invocation share the tag
`pipeline_run` (set by the Snakefile through UNLEARN_PIPELINE_RUN) and so can be filtered as a group.

A run carries the job's true start and end time: it starts when the tracker was made (the CLI makes it
with its process's start time) or, for the next run of the same tracker, when the previous one ended.
Its small outputs (run.json, metrics json/CSV, tables, figures; never checkpoints) go to the store's own
artifact folder, mlruns/ beside the sqlite file, named as the URI names the file: with `sqlite:///mlflow.db`
the locations are relative to the workspace (`mlruns/<experiment>/<run>/artifacts`), so a moved or copied
workspace reads and writes its own artifacts (MLflow would store them absolute: a copy's runs would write
into the original's mlruns/). An evaluation links itself to the run it evaluates (`link_to`): it finds that
run by its tags, logs its headline metrics onto it and tags both runs with each other's id
(`unlearn_run_id`, `evaluate_run_id`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from filelock import FileLock

# MLflow's telemetry starts a thread at `import mlflow` that sends usage records over the network: nothing
# may reach the network at run time, and the job server must fork without threads (jobserver.PRELOAD)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from unlearn_repro import numerics
from unlearn_repro.io import git_commit, json_text, read_json

# files logged at the artifact root, or {artifact folder: files} ("" = the root)
Artifacts = Iterable[str | Path] | Mapping[str, Iterable[str | Path]]


class Tracker(Protocol):
    def log_run(
        self,
        name: str,
        params: Mapping,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        step_metrics: Mapping[str, list[float]] | None = None,
        *,
        artifacts: Artifacts = (),
        record: Mapping | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
        link_to: Mapping[str, str] | None = None,
        link_metrics: Mapping[str, float] | None = None,
        link_step_metrics: Mapping[str, list[float]] | None = None,
        children: Mapping[str, str] | None = None,
    ) -> str | None:
        """Log one finished run; returns its id (None when not tracking).

        record: the run's result as a dict, logged as the artifact `record.json` (for runs whose result
        lands in a study-level file written later: every run carries its own result).
        start_time / end_time: epoch seconds (default: the tracker's start, see the module doc / now).
        link_to: tags (with `stage`) of an earlier run this one belongs to, e.g. the unlearning run an
        evaluation scores: `link_metrics` / `link_step_metrics` are logged onto that run too, this run is
        tagged `<its stage>_run_id` and that one `<this stage>_run_id`.
        children: tags of earlier runs of this pipeline invocation that become this run's children
        (`mlflow.parentRunId`, nested under it in the MLflow UI), e.g. a benchmark's grid points."""
        ...


class NullTracker:
    def log_run(self, name, params, metrics, tags, step_metrics=None, **_) -> None:
        return None


class StudyTracker:
    """A study's view of a tracker for the code it shares with the main study (pipeline.unlearning.run):
    each run named `<study>/<name>` and its tags passed through `retag`, so that it never counts as the main
    study's run; links to other runs are dropped (those would be the main study's)."""

    def __init__(self, inner: Tracker, study: str, retag: Callable[[dict], dict]):
        self.inner, self.study, self.retag = inner, study, retag

    def log_run(self, name, params, metrics, tags, *args, **kwargs):
        kwargs.pop("link_to", None)
        return self.inner.log_run(
            f"{self.study}/{name}", params, metrics, self.retag(dict(tags)), *args, **kwargs
        )


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _metric_list(metrics: Mapping | None, steps: Mapping | None, ms: int) -> list:
    """MLflow Metric entities: plain metrics (step 0) and per-step series (steps 1..n); non-finite dropped."""
    # heavy: the CLI imports this module before any command runs
    from mlflow.entities import Metric

    out = [Metric(k, float(v), ms, 0) for k, v in (metrics or {}).items() if _finite(v)]
    for key, values in (steps or {}).items():
        out += [Metric(key, float(v), ms, step) for step, v in enumerate(values, 1) if _finite(v)]
    return out


def _artifact_files(artifacts: Artifacts) -> list[tuple[str, Path]]:
    """(artifact folder, file) pairs; files that do not exist are reported and skipped."""
    groups = artifacts.items() if isinstance(artifacts, Mapping) else [("", artifacts)]
    out = []
    for folder, files in groups:
        for f in files:
            if Path(f).is_file():
                out.append((folder, Path(f)))
            else:
                print(f"[tracking] not logging missing artifact {f}", flush=True)
    return out


class MlflowTracker:
    def __init__(
        self,
        uri: str,
        experiment: str,
        lock_path: str | Path | None = None,
        retries: int = 5,
        profile: str | None = None,
        start_time: float | None = None,
    ):
        self.uri, self.experiment, self.retries, self.profile = uri, experiment, retries, profile
        if lock_path is None:
            lock_path = (uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else "mlflow") + ".lock"
        self.lock_path = str(lock_path)
        self.start_time = time.time() if start_time is None else start_time  # where the next run starts

    def log_run(
        self,
        name,
        params,
        metrics,
        tags,
        step_metrics=None,
        *,
        artifacts=(),
        record=None,
        start_time=None,
        end_time=None,
        link_to=None,
        link_metrics=None,
        link_step_metrics=None,
        children=None,
    ) -> str:
        # heavy: the CLI imports this module before any command runs
        import mlflow
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        start = self.start_time if start_time is None else start_time
        end = time.time() if end_time is None else end_time
        pipeline_run = os.environ.get("UNLEARN_PIPELINE_RUN", "manual")
        tags = {
            **tags,
            "git_commit": git_commit(),
            "pipeline_run": pipeline_run,
            **({"profile": self.profile} if self.profile else {}),
        }
        tags = {k: str(v) for k, v in _system_tags(tags).items()}
        flat = [Param(k, str(v)[:500]) for k, v in _flatten(params).items()]
        files = _artifact_files(artifacts)
        store = _absolute(self.uri)
        for attempt in range(self.retries):
            run_id = None
            try:
                with FileLock(self.lock_path, timeout=600):
                    mlflow.set_tracking_uri(store)
                    client = MlflowClient(store)
                    exp_id = mlflow.set_experiment(self.experiment).experiment_id
                    _artifacts_beside_store(self.uri, exp_id)
                    linked = _find_run(client, exp_id, link_to, pipeline_run) if link_to else None
                    if linked:
                        tags[f"{link_to.get('stage', 'linked')}_run_id"] = linked
                    run_id = client.create_run(
                        exp_id, start_time=int(start * 1000), tags=tags, run_name=name
                    ).info.run_id
                    now = int(end * 1000)
                    client.log_batch(run_id, metrics=_metric_list(metrics, step_metrics, now), params=flat)
                    for folder, f in files:
                        client.log_artifact(run_id, str(f), artifact_path=folder or None)
                    if record is not None:
                        client.log_text(run_id, json_text(record), "record.json")
                    if linked:
                        client.log_batch(
                            linked,
                            metrics=_metric_list(link_metrics, link_step_metrics, now),
                            tags=[RunTag(f"{tags.get('stage', 'linked')}_run_id", run_id)],
                        )
                    for child in _runs_of(client, exp_id, children, pipeline_run) if children else ():
                        client.set_tag(child, "mlflow.parentRunId", run_id)
                    client.set_terminated(run_id, "FINISHED", end_time=now)
                self.start_time = end  # a further run of this tracker starts where this one ended
                return run_id
            except Exception as e:  # sqlite contention or a transient store error: retry, then give up loudly
                if run_id is not None:  # no half-logged run left behind by a retry
                    try:
                        MlflowClient(store).delete_run(run_id)
                    except Exception:
                        pass
                if attempt == self.retries - 1:
                    raise RuntimeError(
                        f"MLflow logging to {self.uri} failed after {self.retries} tries: {e}"
                    ) from e
                time.sleep(1 + attempt)


def _absolute(uri: str) -> str:
    """`sqlite:///mlflow.db` as an absolute URI for MLflow's client: MLflow caches a store per URI string, so
    a relative one would reach another workspace's database after a change of directory (the artifact
    locations stay relative: `_artifacts_beside_store`)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    return uri


def _artifacts_beside_store(uri: str, exp_id: str) -> None:
    """Point the experiment and its runs at <folder of the sqlite file>/mlruns, written as the URI writes the
    file (relative: to the workspace), wherever MLflow put them (absolute, possibly another workspace's)."""
    if not uri.startswith("sqlite:///"):
        return  # a server or file store manages its own artifact locations

    db = uri[len("sqlite:///") :].split("?")[0]
    root = (Path(db).parent / "mlruns" / str(exp_id)).as_posix()
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con, con:
        con.execute(
            "update experiments set artifact_location = ? where experiment_id = ? and artifact_location != ?",
            (root, exp_id, root),
        )
        con.execute(
            "update runs set artifact_uri = ? || '/' || run_uuid || '/artifacts' where experiment_id = ? "
            "and artifact_uri != ? || '/' || run_uuid || '/artifacts'",
            (root, exp_id, root),
        )


def _system_tags(tags: dict) -> dict:
    """The tags mlflow.start_run would add (user, source, ...) under ours: runs made with
    create_run lack them."""
    tags = {**numerics.tags(), **tags}  # the CPU code path: docs/determinism.md
    try:
        # heavy: the CLI imports this module before any command runs
        from mlflow.tracking.context.registry import resolve_tags

        return resolve_tags(tags)
    except Exception:  # a private MLflow helper: do without it rather than fail
        return tags


def _find_run(client, exp_id: str, match: Mapping[str, str], pipeline_run: str) -> str | None:
    """The newest run of `exp_id` with all `match` tags, preferring one of this pipeline invocation (an
    evaluation re-run later links to the newest unlearning run of the same settings instead)."""
    query = " and ".join(f"tags.{k} = '{v}'" for k, v in match.items())
    runs = client.search_runs([exp_id], query, order_by=["attributes.start_time DESC"], max_results=200)
    runs = [r for r in runs if r.info.status == "FINISHED"]
    same = [r for r in runs if r.data.tags.get("pipeline_run") == pipeline_run]
    best = same or runs
    return best[0].info.run_id if best else None


def _runs_of(client, exp_id: str, match: Mapping[str, str], pipeline_run: str) -> list[str]:
    """Every finished run of this pipeline invocation with all `match` tags."""
    query = " and ".join(f"tags.{k} = '{v}'" for k, v in {**match, "pipeline_run": pipeline_run}.items())
    runs = client.search_runs([exp_id], query, max_results=50000)
    return [r.info.run_id for r in runs if r.info.status == "FINISHED"]


def log_report(
    tracker: Tracker, study: str, files: Mapping[str, Iterable[str | Path]], params: Mapping
) -> str | None:
    """A study's report as one run, tagged `report=<study>` (not `stage`: that names the per-model jobs).
    files: {artifact folder: files}, e.g. its tables, figures, summary and the collected metrics CSVs; the
    numbers of its summary/*.json files are its metrics too, `<file stem>.<key>` (a metrics.json: `<key>`)."""
    metrics = {}
    for f in map(Path, files.get("summary", [])):
        if f.suffix == ".json" and f.is_file():
            prefix = "" if f.stem == "metrics" else f"{f.stem}."
            metrics.update(
                {
                    f"{prefix}{k}": v
                    for k, v in _flatten(read_json(f)).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
    return tracker.log_run(f"report/{study}", params, metrics, {"report": study}, artifacts=files)


def make_tracker(cfg, start_time: float | None = None) -> Tracker:
    """One MLflow experiment per profile (`<experiment>-<profile>`), every run tagged with its profile.
    start_time (epoch seconds, default now): when the job began, the start of its run."""
    t = cfg.tracking
    if not t.enabled:
        return NullTracker()
    return MlflowTracker(t.uri, f"{t.experiment}-{cfg.profile}", profile=cfg.profile, start_time=start_time)

"""Parallel jobs logging to one sqlite MLflow store at once lose no run; runs carry their true start/end
times and their artifacts; an evaluation's headline metrics land on the run it evaluates too."""

import multiprocessing as mp
import sqlite3

import pytest


def _log(uri, i, artifact):
    from unlearn_repro.tracking import MlflowTracker

    MlflowTracker(uri, "test").log_run(
        f"run{i}",
        {"i": i, "nested": {"a": 1}},
        {"m": float(i), "bad": float("nan")},
        {"stage": "unlearn", "seed": str(i)},
        {"curve": [1.0, 2.0]},
        artifacts=[artifact],
    )


def test_parallel_logging_keeps_every_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root for a sqlite store: ./mlruns
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "run.json").write_text("{}")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_log, args=(uri, i, str(tmp_path / "run.json"))) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    con = sqlite3.connect(tmp_path / "mlflow.db")
    assert con.execute("select count(*) from runs").fetchone()[0] == 4
    assert con.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0] == 4
    assert con.execute("select count(*) from params where key = 'nested.a'").fetchone()[0] == 4
    assert con.execute("select count(*) from metrics where key = 'bad'").fetchone()[0] == 0
    assert con.execute("select count(*) from metrics where key = 'curve'").fetchone()[0] == 8
    assert len(list((tmp_path / "mlruns").glob("*/*/artifacts/run.json"))) == 4


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UNLEARN_PIPELINE_RUN", "p1")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return uri, MlflowClient(uri)


def test_start_end_times_and_artifacts(tmp_path, store):
    from unlearn_repro.tracking import MlflowTracker, NullTracker

    uri, client = store
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.png").write_bytes(b"\x89PNG")
    (tmp_path / "t.csv").write_text("a\n1\n")
    tracker = MlflowTracker(uri, "test", start_time=1_000.0)
    first = tracker.log_run(
        "a",
        {},
        {"m": 1.0},
        {"stage": "unlearn"},
        end_time=1_250.5,
        artifacts={
            "figures": [tmp_path / "figures" / "f.png"],
            "": [tmp_path / "t.csv"],
            "gone": [tmp_path / "missing.json"],
        },
    )
    second = tracker.log_run("b", {}, {}, {"stage": "unlearn"}, end_time=1_300.0)  # starts where `a` ended
    explicit = tracker.log_run("c", {}, {}, {"stage": "unlearn"}, start_time=5.0, end_time=6.0)
    info = {r: client.get_run(r).info for r in (first, second, explicit)}
    assert (info[first].start_time, info[first].end_time) == (1_000_000, 1_250_500)
    assert (info[second].start_time, info[second].end_time) == (1_250_500, 1_300_000)
    assert (info[explicit].start_time, info[explicit].end_time) == (5_000, 6_000)
    assert info[first].status == "FINISHED" and info[first].run_name == "a"
    assert sorted(f.path for f in client.list_artifacts(first)) == ["figures", "t.csv"]
    assert [f.path for f in client.list_artifacts(first, "figures")] == ["figures/f.png"]
    assert client.get_run(first).data.tags["pipeline_run"] == "p1"
    assert str(tmp_path / "mlruns") in info[first].artifact_uri  # beside the store, git-ignored
    assert NullTracker().log_run("x", {}, {}, {}, artifacts=[tmp_path / "t.csv"], start_time=1.0) is None


def test_evaluation_links_to_its_unlearning_run(store, monkeypatch):
    from unlearn_repro.tracking import MlflowTracker

    uri, client = store
    who = {"dataset": "d", "model": "m", "method": "ga", "seed": "0"}
    older = MlflowTracker(uri, "test").log_run("u", {}, {"runtime_s": 1.0}, {"stage": "unlearn", **who})
    other = MlflowTracker(uri, "test").log_run("u", {}, {}, {"stage": "unlearn", **who, "seed": "1"})
    monkeypatch.setenv("UNLEARN_PIPELINE_RUN", "p2")
    target = MlflowTracker(uri, "test").log_run("u", {}, {"runtime_s": 2.0}, {"stage": "unlearn", **who})
    monkeypatch.setenv(
        "UNLEARN_PIPELINE_RUN", "p1"
    )  # an evaluation of the older pipeline run links to its run
    ev = MlflowTracker(uri, "test").log_run(
        "e",
        {},
        {"delta_acc_cycle1": 0.5},
        {"stage": "evaluate", **who},
        link_to={"stage": "unlearn", **who},
        link_metrics={"delta_acc_cycle1": 0.5, "delta_exp_cycle1": float("nan")},
        link_step_metrics={"delta_acc": [0.5, None, 0.25]},
    )
    linked = client.get_run(older).data
    assert client.get_run(ev).data.tags["unlearn_run_id"] == older
    assert linked.tags["evaluate_run_id"] == ev
    assert linked.metrics == {"runtime_s": 1.0, "delta_acc_cycle1": 0.5, "delta_acc": 0.25}
    assert [(m.step, m.value) for m in client.get_metric_history(older, "delta_acc")] == [(1, 0.5), (3, 0.25)]
    assert "evaluate_run_id" not in client.get_run(other).data.tags | client.get_run(target).data.tags
    monkeypatch.setenv("UNLEARN_PIPELINE_RUN", "p3")  # no run of this pipeline run: the newest one
    ev2 = MlflowTracker(uri, "test").log_run(
        "e", {}, {}, {"stage": "evaluate", **who}, link_to={"stage": "unlearn", **who}
    )
    assert client.get_run(ev2).data.tags["unlearn_run_id"] == target
    lonely = MlflowTracker(uri, "test").log_run(
        "e", {}, {}, {"stage": "evaluate"}, link_to={"stage": "unlearn", "seed": "9"}
    )
    assert "unlearn_run_id" not in client.get_run(lonely).data.tags


def test_a_parent_run_adopts_its_children_of_this_pipeline_run(store, monkeypatch):
    """The cross-paper benchmark's parent run per task nests its grid points' runs (mlflow.parentRunId),
    only those of this pipeline invocation with every tag asked for."""
    from unlearn_repro.tracking import MlflowTracker

    uri, client = store
    point = {"stage": "crossbench_point", "benchmark": "tofu"}
    kids = [MlflowTracker(uri, "test").log_run(f"p{i}", {}, {}, {**point, "seed": str(i)}) for i in range(2)]
    other_task = MlflowTracker(uri, "test").log_run("q", {}, {}, {**point, "benchmark": "tdec"})
    monkeypatch.setenv("UNLEARN_PIPELINE_RUN", "p2")
    other_run = MlflowTracker(uri, "test").log_run("r", {}, {}, point)
    monkeypatch.setenv("UNLEARN_PIPELINE_RUN", "p1")
    parent = MlflowTracker(uri, "test").log_run("crossbench/tofu", {}, {}, {"report": "x"}, children=point)
    assert [client.get_run(k).data.tags.get("mlflow.parentRunId") for k in kids] == [parent, parent]
    assert (
        "mlflow.parentRunId" not in client.get_run(other_task).data.tags | client.get_run(other_run).data.tags
    )


def test_report_run_carries_its_files_and_summary(tmp_path, store):
    from unlearn_repro.tracking import MlflowTracker, log_report

    uri, client = store
    (tmp_path / "summary").mkdir()
    (tmp_path / "summary" / "npo.json").write_text(
        '{"cycle1": {"delta_exp": -0.5, "delta_acc": null}, "runtime_s": 2}'
    )
    (tmp_path / "fig.png").write_bytes(b"\x89PNG")
    run = log_report(
        MlflowTracker(uri, "test"),
        "main",
        {"summary": [tmp_path / "summary" / "npo.json"], "figures": [tmp_path / "fig.png"]},
        {"tasks": ["a"]},
    )
    data = client.get_run(run).data
    assert data.tags["report"] == "main" and "stage" not in data.tags and data.params == {"tasks": "['a']"}
    assert data.metrics == {"npo.cycle1.delta_exp": -0.5, "npo.runtime_s": 2.0}
    assert sorted(f.path for f in client.list_artifacts(run)) == ["figures", "summary"]


def test_a_moved_or_copied_workspace_uses_its_own_artifact_store(tmp_path, monkeypatch):
    """Artifact locations are relative to the workspace (the URI `sqlite:///mlflow.db` is): a copy reads its
    own artifacts and writes new ones into its own mlruns/ (with absolute locations it wrote
    into the original)."""
    import shutil

    from mlflow.tracking import MlflowClient

    from unlearn_repro.tracking import MlflowTracker

    first, copy, elsewhere = tmp_path / "first", tmp_path / "copy", tmp_path / "elsewhere"
    for folder in (first, elsewhere):
        folder.mkdir()
    monkeypatch.chdir(
        elsewhere
    )  # MLflow caches a store per URI string: the same relative URI, another folder
    MlflowTracker("sqlite:///mlflow.db", "test").log_run("z", {}, {}, {"stage": "x"})
    monkeypatch.chdir(first)
    (first / "run.json").write_text("{}")
    old = MlflowTracker("sqlite:///mlflow.db", "test").log_run(
        "a", {}, {}, {"stage": "x"}, artifacts=["run.json"]
    )
    shutil.copytree(first, copy)
    shutil.rmtree(first / "mlruns")  # the original's artifacts are gone: the copy must not need them
    monkeypatch.chdir(copy)
    new = MlflowTracker("sqlite:///mlflow.db", "test").log_run(
        "b", {}, {}, {"stage": "x"}, artifacts=["run.json"]
    )
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")  # absolute: MLflow caches stores per URI string
    for run in (old, new):
        assert [f.path for f in client.list_artifacts(run)] == ["run.json"]
        assert not client.get_run(run).info.artifact_uri.startswith("/")
    assert (copy / f"mlruns/1/{new}/artifacts/run.json").exists() and not (first / "mlruns").exists()


def test_a_study_tracker_names_and_tags_the_shared_code_s_runs_as_the_study_s():
    """privacy and memorization run pipeline.unlearning.run: its runs must not pass for the main study's."""
    from unlearn_repro.tracking import StudyTracker

    logged = []

    class Recorder:
        def log_run(self, name, params, metrics, tags, *args, **kwargs):
            logged.append((name, tags, args, kwargs))
            return "id"

    study = StudyTracker(Recorder(), "privacy", lambda tags: {**tags, "stage": "privacy_" + tags["stage"]})
    tags = {"stage": "unlearn", "method": "npo"}
    assert (
        study.log_run(
            "unlearn/npo/x", {}, {}, tags, {"loss": [1.0]}, artifacts=["a"], link_to={"stage": "evaluate"}
        )
        == "id"
    )
    assert logged == [
        (
            "privacy/unlearn/npo/x",
            {"stage": "privacy_unlearn", "method": "npo"},
            ({"loss": [1.0]},),
            {"artifacts": ["a"]},
        )
    ]
    assert tags == {"stage": "unlearn", "method": "npo"}  # the caller's tags are left as they were


def test_a_run_without_files_carries_its_result_record(store):
    """Runs whose result lands in a study-level file later (privacy points, DP models, TDEC, onion) carry
    their own result as record.json."""
    import json

    import numpy as np

    from unlearn_repro.tracking import MlflowTracker

    uri, client = store
    record = {"exposure": np.float32(0.5), "diverged": False, "curvature": {"cosine": [0.9, 0.8]}}
    run = MlflowTracker(uri, "test").log_run("p", {}, {"exposure": 0.5}, {"stage": "point"}, record=record)
    assert [f.path for f in client.list_artifacts(run)] == ["record.json"]
    path = client.download_artifacts(run, "record.json")
    assert json.loads(open(path).read()) == {
        "curvature": {"cosine": [0.9, 0.8]},
        "diverged": False,
        "exposure": 0.5,
    }

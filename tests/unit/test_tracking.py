"""Parallel jobs logging to one sqlite MLflow store at once lose no run."""
import multiprocessing as mp
import sqlite3


def _log(uri, i):
    from unlearn_repro.tracking import MlflowTracker
    MlflowTracker(uri, "test").log_run(f"run{i}", {"i": i, "nested": {"a": 1}}, {"m": float(i), "bad": float("nan")},
                                       {"stage": "unlearn", "seed": str(i)}, {"curve": [1.0, 2.0]})


def test_parallel_logging_keeps_every_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_log, args=(uri, i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    con = sqlite3.connect(tmp_path / "mlflow.db")
    assert con.execute("select count(*) from runs").fetchone()[0] == 4
    assert con.execute("select count(*) from params where key = 'nested.a'").fetchone()[0] == 4
    assert con.execute("select count(*) from metrics where key = 'bad'").fetchone()[0] == 0
    assert con.execute("select count(*) from metrics where key = 'curve'").fetchone()[0] == 8

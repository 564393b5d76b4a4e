"""Drill: `kill -9` of snakemake leaves its unlearning job running (an orphan). A rerun while it lives must
not mix its settings into the run: the rerun takes the run directory's lock over, the orphan, having lost
it, stops without writing, and a finished cycle is reused only if made with the run's own settings, checked
at every reuse (it was checked once: the rerun reused the orphan's cycle made with another lr)."""

import shutil
import subprocess
import sys

import pytest

from tests.unit.test_unlearning import setup  # noqa: F401  (the ci-profile unlearning fixture)
from unlearn_repro.config import Frozen
from unlearn_repro.io import DirLock, LockLost, read_json
from unlearn_repro.methods import METHODS
from unlearn_repro.pipeline import unlearning

# an orphan: holds the run directory's lock, and when told to go on, checks it before writing (as run() does)
ORPHAN = """
import sys
from pathlib import Path
from unlearn_repro.io import DirLock
with DirLock(sys.argv[1]) as lock:
    print("held", flush=True)
    sys.stdin.readline()
    lock.check()
    Path(sys.argv[1], "orphan-wrote").write_text("")
"""


def _with_lr(cfg, lr: float):
    raw = cfg.to_dict()
    raw["methods"]["gradient_ascent"]["lr"] = lr
    return Frozen(raw)


def test_the_rerun_takes_the_run_directory_over_and_the_orphan_stops_without_writing(setup, tmp_path, capsys):  # noqa: F811
    cfg, kw, _ = setup
    out = tmp_path / "run"
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert orphan.stdout.readline().strip() == "held"
        unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)  # the rerun, while the orphan lives
        assert f"took over from job pid {orphan.pid}" in capsys.readouterr().out
        _, err = orphan.communicate("go on\n", timeout=60)
    finally:
        orphan.kill()
    assert orphan.returncode != 0 and "lost its lock" in err and "stopping without writing" in err, err
    assert not (out / "orphan-wrote").exists() and (out / "run.json").exists()


def test_a_job_that_lost_its_lock_stops_without_writing(setup, tmp_path, monkeypatch):  # noqa: F811
    cfg, kw, _ = setup
    out = tmp_path / "run"
    impl = METHODS.get("gradient_ascent")
    original = type(impl).unlearn

    def taken_over(self, ctx, model, forget, retain, cycle):
        DirLock(out).__enter__()  # a rerun takes the directory over while this job computes
        return original(self, ctx, model, forget, retain, cycle)

    monkeypatch.setattr(type(impl), "unlearn", taken_over)
    with pytest.raises(LockLost, match="stopping without writing"):
        unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    assert not (out / "partial").exists() and not (out / "run.json").exists()


def test_every_reuse_of_a_finished_cycle_checks_its_settings(setup, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A cycle 2 with another lr appears in partial/ after the run started (as an orphan's would): the run
    must make its own cycle 2, not reuse that one."""
    cfg, kw, _ = setup
    other = unlearning.run(_with_lr(cfg, 2e-3), method="gradient_ascent", out_dir=tmp_path / "other", **kw)
    out = tmp_path / "run"
    impl = METHODS.get("gradient_ascent")
    original = type(impl).unlearn
    calls = []

    def orphan_writes_cycle2(self, ctx, model, forget, retain, cycle):
        calls.append(cycle)
        if cycle == 1:
            shutil.copytree(tmp_path / "other/checkpoints/cycle2", out / "partial/cycle2")
        return original(self, ctx, model, forget, retain, cycle)

    monkeypatch.setattr(type(impl), "unlearn", orphan_writes_cycle2)
    summary = unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    assert calls == [1, 2] and "made with other settings" in capsys.readouterr().out
    assert summary["cycles"][1] != other["cycles"][1]
    meta = read_json(out / "checkpoints/cycle2/meta.json")
    assert meta["params"] == read_json(out / "run.json")["params"] == summary["params"]


def test_a_cycle_overwritten_by_another_job_never_becomes_the_runs_checkpoint(setup, tmp_path, monkeypatch):  # noqa: F811
    """The orphan overwrites cycle 1 while the run computes cycle 2: the run fails rather than ship it."""
    cfg, kw, _ = setup
    unlearning.run(_with_lr(cfg, 2e-3), method="gradient_ascent", out_dir=tmp_path / "other", **kw)
    out = tmp_path / "run"
    impl = METHODS.get("gradient_ascent")
    original = type(impl).unlearn

    def orphan_overwrites_cycle1(self, ctx, model, forget, retain, cycle):
        if cycle == 2:
            shutil.rmtree(out / "partial/cycle1")
            shutil.copytree(tmp_path / "other/checkpoints/cycle1", out / "partial/cycle1")
        return original(self, ctx, model, forget, retain, cycle)

    monkeypatch.setattr(type(impl), "unlearn", orphan_overwrites_cycle1)
    with pytest.raises(RuntimeError, match="cycle1 were written with other settings while this job ran"):
        unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    assert not (out / "run.json").exists() and not (out / "checkpoints").exists()

"""benchmarks/shared_points.py on a hand-made points table and run folder: each factor-1 point is paired with
the study run it repeats (main cycle 1 with efficacy = -Delta exp, TOFU's kind from the optimizer, TDEC's
configuration by method, adapter and lr, memorization's extraction), other factors and unmatched entries are
left out, and a changed value is counted and fails the exit status."""

import csv
import importlib.util
import json

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("shared_points", ROOT / "benchmarks" / "shared_points.py")
shared_points = importlib.util.module_from_spec(spec)
spec.loader.exec_module(shared_points)

COLUMNS = ["benchmark", "entry", "method", "optimizer", "adapter", "seed", "setting", "factor", "step",
           "efficacy", "utility_loss", "delta_acc", "retain_accuracy", "forget_quality", "model_utility",
           "el", "ma", "ppl", "epochs", "epochs_run", "memorized", "runtime_s", "status"]  # fmt: skip


def _json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _points(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        w.writeheader()
        w.writerows(rows)


def _row(benchmark, entry, method, seed, setting, step, factor=1.0, adapter="full", optimizer="", **values):
    ids = dict(
        benchmark=benchmark, entry=entry, method=method, optimizer=optimizer, adapter=adapter, seed=seed
    )
    return {**ids, "setting": setting, "factor": factor, "step": step, **values}


def test_factor_one_points_pair_with_their_study_runs(tmp_path, capsys):
    run = tmp_path / "run"
    cycle = {"delta_exp": -0.25, "delta_test_nll": 0.0625, "delta_acc": 0.5, "retain_accuracy": 0.375}
    _json(run / "runs/fisher_removal/arc_easy/neo/seed0/metrics.json", {"cycles": [cycle]})
    _json(run / "tofu/runs/npo/SO/seed1.json", {"final": {"forget_quality": 0.125, "model_utility": 0.5}})
    _json(run / "tofu/runs/npo/FO/seed1.json", {"final": {"forget_quality": 0.75, "model_utility": 0.5}})
    sets = [{"set": 0, "el": 0.0, "ma": 0.25, "ppl": 12.5, "epochs": 3, "epochs_run": 3}]
    gd = {"method": "gradient_difference", "adapter": "full", "table": True}
    _json(run / "tdec/runs/neo/gd.json", {**gd, "lr": 2.5e-4, "sets": sets})
    _json(run / "tdec/runs/neo/gd_fast.json", {**gd, "lr": 1e-3, "sets": [{**sets[0], "ma": 0.5}]})
    _json(run / "memorization/runs/gradient_ascent/mt/neo/seed2/extraction.json", {"memorized": 3})
    task = {"efficacy": 0.25, "utility_loss": 0.0625, "delta_acc": 0.5, "retain_accuracy": 0.375}
    fr = ("tasks", "fisher_removal", "fisher_removal", 0, "arc_easy/neo", "gamma=5e-05")
    tdec = {"el": 0.0, "ma": 0.25, "ppl": 12.5, "epochs": 3.0, "epochs_run": 3.0}
    rows = [
        _row(*fr, **task),
        _row(*fr, factor=2.0, **{**task, "efficacy": 9.0}),  # another grid point: no study run repeats it
        _row(*fr, adapter="lora", **task),  # no main-study run of an adapter
        _row(
            "tofu",
            "soul_npo",
            "npo",
            1,
            "neo",
            "lr=0.001",
            optimizer="sophia",
            forget_quality=0.125,
            model_utility=0.5,
        ),  # fmt: skip
        _row("tdec", "gradient_difference", "gradient_difference", 0, "neo", "lr=0.00025", **tdec),
        _row("memorization", "gradient_ascent", "gradient_ascent", 2, "mt/neo", "lr=0.001", memorized=4.0),
    ]
    _points(tmp_path / "points.csv", rows)
    out = shared_points.compare(tmp_path / "points.csv", run)
    by = {(r["benchmark"], r["key"]): r for r in out}
    assert {r["benchmark"] for r in out} == {"tasks", "tofu", "tdec", "memorization"}
    assert len([r for r in out if r["benchmark"] == "tasks"]) == 4  # the factor-1 full-model point only
    assert by["tasks", "efficacy"]["identical"] and by["tasks", "efficacy"]["new"] == 0.25
    assert by["tofu", "forget_quality"]["new"] == 0.125  # Sophia: the SO run, not FO's 0.75
    assert by["tdec", "ma"]["new"] == 0.25 and by["tdec", "ma"]["identical"]  # gd at lr 2.5e-4, not 1e-3
    memorized = by["memorization", "memorized"]
    assert memorized["abs_diff"] == 1.0 and not memorized["identical"]
    assert sum(not r["identical"] for r in out) == 1
    stem = tmp_path / "cmp"
    assert shared_points.main([str(tmp_path / "points.csv"), str(run), "--out", str(stem)]) == 1
    text = stem.with_suffix(".md").read_text()
    assert "| tasks | 1 | 4 | 4 | – |" in text
    assert "| memorization | gradient_ascent | mt/neo | 2 | memorized | 4.0 | 3.0 |" in text


def test_two_points_tables_compare_their_common_points_but_the_times(tmp_path):
    """crossbench_small's table against crossbench's: the same entry, setting, seed and factor, every number
    but runtime and wall time; a point the old table lacks, and a status, are left out."""
    old = [
        _row(
            "tasks",
            "npo",
            "npo",
            0,
            "arc/neo",
            "lr=0.001",
            efficacy=0.5,
            utility_loss=0.25,
            runtime_s=3.0,
            status="ok",
        ),  # fmt: skip
        _row("tasks", "npo", "npo", 0, "arc/neo", "lr=0.002", factor=2.0, efficacy=0.75, utility_loss=0.5),
    ]
    new = [
        _row(
            "tasks", "npo", "npo", 0, "arc/neo", "lr=0.001", efficacy=0.5, utility_loss=0.125, runtime_s=4.0
        ),
        _row("tasks", "npo", "npo", 1, "arc/neo", "lr=0.001", efficacy=9.0),  # no seed 1 in the old table
    ]
    _points(tmp_path / "old.csv", old)
    _points(tmp_path / "new.csv", new)
    out = shared_points.compare_points(tmp_path / "old.csv", tmp_path / "new.csv")
    by = {r["key"]: r for r in out}
    assert {r["seed"] for r in out} == {"0"} and len(out) == 2  # the empty columns, the times left out
    assert set(by) == {"efficacy", "utility_loss"}
    assert by["efficacy"]["identical"] and by["utility_loss"]["abs_diff"] == 0.125
    assert shared_points.main([str(tmp_path / "old.csv"), str(tmp_path / "new.csv")]) == 1

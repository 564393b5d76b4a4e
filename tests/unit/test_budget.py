"""benchmarks/budget.py on hand-made jobs: a full run's jobs with one rule's replaced by a later measurement,
its packing factor and the projected wall time computed by hand."""

import csv
import importlib.util
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("budget", ROOT / "benchmarks" / "budget.py")
budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budget)

FIELDS = ("jobid", "rule", "start", "end", "wall_s", "cpu_s")


def _jobs(path, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(dict(zip(FIELDS, r)) for r in rows)
    return path


def test_a_replaced_rule_counts_at_its_measured_cost(tmp_path, capsys):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.smk").write_text("rule fit:\n    shell: 'x'\n")
    (rules / "privacy.smk").write_text("rule privacy_dp:\n    shell: 'x'\n")
    t = lambda s: f"2026-12-05T10:{s // 60:02d}:{s % 60:02d}"  # noqa: E731
    # full run: 4 one-minute jobs on 2 cores, 2 min wall (packing 1.0; 1.5 min would be 0.75)
    run = _jobs(
        tmp_path / "run.jobs.csv",
        [(1, "fit", t(0), t(60), 60, 50), (2, "privacy_dp", t(0), t(60), 60, 55),
         (3, "fit", t(60), t(120), 60, 50), (4, "privacy_dp", t(60), t(120), 60, 55)],
    )  # fmt: skip
    # the privacy study measured again with 3 seeds: 3 two-minute jobs replace its 2 jobs
    new = _jobs(tmp_path / "new.jobs.csv", [(k, "privacy_dp", t(0), t(120), 120, 100) for k in range(3)])
    out = tmp_path / "budget"
    budget.main([str(run), str(new), "--rules-dir", str(rules), "--out", str(out)])
    rows = {r["study"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert rows["privacy"]["jobs"] == "3" and float(rows["privacy"]["wall_min"]) == pytest.approx(6.0)
    assert rows["privacy"]["from"] == "new.jobs.csv" and rows["main"]["from"] == "full run"
    assert float(rows["main"]["cpu_min"]) == pytest.approx(100 / 60)
    md = out.with_suffix(".md").read_text()
    assert "8.0 min of job wall / 2 cores × 1.000 = **4.0 min**: fits the 120-minute budget" in md
    with pytest.raises(SystemExit):
        budget.main([str(run), str(tmp_path / "missing.jobs.csv")])
    assert "missing.jobs.csv: no such file" in capsys.readouterr().err

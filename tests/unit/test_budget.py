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


def test_the_full_run_that_followed_stands_beside_the_projection(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.smk").write_text("rule fit:\n    shell: 'x'\n")
    (rules / "privacy.smk").write_text("rule privacy_dp:\n    shell: 'x'\n")
    t = lambda s: f"2026-12-05T10:{s // 60:02d}:{s % 60:02d}"  # noqa: E731
    run = _jobs(tmp_path / "run.jobs.csv", [(1, "fit", t(0), t(60), 60, 50), (2, "fit", t(0), t(60), 60, 50)])
    new = _jobs(tmp_path / "new.jobs.csv", [(1, "privacy_dp", t(0), t(120), 120, 100)])
    # the full run: the two fits, then three privacy jobs of 90 s, the last ending at 4:30
    measured = _jobs(
        tmp_path / "full.jobs.csv",
        [(1, "fit", t(0), t(60), 60, 50), (2, "fit", t(0), t(60), 60, 50),
         (3, "privacy_dp", t(60), t(150), 90, 80), (4, "privacy_dp", t(60), t(150), 90, 80),
         (5, "privacy_dp", t(180), t(270), 90, 80)],
    )  # fmt: skip
    out = tmp_path / "budget"
    budget.main(
        [str(run), str(new), "--rules-dir", str(rules), "--out", str(out), "--measured", str(measured)]
    )
    rows = {r["study"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert rows["privacy"]["measured_jobs"] == "3" and float(rows["privacy"]["measured_wall_min"]) == 4.5
    assert rows["main"]["measured_jobs"] == "2" and float(rows["main"]["measured_wall_min"]) == 2.0
    md = out.with_suffix(".md").read_text()
    # projected: (2 + 2) min / 2 cores x packing 1.0 = 2.0 min; measured: the jobs' span, 4.5 min
    assert "= **2.0 min**" in md and "took **4.5 min** (+2.5 min against the projection)" in md
    assert "| privacy | 1 | 2.0 | 1.7 | new.jobs.csv | 3 | 4.5 |" in md

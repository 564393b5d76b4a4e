"""benchmarks/study_times.py on a hand-made run: jobs from a Snakemake log, wall time from benchmark files or
the log, CPU / RSS / first model step from the jobs' own logs, the DAG from inputs and outputs, and the
critical path computed by hand."""

import importlib.util
import sys
from datetime import datetime

import pytest

from tests.conftest import ROOT
from unlearn_repro import progress as progress_mod

spec = importlib.util.spec_from_file_location("study_times", ROOT / "benchmarks" / "study_times.py")
study_times = importlib.util.module_from_spec(spec)
sys.modules["study_times"] = study_times  # its dataclass looks itself up there
spec.loader.exec_module(study_times)

# a -> b -> c -> e and a -> d -> e; b writes a directory that c reads a file of; f starts and never finishes
LOG = """\
[Wed Nov 25 23:10:00 2026]
localrule a:
    output: data/x
    log: logs/a.log
    jobid: 1
    resources: tmpdir=/tmp
[Wed Nov 25 23:10:02 2026]
Finished jobid: 1 (Rule: a)
1 of 5 steps (20%) done

[Wed Nov 25 23:10:02 2026]
rule b:
    input: src/x.py, data/x
    output: results/m
    log: logs/b.log
    jobid: 2
    benchmark: bench/b.tsv
    wildcards: model=tiny
[Wed Nov 25 23:10:02 2026]
rule d:
    input: data/x
    output: results/d.json
    log: logs/d.log
    jobid: 4
[Wed Nov 25 23:10:12 2026]
Finished jobid: 2 (Rule: b)
[Wed Nov 25 23:10:12 2026]
rule c:
    input: results/m/config.json, data/x
    output: results/c.json
    jobid: 3
[Wed Nov 25 23:10:12 2026]
rule f:
    input: data/x
    output: results/f.json
    jobid: 6
[Wed Nov 25 23:10:14 2026]
Finished jobid: 4 (Rule: d)
[Wed Nov 25 23:10:16 2026]
Finished jobid: 3 (Rule: c)
[Wed Nov 25 23:10:16 2026]
localrule e:
    input: results/c.json, results/d.json
    output: report.md
    jobid: 5
[Wed Nov 25 23:10:17 2026]
Finished jobid: 5 (Rule: e)
"""
BENCH = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    "9.50\t0:00:09\t16.70\t20.63\t7.46\t9.18\t0.00\t0.00\t0.00\t0.06\n"
)


@pytest.fixture
def run(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "bench").mkdir()
    (tmp_path / "run.log").write_text(LOG)
    (tmp_path / "bench" / "b.tsv").write_text(BENCH)
    (tmp_path / "logs" / "b.log").write_text(
        "[config] ...\n"
        "[job] first model step 2.38 s (cpu 1.90 s) after the job started (train)\n[train] 6/6\n"
        "[job] first model step 7.00 s after the job started (score)\n"
        "[job] cpu 8.0 s, max rss 500 MB (forked by the job server)\n"
    )
    (tmp_path / "logs" / "d.log").write_text("[job] cpu 11.5 s, max rss 300 MB (forked by the job server)\n")
    (tmp_path / "logs" / "a.log").write_text(
        "[job] first model step 0.50 s after the job started (older format)\n"
    )
    jobs = study_times.parse_log(LOG)
    study_times.measure(jobs, tmp_path)
    return tmp_path, {j.rule: j for j in jobs}


def test_log_gives_the_finished_jobs_with_their_files():
    jobs = study_times.parse_log(LOG)
    assert [j.rule for j in jobs] == ["a", "b", "d", "c", "e"]  # f never finished
    b = jobs[1]
    assert (b.jobid, b.start) == ("2", datetime(2026, 11, 25, 23, 10, 2))
    assert b.end == datetime(2026, 11, 25, 23, 10, 12)
    assert b.input == ["src/x.py", "data/x"] and b.output == ["results/m"] and b.benchmark == ["bench/b.tsv"]
    assert b.wildcards == ["model=tiny"] and jobs[0].input == []


def test_wall_cpu_and_first_step_come_from_the_right_file(run):
    _, j = run
    assert j["b"].wall_s == 9.5  # the benchmark file, not the log's 10 s
    assert j["d"].wall_s == 12.0 and j["e"].wall_s == 1.0  # the log's timestamps
    assert (j["b"].cpu_s, j["b"].rss_mb, j["b"].first_step_s) == (8.0, 500.0, 2.38)  # the first of two
    assert j["b"].first_step_cpu_s == 1.9 and (j["a"].first_step_s, j["a"].first_step_cpu_s) == (0.5, None)
    assert (j["d"].cpu_s, j["d"].first_step_s) == (11.5, None)
    assert j["c"].cpu_s is None  # no log, no benchmark


def test_dependencies_include_files_under_an_output_directory(run):
    _, j = run
    deps = study_times.dependencies(list(j.values()))
    assert deps == {"1": set(), "2": {"1"}, "4": {"1"}, "3": {"2", "1"}, "5": {"3", "4"}}


def test_critical_path_is_the_longest_chain(run):
    _, j = run
    jobs = list(j.values())
    seconds, chain = study_times.critical_path(jobs, study_times.dependencies(jobs))
    # a 2 + b 9.5 + c 4 + e 1 = 16.5 beats a 2 + d 12 + e 1 = 15 (with the log's 10 s for b: 17)
    assert seconds == pytest.approx(16.5)
    assert [x.rule for x in chain] == ["a", "b", "c", "e"]


def test_report_writes_per_rule_tables(run, tmp_path):
    root, _ = run
    (root / "rules").mkdir()
    (root / "rules" / "unlearn.smk").write_text("rule a:\n    shell: ''\nrule b:\n    shell: ''\n")
    (root / "rules" / "tofu.smk").write_text("rule d:\n    shell: ''\n")
    md = study_times.report(root / "run.log", root, root / "out" / "times", root / "rules")
    rows = {r["rule"]: r for r in study_times.csv.DictReader((root / "out" / "times.csv").open())}
    assert rows["b"]["study"] == "main" and rows["d"]["study"] == "tofu" and rows["c"]["study"] == "other"
    assert float(rows["b"]["before_first_step_share"]) == pytest.approx(2.38 / 9.5)
    assert rows["d"]["before_first_step_share"] == "" and rows["e"]["on_critical_path"] == "1"
    assert list(rows) == ["d", "b", "c", "a", "e"]  # most wall time first
    assert "Critical path: 16.5 s (97 % of the run), 4 jobs" in md  # the run spans 23:10:00-23:10:17
    assert float(rows["b"]["before_first_step_cpu_share"]) == pytest.approx(1.9 / 8.0)
    assert rows["a"]["before_first_step_share"] == str(0.5 / 2) and rows["a"]["before_first_step_cpu_s"] == ""
    assert "| b | main | 1 | 9.5 | 8.0 | 500 | 25 % / 24 % (2.4 s / 1.9 s) | 1 |" in md
    assert "| **all** | | 5 | 28.5 | 19.5 | | 25 % / 24 % (2.9 s / 1.9 s) | 4 |" in md  # b's CPU only
    assert len((root / "out" / "times.jobs.csv").read_text().splitlines()) == 6
    assert "| main | 2 | 0.2 min | 0.2 min |" in md and "| other | 2 | 0.1 min | 0.1 min |" in md


def test_progress_logs_the_first_model_step_once_in_the_format_read_here(monkeypatch, capsys):
    monkeypatch.setattr(progress_mod, "_first_step_logged", False)
    monkeypatch.delenv(progress_mod.START_ENV, raising=False)
    list(progress_mod.progress(range(2), 2, "outside a job"))
    assert "first model step" not in capsys.readouterr().err  # no job start: nothing to log
    monkeypatch.setenv(progress_mod.START_ENV, repr(datetime.now().timestamp() - 3.0))
    list(progress_mod.progress(range(2), 2, "train"))
    list(progress_mod.progress(range(2), 2, "score"))
    lines = [x for x in capsys.readouterr().err.splitlines() if "first model step" in x]
    assert len(lines) == 1 and lines[0].endswith("(train)")
    wall, cpu = map(float, study_times.FIRST_STEP.search(lines[0]).groups())
    assert 3.0 <= wall < 60 and 0 < cpu


def test_rules_map_to_their_study():
    studies = study_times.rule_studies(ROOT / "rules")
    assert studies["unlearn"] == studies["tokenizer"] == "main"
    assert studies["tofu_model"] == "tofu" and studies["onion"] == "discussions"
    assert studies["all"] == "workflow"
    assert studies["crossbench_small_tasks"] == "crossbench_small"  # `use rule crossbench_tasks as ...`
    assert studies["crossbench_tasks"] == "crossbench"


def test_compare_gives_each_study_before_and_after(run, tmp_path):
    """The per-study comparison against hand sums: this run (main: a 2 s + b 9.5 s, wall span 00-12) against
    an earlier one whose main jobs took twice as long and whose tofu job took 4 s."""
    root, _ = run
    (root / "rules").mkdir()
    (root / "rules" / "unlearn.smk").write_text("rule a:\n    shell: ''\nrule b:\n    shell: ''\n")
    (root / "rules" / "tofu.smk").write_text("rule d:\n    shell: ''\n")
    study_times.report(root / "run.log", root, root / "out" / "times", root / "rules")
    before = root / "before.jobs.csv"
    before.write_text(
        "jobid,rule,wildcards,start,end,wall_s,cpu_s\n"
        "1,a,,2026-11-20T10:00:00,2026-11-20T10:00:04,4.0,3.0\n"
        "2,b,,2026-11-20T10:00:04,2026-11-20T10:00:23,19.0,\n"
        "3,d,,2026-11-20T10:00:04,2026-11-20T10:00:08,4.0,2.0\n"
    )
    md = study_times.compare(before, root / "out" / "times", study_times.rule_studies(root / "rules"))
    rows = {r["study"]: r for r in study_times.csv.DictReader((root / "out" / "times.compare.csv").open())}
    main = rows["main"]
    assert (main["jobs_before"], main["jobs_after"]) == ("2", "2")
    assert float(main["wall_s_ratio"]) == pytest.approx(11.5 / 23.0)
    assert float(main["cpu_s_before"]) == 3.0 and float(main["cpu_s_after"]) == 8.0  # a's CPU, b's CPU
    assert float(main["span_s_before"]) == 23.0 and float(main["span_s_after"]) == 12.0
    assert rows["other"]["jobs_before"] == "" and rows["other"]["wall_s_ratio"] == ""  # only after
    assert list(rows)[-1] == "all" and float(rows["all"]["span_s_after"]) == 17.0
    assert "| tofu | 1 / 1 | 0.1 / 0.2 (3.00) |" in md and "| **all** | 3 / 5 |" in md
    per_rule = study_times.csv.DictReader((root / "out" / "times.compare_rules.csv").open())
    per_rule = {r["study"]: r for r in per_rule}  # a rule (and its method, where its jobs have one)
    assert float(per_rule["a"]["wall_s_before"]) == 4.0 and float(per_rule["d"]["wall_s_before"]) == 4.0
    assert per_rule["all"]["jobs_before"] == "3"


def test_a_rules_jobs_are_told_apart_by_their_method():
    job = {
        "rule": "ablation_newton",
        "wildcards": "comparison=removal, ablation_method=fisher_removal, seed=0",
    }
    assert study_times.rule_and_method(job) == "ablation_newton (fisher_removal)"
    assert study_times.rule_and_method({"rule": "splits", "wildcards": "dataset=piqa"}) == "splits"


def test_a_missing_before_file_is_named_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        study_times.main([str(tmp_path / "run.log"), "--before", str(tmp_path / "old.jobs.csv")])
    assert "--before " + str(tmp_path / "old.jobs.csv") + ": no such file" in capsys.readouterr().err

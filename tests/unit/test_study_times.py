"""benchmarks/study_times.py: a Snakemake log's jobs (start, end, rule) and each rule's study."""
import importlib.util
from datetime import datetime

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("study_times", ROOT / "benchmarks" / "study_times.py")
study_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study_times)

LOG = """\
[Wed Nov 25 23:10:40 2026]
localrule tokenizer:
    input: src/unlearn_repro/config.py
    jobid: 7
    resources: tmpdir=/tmp, gpu=0
[Wed Nov 25 23:10:41 2026]
rule tofu_model:
    output: results/embedded/tofu/models/base
    jobid: 9
[Wed Nov 25 23:11:40 2026]
Finished jobid: 7 (Rule: tokenizer)
1 of 3 steps (33%) done
[Wed Nov 25 23:13:41 2026]
Finished jobid: 9 (Rule: tofu_model)
"""


def test_jobs_pair_each_start_with_its_end(tmp_path):
    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    jobs = study_times.jobs(log)
    assert [(rule, (end - start).total_seconds()) for rule, start, end in jobs] == [("tokenizer", 60.0),
                                                                                   ("tofu_model", 180.0)]
    assert jobs[0][1] == datetime(2026, 11, 25, 23, 10, 40)


def test_rules_map_to_their_study():
    studies = study_times.rule_studies(ROOT / "rules")
    assert studies["unlearn"] == studies["tokenizer"] == "main"
    assert studies["tofu_model"] == "tofu" and studies["onion"] == "discussions"

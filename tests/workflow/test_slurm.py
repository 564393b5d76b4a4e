"""The SLURM profile plans the paper's DAG and passes the executor plugin's own checks (no submission): every
job that runs a model asks for a GPU on the GPU partition, every other job for none on the CPU partition with
the memory and time of its kind; no executor-managed option in slurm_extra. And the profiles do not fight:
Snakemake's workflow profile (profiles/default, loaded on top of any --profile) changes nothing they set."""

import re
import subprocess
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import BIN, ENV, ROOT

PROFILES = ROOT / "profiles"


class Resources(SimpleNamespace):
    """Job resources as the plugin reads them (`.get` and attributes)."""

    def get(self, key, default=None):
        return getattr(self, key, default)


def _value(v: str):
    return int(v) if v.isdigit() else v


def _planned_jobs(*targets: str) -> dict[str, dict]:
    """rule -> the resources of its first planned job in `snakemake --profile profiles/slurm -n`
    (the paper DAG)."""
    r = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", *targets],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        line = re.search(r"^\s*resources: (.*)$", block, re.M)
        if rule and line:
            jobs.setdefault(
                rule.group(1),
                {k: _value(v) for k, v in (kv.split("=", 1) for kv in line.group(1).split(", "))},
            )
    return jobs


@pytest.fixture(scope="module")
def paper_jobs():
    pytest.importorskip("snakemake_executor_plugin_slurm")
    jobs = _planned_jobs("all", "crossbench")  # the default target and the study outside it
    for target in ("all", "crossbench"):
        jobs.pop(target)  # a target's own rule: no shell, never submitted
    return jobs


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _partitions() -> tuple[str, str]:
    """(GPU partition, CPU partition) as the SLURM profile names them."""
    slurm = _profile("slurm")
    cpu = dict(kv.split("=", 1) for kv in slurm["default-resources"])["slurm_partition"]
    return slurm["set-resources"]["base_model"]["slurm_partition"], cpu


def _sbatch(res: dict) -> str:
    """The sbatch line the plugin would submit for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=Resources(**res), threads=1)
    params = {
        "run_uuid": "x",
        "slurm_logfile": "x.log",
        "comment_str": "rule",
        "workdir": None,
        "account": f"-A {res['slurm_account']}",
        "partition": f"-p {res['slurm_partition']}",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_each_job_goes_to_its_partition_with_its_resources(paper_jobs):
    """GPU rules (gpu=1 in the paper profile: they run a model) on the GPU partition with --gpus=1; the
    CPU-only ones (data, splits, collects, reports) on the CPU partition, sized per kind
    (rules/common.smk)."""
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    gpu_partition, cpu_partition = _partitions()
    assert gpu_partition != cpu_partition
    gpu_rules = {rule for rule, res in paper_jobs.items() if res["gpu"] == 1}
    assert {"base_model", "finetune", "unlearn", "evaluate", "tofu_unlearn", "tdec_run"} <= gpu_rules
    assert {"prepare_data", "splits", "collect", "main_report", "verdicts"} <= set(paper_jobs) - gpu_rules
    # every set-resources entry names a GPU rule of the DAG (no stale or misspelt rule)
    assert set(_profile("slurm")["set-resources"]) == gpu_rules
    for rule, res in paper_jobs.items():
        validate_slurm_extra(SimpleNamespace(resources=Resources(**res)))  # raises on --gres / --gpus there
        sbatch = _sbatch(res)
        if rule in gpu_rules:
            assert res["slurm_partition"] == gpu_partition and sbatch.endswith(" --gpus=1"), (rule, sbatch)
            assert "--mem 64000" in sbatch and "-t 720" in sbatch, (rule, sbatch)
        else:
            assert res["slurm_partition"] == cpu_partition and "--gpus" not in sbatch, (rule, sbatch)
            assert res["mem_mb"] <= 16000 and res["runtime"] <= 120, (rule, res)
    sizes = {
        rule: (res["mem_mb"], res["runtime"]) for rule, res in paper_jobs.items() if rule not in gpu_rules
    }
    assert sizes["splits"] == sizes["collect"] == (2000, 15) and sizes["main_report"] == (4000, 30)
    assert sizes["prepare_data"] == sizes["memorization_data"] == (16000, 120)


def test_the_plugin_refuses_gres_in_slurm_extra(paper_jobs):
    """The validator the test above runs is live: the old profile's GRES in slurm_extra is refused."""
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
    from snakemake_interface_common.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match="not allowed in the 'slurm_extra'"):
        validate_slurm_extra(
            SimpleNamespace(resources=Resources(**paper_jobs["unlearn"], slurm_extra="'--gres=gpu:1'"))
        )


RUN_KEYS = {
    "cores",
    "latency-wait",
    "jobs",
    "executor",
    "resources",
    "default-resources",
    "set-resources",
    "config",
}


def _args(*argv):
    """The options Snakemake itself resolves from its profiles for this command line (run in
    the repo root)."""
    from snakemake.cli import parse_args

    return parse_args(list(argv))[1]


@pytest.mark.parametrize("profile", ["paper", "slurm"])
def test_the_workflow_profile_changes_nothing_a_profile_sets(profile, monkeypatch):
    """Snakemake loads profiles/default as the workflow profile on top of --profile, and per key it wins: it
    must hold no run-specific key (cores: all capped SLURM's cpus-per-task at the login node's cores,
    latency-wait 5 replaced 30 / 60), and agree on the keys both set. Each profile is complete on its own."""
    monkeypatch.chdir(ROOT)
    default, own = _profile("default"), _profile(profile)
    assert not RUN_KEYS & set(default), RUN_KEYS & set(default)
    assert {k: default[k] for k in set(default) & set(own)} == {k: own[k] for k in set(default) & set(own)}
    both, alone = (
        _args("--profile", f"profiles/{profile}"),
        _args("--profile", f"profiles/{profile}", "--workflow-profile", "none"),
    )
    for key in ("cores", "latency_wait", "jobs", "executor", "keep_going", "rerun_incomplete"):
        assert getattr(both, key) == getattr(alone, key), key
    assert both.latency_wait == own["latency-wait"] and alone.keep_going is True
    if profile == "slurm":  # no cores cap: a job's threads become its --cpus-per-task
        assert both.cores is None and both.executor == "slurm"

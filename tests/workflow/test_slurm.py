"""The SLURM profile plans the paper's DAG and passes the executor plugin's own checks (no submission): no
executor-managed option in slurm_extra, and the rules' `gpu` resource becomes `--gpus`."""
import re
import subprocess
from types import SimpleNamespace

import pytest

from tests.conftest import BIN, ENV, ROOT

GPU_TARGET = "results/paper/models/gpt-neo-125m/pretrained"


class Resources(SimpleNamespace):
    """Job resources as the plugin reads them (`.get` and attributes)."""

    def get(self, key, default=None):
        return getattr(self, key, default)


def _dry_run(target: str) -> str:
    r = subprocess.run([str(BIN / "snakemake"), "--profile", "profiles/slurm", "-n", target], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    return out


def _planned_resources(target: str) -> dict:
    out = _dry_run(target)
    line = re.search(r"^\s*resources: (.*)$", out, re.M).group(1)
    pairs = dict(kv.split("=", 1) for kv in line.split(", "))
    return {k: int(v) if v.isdigit() else v for k, v in pairs.items()}


def test_slurm_profile_plans_the_paper_dag_and_passes_the_plugin_checks():
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_interface_common.exceptions import WorkflowError
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    res = _planned_resources(GPU_TARGET)
    assert res["gpu"] == 1 and res["slurm_account"] and res["slurm_partition"]
    job = SimpleNamespace(resources=Resources(**res))
    validate_slurm_extra(job)  # raises WorkflowError on --gres / --gpus / --account ... in slurm_extra
    assert set_gres_string(job).strip() == "--gpus=1"
    # the validator is live: the old profile's GRES in slurm_extra is refused
    with pytest.raises(WorkflowError, match="not allowed in the 'slurm_extra'"):
        validate_slurm_extra(SimpleNamespace(resources=Resources(**res, slurm_extra="'--gres=gpu:1'")))
    # a CPU job asks for no GPU
    cpu = _planned_resources("data/processed/paper/piqa/meta.json")
    assert cpu["gpu"] == 0 and set_gres_string(SimpleNamespace(resources=Resources(**cpu))) == ""


"""The whole DAG on the `ci` profile in a temp dir: outputs, tables, figures and the MLflow runs."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _workspace(tmp: Path, mirror: Path) -> Path:
    for name in ("Snakefile", "rules", "schemas", "profiles", "environment.yml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "ci"
    params["data"]["mirror_dir"] = str(mirror)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp / "src").symlink_to(ROOT / "src")
    return tmp


def _snakemake(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mirror):
    ws = _workspace(tmp_path_factory.mktemp("pipeline"), mirror)
    run = _snakemake(ws)
    if run.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in sorted((ws / "logs").rglob("*.log"))[-5:])
        pytest.fail(f"snakemake failed:\n{run.stderr[-4000:]}\n{logs}")
    return ws


def test_outputs_and_tables(pipeline):
    tables = pipeline / "results" / "ci" / "main" / "tables"
    for name in ("main_arc_easy", "main_lambada", "ranking", "runtime", "extended_cycles"):
        assert (tables / f"{name}.csv").stat().st_size > 0
        assert (tables / f"{name}.md").read_text().count("|") > 10
    for fig in ("runtime.png", "extended_cycles_tiny-gpt-neo.png"):
        assert (pipeline / "results" / "ci" / "main" / "figures" / fig).read_bytes()[:4] == b"\x89PNG"
    main = pd.read_csv(tables / "main_arc_easy.csv")
    assert set(main["method"]) == {"retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting",
                                   "gradient_difference", "inverted_hinge", "npo", "preference"}
    assert set(main["samples"]) == {16, 32}
    in_paper = main["method"].isin(["retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting"])
    assert main.loc[in_paper, "paper"].notna().all()      # every paper method's cell has its published number
    assert main.loc[~in_paper, "paper"].isna().all()      # the new methods have none (shown as —)
    ext = pd.read_csv(tables / "extended_cycles.csv")
    assert ext["cycle"].max() == 3              # lambada x tiny-gpt-neo runs to max_cycles
    summary = json.loads((pipeline / "results" / "ci" / "main" / "summary" / "metrics.json").read_text())
    assert "fisher_removal.cycle1.delta_exp" in summary
    # checkpoints of the unlearning cycles are temporary: removed once evaluated
    assert not list((pipeline / "results" / "ci" / "runs").rglob("checkpoints"))
    meta = json.loads((pipeline / "results/ci/models/tiny-opt/arc_easy/finetuned/meta.json").read_text())
    assert meta["git_commit"] and meta["data_hashes"] and meta["params"]["finetune"]["epochs"] == 1


def test_mlflow_runs(pipeline):
    con = sqlite3.connect(pipeline / "mlflow.db")
    tags = pd.read_sql("select r.run_uuid, t.key, t.value from runs r join tags t on r.run_uuid = t.run_uuid", con)
    wide = tags.pivot(index="run_uuid", columns="key", values="value")
    counts = wide["stage"].value_counts().to_dict()
    # 2 models pretrained, 2x2 fine-tuned and base-evaluated, 9 methods x 2 x 2 unlearned and evaluated
    assert counts == {"pretrain": 2, "finetune": 4, "evaluate": 40, "unlearn": 36}
    assert wide["pipeline_run"].nunique() == 1 and set(wide["profile"]) == {"ci"}
    experiments = set(pd.read_sql("select name from experiments", con)["name"])
    assert "unlearn-repro-ci" in experiments      # one experiment per profile
    for key in ("dataset", "model", "method", "seed", "git_commit"):
        assert wide.loc[wide["stage"] == "unlearn", key].notna().all()
    n_metrics = pd.read_sql("select count(*) as n from metrics", con)["n"][0]
    assert n_metrics > 100


def test_profiles_do_not_touch_each_others_outputs(pipeline):
    """Another profile's job writes under its own roots: afterwards the ci outputs are all up to date."""
    other = _snakemake(pipeline, "--config", "profile=embedded", "data/processed/embedded/arc_easy/meta.json")
    assert other.returncode == 0, other.stderr[-3000:]
    assert (pipeline / "data/processed/embedded/arc_easy/train.jsonl").exists()
    dry = _snakemake(pipeline, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def test_rerun_is_noop_and_param_change_reruns_only_that_method(pipeline):
    dry = _snakemake(pipeline, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["methods"]["gradient_ascent"]["lr"] = 1.0e-3
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry = _snakemake(pipeline, "-n", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert "unlearn" in out and "report" in out
    jobs = _snakemake(pipeline, "-n", "--printshellcmds")
    shell = jobs.stdout + jobs.stderr
    assert "--method gradient_ascent" in shell
    for other in ("fisher_removal", "fisher_forgetting", "finetune ", "retrain", "gradient_difference", "npo"):
        assert f"--method {other}" not in shell
    assert "base-model" not in shell and " finetune --model" not in shell


"""The pipeline is open: a method is one file plus one params block (a loss-based one then fits TOFU, TDEC,
privacy and memorization as well as the main study), and the jobs compute with exactly the config Snakemake
resolved (--configfile and --config included)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import BIN, ENV, pipeline_workspace

THROWAWAY = '''"""A throw-away method: scales every weight by (1 - shrink)."""
import torch

from unlearn_repro.methods.base import POS_NUM, Method, object_schema, register


@register
class Throwaway(Method):
    name, label = "throwaway", "Throw-Away Shrink"
    sections = ("fisher",)
    schema = object_schema(shrink=POS_NUM)

    def unlearn(self, ctx, model, forget, retain, cycle):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1 - self.hp(ctx.cfg).shrink)
        return model, {"diverged": False}
'''


HALF_ASCENT = '''"""A throw-away loss-based method: half gradient ascent's forget term, plus a retain term."""
from unlearn_repro.methods.base import register
from unlearn_repro.methods.loss_based import GAMMA, LossMethod, loss_schema
from unlearn_repro.train import negated_lm_loss


def _half(model, batch):
    return 0.5 * negated_lm_loss(model, batch)


@register
class HalfAscent(LossMethod):
    name, label = "half_ascent", "Half Ascent"
    schema = loss_schema(**GAMMA)
    needs_retain = True

    def forget_term(self, ctx, model):
        return _half
'''


def _run(ws: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(ws / "src")}
    env.pop("UNLEARN_CONFIG", None)
    r = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    return r


RECORDED_CYCLE_SIZE = 10  # not the ci profile's unlearn.cycle_size (16): the report reads the runs' record


def _fake_metrics(path: Path, method: str, dataset: str, model: str, cycles: int, shift: float) -> None:
    rows = [
        {
            "cycle": k,
            "n_forgotten": RECORDED_CYCLE_SIZE * k,
            "runtime_s": 1.0 + shift,
            "diverged": False,
            "fisher_deviation": None,
            "accuracy": 0.5,
            "base_accuracy": 0.5,
            "delta_acc": -shift * k,
            "test_nll": 4 + shift * k,
            "delta_test_nll": shift * k,
            "exposure": 3.0,
            "base_exposure": 3.5,
            "delta_exp": -0.1 * k - shift,
        }
        for k in range(1, cycles + 1)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"dataset": dataset, "model": model, "method": method, "seed": 0, "params": {}, "cycles": rows}
        )
    )


def test_a_throwaway_method_flows_through_dag_metrics_and_report(tmp_path, mirror):
    ws = pipeline_workspace(tmp_path, mirror, copy_src=True)
    (ws / "src/unlearn_repro/methods/throwaway.py").write_text(THROWAWAY)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["methods"]["throwaway"] = {"shrink": 0.01}
    params["profiles"]["ci"]["methods"]["enabled"] = ["gradient_ascent", "throwaway"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the DAG plans its jobs, with its declared params (its block, unlearn, fisher) as rerun triggers
    dry = _run(ws, str(BIN / "snakemake"), "-n", "--printshellcmds", "--cores", "1")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert (
        "unlearn --method throwaway --dataset arc_easy" in out and "results/ci/metrics/throwaway.csv" in out
    )
    # a bad value in its block is caught by the schema its file declares
    params["methods"]["throwaway"] = {"shrink": -1}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = _run(ws, str(BIN / "snakemake"), "-n", "--cores", "1")
    assert bad.returncode != 0 and "methods.throwaway.shrink" in bad.stdout + bad.stderr
    params["methods"]["throwaway"] = {"shrink": 0.01}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    from unlearn_repro.methods import METHODS

    hp = METHODS.get("gradient_ascent")  # noqa: F841 (the test process itself does not know `throwaway`)
    assert "throwaway" not in METHODS
    # the per-method metrics table and the report
    cli = [sys.executable, "-m", "unlearn_repro", "--params", "params.yaml", "--profile", "ci"]
    collected = []
    for method, shift in (("gradient_ascent", 0.5), ("throwaway", 0.1)):
        files = []
        for dataset in ("arc_easy", "lambada"):
            for model in ("tiny-gpt-neo", "tiny-opt"):
                f = ws / f"results/runs/{method}/{dataset}/{model}/seed0/metrics.json"
                _fake_metrics(
                    f,
                    method,
                    dataset,
                    model,
                    3 if (dataset, model) == ("lambada", "tiny-gpt-neo") else 2,
                    shift,
                )
                files.append(str(f))
        r = _run(ws, *cli, "collect", "--out", f"results/metrics/{method}.csv", *files)
        assert r.returncode == 0, r.stderr[-2000:]
        collected.append(f"results/metrics/{method}.csv")
    assert set(pd.read_csv(ws / "results/metrics/throwaway.csv")["method"]) == {"throwaway"}
    r = _run(ws, *cli, "main-report", "--out", "results/main", *collected)
    assert r.returncode == 0, r.stderr[-3000:]
    ranking = (ws / "results/main/tables/ranking.md").read_text()
    assert "Throw-Away Shrink" in ranking and "Gradient Ascent" in ranking
    main_table = (ws / "results/main/tables/main_arc_easy.md").read_text()
    assert "Throw-Away Shrink" in main_table and "NEO 20 Δacc" in main_table  # cycle 2: 2 x 10 samples
    assert (ws / "results/main/figures/runtime.png").read_bytes()[:4] == b"\x89PNG"


def test_a_new_loss_based_method_reaches_every_study_it_fits(tmp_path, mirror):
    """Its file and its params block are the only edits: the schema's study lists come from the registry, and
    each study gives it what its declaration asks for. The studies pick it like any other method (a user's
    config file here): TOFU's learning rates, a TDEC configuration, a privacy grid of its step size."""
    ws = pipeline_workspace(tmp_path, mirror, copy_src=True)
    (ws / "src/unlearn_repro/methods/half_ascent.py").write_text(HALF_ASCENT)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["methods"]["half_ascent"] = {"lr": 1.0e-3, "optimizer": "adamw", "gamma": 1.0}
    params["profiles"]["ci"]["methods"]["enabled"] = ["gradient_ascent", "half_ascent"]
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    studies = {
        "tofu": {"methods": ["half_ascent"], "lr": {"half_ascent": {"FO": 1.0e-3, "SO": 1.0e-3}}},
        "tdec": {
            "enabled": ["flora_ihl", "half_lora"],
            "configs": {"half_lora": {"method": "half_ascent", "adapter": "lora", "lr": 4.0e-3}},
        },
        "privacy": {"methods": ["half_ascent"], "grids": {"half_ascent": {"values": [1e-3, 3e-3]}}},
        "memorization": {"methods": ["half_ascent"]},
    }
    (ws / "studies.yaml").write_text(yaml.safe_dump({"profiles": {"ci": studies}}))
    dry = _run(
        ws,
        str(BIN / "snakemake"),
        "-n",
        "--printshellcmds",
        "--cores",
        "1",
        "--configfile",
        "params.yaml",
        "studies.yaml",
    )
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    for job in (
        "unlearn --method half_ascent --dataset arc_easy",
        "tofu-unlearn --method half_ascent --kind SO",
        "tdec-run --model tiny-gpt-neo --run half_lora",
        "privacy-unlearn --method half_ascent",
        "memorization-unlearn --method half_ascent",
    ):
        assert job in out, f"no job `{job}` in the plan:\n{out[-3000:]}"


def test_configfile_values_reach_the_jobs_and_trigger_reruns(tmp_path, mirror):
    ws = pipeline_workspace(tmp_path, mirror, copy_src=False)
    target = "results/ci/splits/arc_easy/seed0.json"
    snake = [str(BIN / "snakemake"), "--cores", "1"]
    first = _run(ws, *snake, target)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert json.loads((ws / target).read_text())["cycle_size"] == 16  # the ci profile's value
    (ws / "override.yaml").write_text(yaml.safe_dump({"profiles": {"ci": {"unlearn": {"cycle_size": 12}}}}))
    dry = _run(ws, *snake, "-n", target, "--configfile", "params.yaml", "override.yaml")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0 and "rule splits" in out and "Params have changed" in out, out[-3000:]
    second = _run(ws, *snake, target, "--configfile", "params.yaml", "override.yaml")
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert json.loads((ws / target).read_text())["cycle_size"] == 12
    log = (ws / "logs/ci/splits/arc_easy/seed0.log").read_text()
    assert "[splits] cycle_size 12" in log and "resolved by Snakemake" in log
    # --config works the same way, and the same bad value gets the same message as in params.yaml
    bad = _run(ws, *snake, "-n", target, "--config", "threads=0")
    assert bad.returncode != 0 and "key 'threads' = 0 is invalid" in bad.stdout + bad.stderr


def test_a_mistyped_mirror_stops_the_dag_and_keeps_prepared_data(tmp_path, mirror):
    ws = pipeline_workspace(tmp_path, mirror, copy_src=False)
    target = "data/processed/ci/arc_easy/meta.json"
    first = _run(ws, str(BIN / "snakemake"), "--cores", "1", target)
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    before = {p.name: p.stat().st_mtime_ns for p in (ws / "data/processed/ci/arc_easy").iterdir()}
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["data"]["mirror_dir"] = str(mirror) + "-typo"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    bad = _run(ws, str(BIN / "snakemake"), "--cores", "1", target)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "offline data mirror is missing" in out and "data.mirror_dir" in out, out[
        -3000:
    ]
    assert {p.name: p.stat().st_mtime_ns for p in (ws / "data/processed/ci/arc_easy").iterdir()} == before

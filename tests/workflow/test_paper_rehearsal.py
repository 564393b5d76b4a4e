"""A CPU rehearsal of the paper path, as a researcher with a GPU would run it: `profiles/paper`, hub models
given as local folders in the hub's layout (`model_sources`), data in the hub's formats (`data.hub_paths`),
the Hugging Face cache offline, small caps through `--configfile`; one Fisher Removal and one gradient ascent
cycle through Snakemake, and one point of the cross-paper benchmark."""

import json
import re

import pytest
import yaml

from tests import hub_fixtures as fx

pytestmark = pytest.mark.integration
RUNS = {("fisher_removal", "gpt-neo-125m"), ("gradient_ascent", "opt-125m")}
XB_POINT = "results/paper/crossbench/points/tasks/piqa/opt-125m/soul_gd/seed0.json"


def test_paper_profile_runs_on_local_models_and_hub_format_data(tmp_path):
    ws = fx.paper_workspace(tmp_path)
    texts = [
        f"How do I fix loose screw number {i}? Tighten screw {i} with a screwdriver. The applicant"
        for i in range(40)
    ]
    # a user's configfile with top-level keys, as docs/paper-scale.md shows: they win over params.yaml's
    # `paper` block (which sets device: cuda and fisher.max_memory_gb: 72; a lost key would fail this run
    # on a CPU)
    overrides = {
        # auto: cuda where there is one; here the CPU, yet each GPU job still takes its own slot (gpus.py)
        "device": "auto",
        "seeds": [0],
        "model_sources": {
            "gpt-neo-125m": str(fx.local_model(tmp_path / "neo", "gpt_neo", texts)),
            "opt-125m": str(fx.local_model(tmp_path / "opt", "opt", texts)),
        },
        "data": {
            "tasks": ["piqa"],
            "reference_corpus": "echr",
            "max_train": 24,
            "max_test": 8,
            "max_length": 32,
            "hub_paths": {
                "piqa": str(fx.piqa(tmp_path / "piqa", n_train=30, n_val=8)),
                "echr": str(fx.echr(tmp_path / "echr", hearings=4)),  # the crossbench point's exposure
            },
        },
        "finetune": {"epochs": 1, "lr": 1.0e-3, "batch_size": 8},
        "unlearn": {
            "cycle_size": 8,
            "table_cycles": [1],
            "max_cycles": 1,
            "forget_batch_size": 8,
            "extended_datasets": ["piqa"],
        },
        "methods": {"enabled": ["gradient_ascent", "fisher_removal"]},
        "fisher": {"num_grads": 8, "block_size": 16, "chunk": 4, "max_memory_gb": 1},
        "discussions": {"dataset": "piqa"},
        # the cross-paper benchmark's paper path: one Sophia entry on the main study's setting (issue 25)
        "crossbench": {"tasks": {"datasets": ["piqa"], "models": ["opt-125m"]}, "factors": [1.0]},
        "tracking": {"enabled": False},
    }
    (ws / "rehearsal.yaml").write_text(yaml.safe_dump(overrides))
    targets = [f"results/paper/runs/{m}/piqa/{model}/seed0/run.json" for m, model in sorted(RUNS)]
    targets.append("data/processed/paper/echr/meta.json")
    targets.append(XB_POINT)
    out, wall = fx.run_paper_offline(ws, tmp_path, targets, gpus=2)
    print(f"paper-path rehearsal: {wall:.0f}s")
    # the hub models came from their local folders, without WikiText-2 and without a network
    assert "rule tokenizer" not in out and "wikitext2" not in out
    for model in ("gpt-neo-125m", "opt-125m"):
        meta = json.loads((ws / f"results/paper/models/{model}/pretrained/meta.json").read_text())
        assert meta["source"] == overrides["model_sources"][model]
    data = json.loads((ws / "data/processed/paper/piqa/meta.json").read_text())
    assert data["source"] == "hub" and data["origin"].endswith("piqa") and data["rows"]["train"] == 24
    assert json.loads((ws / "data/processed/paper/echr/meta.json").read_text())["rows"]["test"] == 18
    for method, model in RUNS:
        run = json.loads((ws / f"results/paper/runs/{method}/piqa/{model}/seed0/run.json").read_text())
        assert (
            run["n_cycles"] == 1
            and run["cycles"][0]["n_forget"] == 8
            and not run["cycles"][0].get("diverged")
        )
    log = (ws / "logs/paper/unlearn/fisher_removal/piqa/gpt-neo-125m/seed0.log").read_text()
    assert "resolved by Snakemake" in log and "profile paper" in log
    # the Fisher layout the plan chose: one line at the job's start, and in run.json (docs/paper-scale.md)
    layout = json.loads(
        (ws / "results/paper/runs/fisher_removal/piqa/gpt-neo-125m/seed0/run.json").read_text()
    )["cycles"][0]["fisher_layout"]
    assert (layout["chunk"], layout["storage"], layout["shards"]) == (4, "float32", 1)
    assert (
        len(re.findall(r"^\[fisher\] layout: chunk 4, storage float32, 1 shard\(s\) on ", log, re.M)) == 1
    ), log
    # --resources gpu=2: every GPU job ran pinned to one of the two devices (CUDA_VISIBLE_DEVICES)
    for rule in ("base_model", "finetune", "unlearn"):
        for f in (ws / "logs/paper" / rule).rglob("*.log"):
            assert re.search(
                r"\[gpu\] this job runs on GPU [01] \(CUDA_VISIBLE_DEVICES=[01]\)", f.read_text()
            ), f
    assert "[gpu]" not in (ws / "logs/paper/prepare_data/piqa.log").read_text()
    [point] = json.loads((ws / XB_POINT).read_text())["points"]
    assert point["values"] == {"lr": 5e-5} and point["premise"]["clip_rate"] >= 0  # Sophia fed and stepping
    assert not point["diverged"] and point["efficacy"] is not None

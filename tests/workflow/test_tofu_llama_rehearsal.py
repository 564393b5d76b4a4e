"""A CPU rehearsal of the paper profile's TOFU study as SOUL ran it: Llama-2-7B-chat fine-tuned on TOFU and
its retain model, here two-layer Llamas built from a LlamaConfig and saved in the hub's layout
(`model_sources`), TOFU in the hub's format (`data.hub_paths`), the cache offline; bf16, TOFU's Llama-2 chat
format, and the memory plan checked against `tofu.max_memory_gb` before each job loads. One NPO + Sophia run
through Snakemake."""

import json

import pytest
import yaml

from tests import hub_fixtures as fx

pytestmark = pytest.mark.integration
BASE, RETAIN = "tofu-llama2-7b-chat", "tofu-llama2-7b-chat-retain90"
XB_POINT = "results/paper/crossbench/points/tofu/flora_ihl/seed0.json"


def test_paper_tofu_runs_on_released_llama_checkpoints(tmp_path):
    ws = fx.paper_workspace(tmp_path)
    texts = [f"[INST] Who wrote book {i}? [/INST] Author {i}. It was author {i + 1}." for i in range(60)]
    overrides = {
        "device": "auto",
        "seeds": [0],
        "tracking": {"enabled": False},
        "model_sources": {
            BASE: str(fx.local_llama(tmp_path / "full", texts, seed=0)),
            RETAIN: str(fx.local_llama(tmp_path / "retain", texts, seed=1)),
        },
        "data": {"hub_paths": {"tofu": str(fx.tofu(tmp_path / "tofu"))}},
        "tofu": {
            "forget_authors": 1,
            "retain_authors": 1,
            "eval_rows": 4,
            "max_length": 48,
            "epochs": 1,
            "methods": ["npo"],
            "max_new_tokens": 4,
            "eval_batch_size": 64,
            "max_memory_gb": 1,
            "lr": {"npo": {"FO": 1.0e-3, "SO": 1.0e-3}},
        },
        "crossbench": {"factors": [1.0]},  # one cross-paper point: FLoRA + IHL on the released Llama
    }
    (ws / "rehearsal.yaml").write_text(yaml.safe_dump(overrides))
    targets = [
        "results/paper/tofu/models/base",
        "results/paper/tofu/models/retain",
        "results/paper/tofu/runs/npo/SO/seed0.json",
        XB_POINT,
    ]
    _, wall = fx.run_paper_offline(ws, tmp_path, targets, gpus=1)
    print(f"TOFU Llama rehearsal: {wall:.0f}s")
    # the released checkpoints came from their model_sources folders, and neither was fine-tuned here
    for model in (BASE, RETAIN):
        meta = json.loads((ws / f"results/paper/models/{model}/pretrained/meta.json").read_text())
        assert meta["source"] == overrides["model_sources"][model] and meta["hub_id"].startswith(
            "open-unlearning/"
        )
    for which, model in (("base", BASE), ("retain", RETAIN)):
        meta = json.loads((ws / f"results/paper/tofu/models/{which}/meta.json").read_text())
        assert meta["released"] == model and meta["n_train"] == 0 and meta["add_bos"] is True
        assert meta["memory_plan"]["gradients"] == 0 and meta["params"]["tofu"]["dtype"] == "bfloat16"
        assert (
            f"[tofu] {which} model: {model} is already fine-tuned"
            in (ws / f"logs/paper/tofu/model_{which}.log").read_text()
        )
    config = json.loads((ws / "results/paper/tofu/models/base/config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 2
    # the unlearning run: Sophia's states counted in bf16, NPO's reference model, the plan line in the log
    run = json.loads((ws / "results/paper/tofu/runs/npo/SO/seed0.json").read_text())
    assert run["optimizer"] == "sophia" and len(run["epochs"]) == 2 and "forget_quality" in run["final"]
    plan = run["memory_plan"]
    assert plan["states"] == 2 * plan["weights"] == 2 * plan["reference"] and plan["gpus"] == 1
    log = (ws / "logs/paper/tofu/unlearn_npo_SO_seed0.log").read_text()
    assert "[memory] tofu unlearn npo SO: planned" in log and "1.0 GiB available" in log, log
    # the cross-paper benchmark's TOFU point: FLoRA adapters on Llama's q, v and gated FFN (tdec.lora), at
    # IHL's TOFU step (5e-5) times the FLoRA paper's adapter / full ratio (2e-4 / 5e-5)
    [point] = json.loads((ws / XB_POINT).read_text())["points"]
    assert point["values"] == {"lr": 2e-4} and not point["diverged"] and "forget_quality" in point
    assert point["sample_passes"] > 0

"""A CPU rehearsal of the paper profile's TDEC and memorization paths, through the cross-paper benchmark's
points there (issue 25): a hub-layout GPT-Neo (`model_sources`; TDEC's rows are its own BPE ids, kept as
they are), TDEC from the mirror's layout (it has no hub release), MT samples and WikiText-2 in the hub's
formats (`data.hub_paths`), the cache offline, small caps through `--configfile`. One FLoRA + IHL point on
TDEC and one Sophia + NPO point on MT, each through its study's own steps (TDEC's premise, the memorization
study's memorize / base / targets)."""

import json
import math

import pytest
import yaml

from tests import hub_fixtures as fx

pytestmark = pytest.mark.integration
MODEL = "gpt-neo-125m"
TDEC_POINT = f"results/paper/crossbench/points/tdec/{MODEL}/flora_ihl/seed0.json"
MEM_POINT = f"results/paper/crossbench/points/memorization/mtsamples/{MODEL}/soul_npo/seed0.json"


def test_paper_tdec_and_memorization_points_run_on_a_hub_gpt_neo(tmp_path):
    ws = fx.paper_workspace(tmp_path)
    texts = [
        f"PATIENT {i} was seen today for knee pain number {i}. The knee was examined." for i in range(40)
    ]
    overrides = {
        "device": "auto",
        "seeds": [0],
        "models": [MODEL],
        "model_sources": {MODEL: str(fx.local_model(tmp_path / "neo", "gpt_neo", texts))},
        "data": {
            "tasks": ["piqa"],
            "max_train": 16,
            "max_test": 8,
            "max_length": 32,
            "mirror_dir": str(fx.tdec_mirror(tmp_path / "mirror", rows=8)),
            "hub_paths": {
                "piqa": str(fx.piqa(tmp_path / "piqa", n_train=20, n_val=8)),
                "wikitext2": str(fx.wikitext2(tmp_path / "wikitext2")),
                "mtsamples": str(fx.mtsamples(tmp_path / "mt", notes=12)),
            },
        },
        "tdec": {
            "models": [MODEL],
            "forget_sets": 1,
            "forget_size": 4,
            "row_length": 12,
            "heldout_rows": 2,
            "ppl_rows": 2,
            "retain_rows": 4,
            "max_epochs": 1,
            "reasoning_tasks": ["piqa"],
            "lora": {"fisher_retain_rows": 4},
        },
        "memorization": {
            "corpora": ["mtsamples"],
            "models": [MODEL],
            "methods": ["npo"],
            "segment_words": 12,
            "max_length": 32,
            "train": {"epochs": 12, "lr": 5.0e-3, "batch_size": 8},
            "seeds": [0],
            "n_targets": 2,
            "min_target_tokens": 8,
            "prefix_tokens": 3,
            "suffix_tokens": 4,
            "samples": 2,
            "ngram": 4,
            "examples": 1,
        },
        "unlearn": {
            "cycle_size": 4,
            "table_cycles": [1],
            "max_cycles": 1,
            "forget_batch_size": 4,
            "extended_datasets": ["piqa"],
        },
        "methods": {"enabled": ["npo"]},
        "discussions": {"dataset": "piqa"},
        "crossbench": {
            "factors": [1.0],
            "enabled": ["flora_ihl", "soul_npo"],
            "memorization": {"corpora": ["mtsamples"], "models": [MODEL]},
        },
        "tracking": {"enabled": False},
    }
    (ws / "rehearsal.yaml").write_text(yaml.safe_dump(overrides))
    _, wall = fx.run_paper_offline(ws, tmp_path, [TDEC_POINT, MEM_POINT], gpus=1)
    print(f"TDEC / memorization paper rehearsal: {wall:.0f}s")
    meta = json.loads((ws / f"results/paper/models/{MODEL}/pretrained/meta.json").read_text())
    assert meta["source"] == overrides["model_sources"][MODEL]
    [tdec] = json.loads((ws / TDEC_POINT).read_text())["points"]
    assert tdec["values"] == {"lr": 2.0e-4} and tdec["epochs_run"] == 1 and not tdec["diverged"]
    assert tdec["sample_passes"] > 0 and 0 <= tdec["ma"] <= 1 and math.isfinite(tdec["efficacy"])
    assert math.isfinite(tdec["ppl"]) and math.isfinite(tdec["utility_loss"])
    [mem] = json.loads((ws / MEM_POINT).read_text())["points"]
    assert mem["premise"]["clip_rate"] >= 0 and not mem["diverged"]  # Sophia fed and stepping
    # the memorize step's premise: the base model extracts a target (12 epochs here; 2 extracted none)
    assert mem["base_memorized"] > 0 and mem["sample_passes"] > 0 and 0 <= mem["efficacy"] <= 1

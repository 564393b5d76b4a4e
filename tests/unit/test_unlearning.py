"""The multi-cycle runner: cycles applied in turn, checkpoints, and resuming after an interruption."""
import pytest

from unlearn_repro.config import load
from unlearn_repro.io import read_json, write_json, write_jsonl
from unlearn_repro.methods import METHODS
from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import build_model
from unlearn_repro.pipeline import unlearning
from unlearn_repro.tracking import NullTracker
from tests.conftest import ROOT


@pytest.fixture
def setup(tmp_path, tiny_tokenizer):
    cfg = load(ROOT / "params.yaml", "ci")
    rows = [{"id": str(i), "text": f"the quick brown fox number {i} jumps"} for i in range(60)]
    write_jsonl(tmp_path / "data/train.jsonl", rows)
    write_json(tmp_path / "data/meta.json", {"kind": "text"})
    write_json(tmp_path / "split.json", {"cycles": [list(range(k * 16, (k + 1) * 16)) for k in range(3)]})
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
    checkpoint.save(model, tiny_tokenizer, tmp_path / "finetuned", {"stage": "finetuned"})
    kw = dict(dataset="arc_easy", model_name="tiny-gpt-neo", seed=0, finetuned=tmp_path / "finetuned",
              pretrained=tmp_path / "finetuned", data_dir=tmp_path / "data", split_file=tmp_path / "split.json",
              tracker=NullTracker())
    return cfg, kw, tmp_path


def test_cycles_run_in_turn_and_resume(setup, monkeypatch):
    cfg, kw, tmp = setup
    out = tmp / "run"
    summary = unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    assert [c["cycle"] for c in summary["cycles"]] == [1, 2]          # arc_easy is not an extended data set
    assert [c["n_retain"] for c in summary["cycles"]] == [44, 28]     # D+ shrinks by one cycle each time
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["cycle1", "cycle2"]
    # an interruption during cycle 2: cycle 1 is kept and not recomputed
    calls = []
    impl = METHODS.get("gradient_ascent")
    original = type(impl).unlearn

    def flaky(self, ctx, model, forget, retain, cycle):
        calls.append(cycle)
        if cycle == 2 and len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, ctx, model, forget, retain, cycle)
    monkeypatch.setattr(type(impl), "unlearn", flaky)
    out2 = tmp / "run2"
    with pytest.raises(KeyboardInterrupt):
        unlearning.run(cfg, method="gradient_ascent", out_dir=out2, **kw)
    first = read_json(out2 / "partial" / "cycle1" / "meta.json")["cycle_stats"]
    again = unlearning.run(cfg, method="gradient_ascent", out_dir=out2, **kw)
    assert calls == [1, 2, 2]                                          # cycle 1 was not run again
    assert again["cycles"][0] == first and again["cycles"][1]["cycle"] == 2
    assert read_json(out2 / "run.json")["n_cycles"] == 2 and not (out2 / "partial").exists()

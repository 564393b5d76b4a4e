"""The multi-cycle runner: cycles applied in turn, checkpoints, and resuming after an interruption."""

import pytest

from tests.conftest import ROOT
from unlearn_repro.config import load
from unlearn_repro.io import read_json, write_json, write_jsonl
from unlearn_repro.methods import METHODS
from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import build_model
from unlearn_repro.pipeline import unlearning
from unlearn_repro.tracking import NullTracker


@pytest.fixture
def setup(tmp_path, tiny_tokenizer):
    cfg = load(ROOT / "params.yaml", "ci")
    rows = [{"id": str(i), "text": f"the quick brown fox number {i} jumps"} for i in range(60)]
    write_jsonl(tmp_path / "data/train.jsonl", rows)
    write_json(tmp_path / "data/meta.json", {"kind": "text"})
    write_json(tmp_path / "split.json", {"cycles": [list(range(k * 16, (k + 1) * 16)) for k in range(3)]})
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
    checkpoint.save(model, tiny_tokenizer, tmp_path / "finetuned", {"stage": "finetuned"})
    kw = dict(
        dataset="arc_easy",
        model_name="tiny-gpt-neo",
        seed=0,
        finetuned=tmp_path / "finetuned",
        pretrained=tmp_path / "finetuned",
        data_dir=tmp_path / "data",
        split_file=tmp_path / "split.json",
        tracker=NullTracker(),
    )
    return cfg, kw, tmp_path


def test_cycles_run_in_turn_and_resume(setup, monkeypatch):
    cfg, kw, tmp = setup
    out = tmp / "run"
    summary = unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    assert [c["cycle"] for c in summary["cycles"]] == [1, 2]  # arc_easy is not an extended data set
    assert [c["n_retain"] for c in summary["cycles"]] == [44, 28]  # D+ shrinks by one cycle each time
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
    assert calls == [1, 2, 2]  # cycle 1 was not run again
    assert again["cycles"][0] == first and again["cycles"][1]["cycle"] == 2
    assert read_json(out2 / "run.json")["n_cycles"] == 2 and not (out2 / "partial").exists()


def test_resume_never_mixes_settings(setup, monkeypatch, capsys):
    """Finished cycles made with other params are discarded (and said so), not continued."""
    cfg, kw, tmp = setup
    out = tmp / "run"
    calls = []
    impl = METHODS.get("gradient_ascent")
    original = type(impl).unlearn

    def flaky(self, ctx, model, forget, retain, cycle):
        calls.append((cycle, ctx.cfg.methods.gradient_ascent.lr))
        if cycle == 2 and len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, ctx, model, forget, retain, cycle)

    monkeypatch.setattr(type(impl), "unlearn", flaky)
    with pytest.raises(KeyboardInterrupt):
        unlearning.run(cfg, method="gradient_ascent", out_dir=out, **kw)
    raw = cfg.to_dict()
    raw["methods"]["gradient_ascent"]["lr"] = 0.9
    from unlearn_repro.config import Frozen

    summary = unlearning.run(Frozen(raw), method="gradient_ascent", out_dir=out, **kw)
    assert calls == [(1, 5e-5), (2, 5e-5), (1, 0.9), (2, 0.9)]  # cycle 1 redone with the new lr
    assert "made with other settings" in capsys.readouterr().out
    assert all(c["cycle"] in (1, 2) for c in summary["cycles"])
    assert read_json(out / "run.json")["params"]["methods.gradient_ascent"]["lr"] == 0.9


def test_training_resume_state_must_match_the_recipe(tiny_tokenizer, tmp_path, capsys):
    import torch

    from unlearn_repro.train import Recipe, train

    seqs = [[1, 5, 9, 12], [3, 4, 5, 6], [8, 9, 10, 11]] * 4
    model = build_model("tiny-opt", tiny_tokenizer, seed=0)
    r = Recipe(epochs=2, lr=1e-2, batch_size=2, seed=0, checkpoint_every=3)
    calls = {"n": 0}

    def crashing(m, batch, step):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return m(**batch).loss

    with pytest.raises(KeyboardInterrupt):
        train(model, seqs, r, pad_id=0, device="cpu", objective=crashing, resume_dir=tmp_path)
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)  # loads without pickled code
    assert state["step"] == 3
    other = Recipe(epochs=2, lr=2e-2, batch_size=2, seed=0, checkpoint_every=3)
    fresh = build_model("tiny-opt", tiny_tokenizer, seed=0)
    stats = train(fresh, seqs, other, pad_id=0, device="cpu", resume_dir=tmp_path)
    assert stats["steps"] == 12 and "starting over" in capsys.readouterr().out


def test_a_run_records_the_cycle_size_its_split_holds_not_the_config_s():
    """A study's split (memorization's targets) has its own size: run.json records what was unlearned."""
    cfg = load(ROOT / "params.yaml", "ci")
    impl = METHODS.get("gradient_ascent")
    params = unlearning.used_params(impl, cfg, [[4, 8, 15], [16, 23, 42]])
    assert params["unlearn"] == {**cfg.unlearn.to_dict(), "cycle_size": 3} and cfg.unlearn.cycle_size != 3
    assert list(params["unlearn"]) == list(cfg.unlearn)  # the key keeps its place
    assert {k: v for k, v in params.items() if k != "unlearn"} == {
        k: v for k, v in impl.params(cfg).items() if k != "unlearn"
    }

"""The TDEC study's pure parts: ablation labels, the configurations it runs, the aggregation over forget sets
and the rules that decide whether the paper's findings hold (hand-made numbers)."""

import math

import pytest

from tests.conftest import ROOT
from unlearn_repro import config
from unlearn_repro.pipeline.tdec import ForgettingCriterion, ablation_runs, runs, target_groups
from unlearn_repro.report.tdec import aggregate, findings


def test_target_groups():
    assert target_groups("qvffn") == ["q", "v", "ffn"]
    assert target_groups("qvko") == ["q", "v", "k", "o"]
    with pytest.raises(ValueError, match="not a string of the groups"):
        target_groups("qx")


def test_runs_reuse_the_table_run_for_the_default_targets():
    cfg = config.load(ROOT / "params.yaml", "embedded")
    r = runs(cfg)
    assert list(r)[:6] == ["ga", "gd", "lora_gd", "lora_ihl", "flora_gd", "flora_ihl"]
    assert set(r) - set(list(r)[:6]) == {"flora_ihl-qv", "flora_ihl-qvko", "flora_ihl-ffn"}
    assert ablation_runs(cfg) == {
        "qv": "flora_ihl-qv",
        "qvko": "flora_ihl-qvko",
        "ffn": "flora_ihl-ffn",
        "qvffn": "flora_ihl",
    }
    assert r["flora_ihl-ffn"]["targets"] == ["ffn"] and r["flora_ihl-ffn"]["adapter"] == "flora"


def _set(forgotten, epochs, ppl, reasoning=0.3):
    return {
        "forgotten": forgotten,
        "epochs": epochs if forgotten else None,
        "el": 0.0,
        "ma": 0.1,
        "ppl": ppl,
        "reasoning": reasoning,
        "params_pct": 2.0,
    }


def test_aggregate_averages_epochs_over_forgotten_sets_only():
    a = aggregate({"sets": [_set(True, 2, 10), _set(True, 4, 20), _set(False, None, 30)]})
    assert a["epochs"] == 3 and a["failed"] == 1 and a["n_sets"] == 3 and a["ppl"] == 20
    assert math.isnan(aggregate({"sets": [_set(False, None, 1)]})["epochs"])


def test_findings_rules():
    agg = {
        "ga": aggregate({"sets": [_set(True, 5, 900)]}),
        "gd": aggregate({"sets": [_set(True, 3, 100)]}),
        "lora_gd": aggregate({"sets": [_set(False, None, 300), _set(True, 9, 200)]}),
        "lora_ihl": aggregate({"sets": [_set(True, 8, 80)]}),
        "flora_gd": aggregate({"sets": [_set(True, 3, 500)]}),
        "flora_ihl": aggregate({"sets": [_set(True, 2, 60)]}),
    }
    f = findings(agg)
    assert f["gd_beats_ga"]["holds"] and f["lora_gd_often_fails"]["holds"]
    assert f["flora_ihl_fewer_epochs_best_utility"]["holds"]
    agg["flora_gd"] = aggregate({"sets": [_set(True, 1, 10)]})  # faster and better: not a named row
    assert findings(agg)["flora_ihl_fewer_epochs_best_utility"]["holds"]
    agg["lora_gd"] = aggregate({"sets": [_set(True, 1, 200)]})  # a named row forgets faster
    assert not findings(agg)["flora_ihl_fewer_epochs_best_utility"]["holds"]
    agg["lora_gd"] = aggregate({"sets": [_set(False, None, 300), _set(True, 9, 200)]})
    agg["gd"] = aggregate({"sets": [_set(False, None, 100)]})  # a failure ranks behind any success
    agg["lora_ihl"] = aggregate({"sets": [_set(True, 8, 50)]})  # lower PPL than FLoRA + IHL
    f = findings(agg)
    assert not f["gd_beats_ga"]["holds"]
    assert f["flora_ihl_fewer_epochs_best_utility"] == {
        **f["flora_ihl_fewer_epochs_best_utility"],
        "holds": False,
        "fewest_epochs_among_lora": True,
        "lowest_ppl": False,
    }


class _Stub:
    """Stands in for the model: the hook only passes it to the scorers, which are replaced below."""


def test_forgetting_criterion_stops_only_when_both_metrics_pass(monkeypatch):
    import unlearn_repro.pipeline.tdec as tdec

    cfg = config.load(ROOT / "params.yaml", "embedded")
    ma_seq, el_seq = iter([0.5, 0.2, 0.2]), iter([0.3, 0.01])
    monkeypatch.setattr(tdec, "extraction_scores", lambda *a, **k: {"ma": next(ma_seq)})
    monkeypatch.setattr(tdec, "extraction", lambda *a, **k: {"el": next(el_seq), "ma": math.nan})

    class Tok:
        pad_token_id = 0

    hook = ForgettingCriterion(cfg, Tok(), [[1, 2, 3]], {"el": 0.02, "ma": 0.25})
    assert hook.on_epoch_end(0, _Stub()) is False  # MA above: EL not even decoded (el_every_epoch false)
    assert math.isnan(hook.history[0]["el"])
    assert hook.on_epoch_end(1, _Stub()) is False  # MA passes, EL 0.3 does not
    assert hook.on_epoch_end(2, _Stub()) is True  # both pass
    assert [h["epoch"] for h in hook.history] == [1, 2, 3]


def _resolved(profile: str, **tdec):
    import yaml

    raw = yaml.safe_load(open(ROOT / "params.yaml"))
    raw["profiles"][profile] = config.deep_merge(raw["profiles"][profile], {"tdec": tdec})
    return config.resolve(raw, profile)


def test_batch_rule_defaults_to_one_update_per_epoch_on_the_whole_forget_set():
    """knowledge-unlearning: effective batch = forget set size, so an epoch is one update
    (the paper profile)."""
    import unlearn_repro.pipeline.tdec as tdec

    paper = config.load(ROOT / "params.yaml", "paper")
    assert paper.tdec.batch_size == "forget_set" and tdec.forget_batch(paper) == paper.tdec.forget_size == 32
    assert tdec.epoch_meaning(paper) == "1 update each, batch = forget set (32)"
    spec = tdec.runs(paper)["gd"]
    assert tdec.method_config(paper, spec).unlearn.forget_batch_size == 32
    embedded = config.load(ROOT / "params.yaml", "embedded")
    assert (
        tdec.forget_batch(embedded) == 8 and tdec.epoch_meaning(embedded) == "4 updates each, batch 8 of 32"
    )
    with pytest.raises(config.ConfigError):
        _resolved("ci", batch_size="all")


def test_threshold_comes_from_the_published_constants_held_out_rows_or_a_named_file(monkeypatch, tmp_path):
    import json

    import unlearn_repro.pipeline.tdec as tdec

    paper = config.load(ROOT / "params.yaml", "paper")
    t = tdec.threshold(paper, "gpt-neo-125m", None, None, {}, {})
    assert (t["el"], t["ma"]) == (0.0499, 0.2994) and "knowledge-unlearning" in t["source"]
    with pytest.raises(ValueError, match="no entry for 'opt-125m'"):
        tdec.threshold(paper, "opt-125m", None, None, {}, {})
    monkeypatch.setattr(tdec, "extraction", lambda cfg, model, tok, rows: {"el": 0.01 * len(rows), "ma": 0.5})
    ci = config.load(ROOT / "params.yaml", "ci")
    rows = {"heldout": [[1, 2]] * 3}  # the premise's held-out scores are the threshold: not decoded twice
    t = tdec.threshold(ci, "tiny-gpt-neo", None, None, rows, tdec.extraction(ci, None, None, rows["heldout"]))
    assert t["el"] == pytest.approx(0.03) and t["source"].startswith("TDEC validation rows")
    from unlearn_repro.models.tokenizers import train_bpe

    tok = train_bpe(["one two three four five six seven eight nine ten"] * 20, 300)
    f = tmp_path / "unseen.jsonl"
    f.write_text(
        "\n".join(json.dumps({"text": " ".join(["one two three four five six"] * 10)}) for _ in range(2))
    )
    named = _resolved("ci", threshold={"source": "file", "file": str(f)})
    t = tdec.threshold(named, "tiny-gpt-neo", None, tok, {}, {})
    assert t["el"] == pytest.approx(0.02) and str(f) in t["source"]
    with pytest.raises(FileNotFoundError, match="tdec.threshold.file"):
        tdec.threshold(
            _resolved("ci", threshold={"source": "file", "file": str(tmp_path / "none.jsonl")}),
            "tiny-gpt-neo",
            None,
            tok,
            {},
            {},
        )


def test_aggregate_keeps_each_forget_set_and_the_interval_over_them():
    a = aggregate({"sets": [_set(True, 2, 10), _set(True, 4, 20), _set(False, None, 30)]})
    assert a["ppl_per_set"] == "0:10;1:20;2:30" and a["ppl_half"] > 0
    assert math.isnan(aggregate({"sets": [_set(True, 2, 10)]})["ppl_half"])  # one set: no interval

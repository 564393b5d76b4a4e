"""The TDEC study's pure parts: ablation labels, the configurations it runs, the aggregation over forget sets
and the rules that decide whether the paper's findings hold (hand-made numbers)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro import config
from unlearn_repro.pipeline.tdec import ForgettingCriterion, ablation_runs, runs, target_groups
from unlearn_repro.report import style
from unlearn_repro.report import tdec as report_tdec
from unlearn_repro.report.tdec import aggregate, findings


def test_target_groups():
    assert target_groups("qvffn") == ["q", "v", "ffn"]
    assert target_groups("qvko") == ["q", "v", "k", "o"]
    with pytest.raises(ValueError, match="not a string of the groups"):
        target_groups("qx")


def test_runs_reuse_the_table_run_for_the_default_targets():
    """Figure 4: each of the paper's four adapter methods on each set of target modules; on the default
    targets (lora.targets = Q V FFN) a method's run is its Table 1 run."""
    cfg = config.load(ROOT / "params.yaml", "embedded")
    assert list(cfg.tdec.ablation.configs) == ["lora_gd", "lora_ihl", "flora_gd", "flora_ihl"]
    r = runs(cfg)
    assert list(r) == [
        "ga", "gd", "lora_gd", "lora_ihl", "flora_gd", "flora_ihl",
        "lora_gd-qv", "lora_gd-qvko", "lora_gd-ffn",
        "lora_ihl-qv", "lora_ihl-qvko", "lora_ihl-ffn",
        "flora_gd-qv", "flora_gd-qvko", "flora_gd-ffn",
        "flora_ihl-qv", "flora_ihl-qvko", "flora_ihl-ffn",
    ]  # fmt: skip
    assert ablation_runs(cfg) == {
        "lora_gd": {"qv": "lora_gd-qv", "qvko": "lora_gd-qvko", "ffn": "lora_gd-ffn", "qvffn": "lora_gd"},
        "lora_ihl": {
            "qv": "lora_ihl-qv",
            "qvko": "lora_ihl-qvko",
            "ffn": "lora_ihl-ffn",
            "qvffn": "lora_ihl",
        },
        "flora_gd": {
            "qv": "flora_gd-qv",
            "qvko": "flora_gd-qvko",
            "ffn": "flora_gd-ffn",
            "qvffn": "flora_gd",
        },
        "flora_ihl": {
            "qv": "flora_ihl-qv",
            "qvko": "flora_ihl-qvko",
            "ffn": "flora_ihl-ffn",
            "qvffn": "flora_ihl",
        },
    }
    assert r["flora_ihl-ffn"] == {
        "method": "inverted_hinge",
        "adapter": "flora",
        "lr": 1e-3,
        "targets": ["ffn"],
        "table": False,
    }
    assert r["lora_gd-qvko"] == {
        "method": "gradient_difference",
        "adapter": "lora",
        "lr": 1e-3,
        "targets": ["q", "v", "k", "o"],
        "table": False,
    }
    assert r["flora_gd"] == {
        "method": "gradient_difference",
        "adapter": "flora",
        "lr": 1e-3,
        "targets": ["q", "v", "ffn"],
        "table": True,
    }


def test_ci_figure4_reuses_its_table_runs_and_adds_none():
    cfg = config.load(ROOT / "params.yaml", "ci")
    assert list(runs(cfg)) == ["lora_gd", "flora_ihl"]
    assert ablation_runs(cfg) == {"lora_gd": {"qvffn": "lora_gd"}, "flora_ihl": {"qvffn": "flora_ihl"}}


def test_an_ablation_config_table_1_does_not_run_gets_its_default_targets_run():
    raw = yaml.safe_load(open(ROOT / "params.yaml"))
    raw["tdec"]["enabled"] = ["ga", "lora_gd"]
    raw["tdec"]["ablation"] = {"configs": ["flora_gd", "lora_gd"], "targets": ["qvffn", "ffn"]}
    cfg = config.resolve(raw)
    assert ablation_runs(cfg) == {
        "flora_gd": {"qvffn": "flora_gd", "ffn": "flora_gd-ffn"},
        "lora_gd": {"qvffn": "lora_gd", "ffn": "lora_gd-ffn"},
    }
    r = runs(cfg)
    assert list(r) == ["ga", "lora_gd", "flora_gd", "flora_gd-ffn", "lora_gd-ffn"]
    assert r["flora_gd"]["targets"] == ["q", "v", "ffn"] and not r["flora_gd"]["table"]
    assert r["lora_gd"]["table"]


@pytest.mark.parametrize(
    "configs, message",
    [
        (
            ["lora_gd", "flora_xyz"],
            "key 'tdec.ablation.configs' has invalid value 'flora_xyz': not a configuration of tdec.configs; "
            "valid choices: ga, gd, lora_gd, lora_ihl, flora_gd, flora_ihl",
        ),
        (
            ["gd"],
            "key 'tdec.ablation.configs' has invalid value 'gd': its adapter is full, so it has no target "
            "modules to vary; valid choices (LoRA / FLoRA): lora_gd, lora_ihl, flora_gd, flora_ihl",
        ),
    ],
)
def test_the_config_refuses_an_ablation_config_it_cannot_run(configs, message):
    raw = yaml.safe_load(open(ROOT / "params.yaml"))
    raw["tdec"]["ablation"]["configs"] = configs
    with pytest.raises(config.ConfigError) as e:
        config.resolve(raw)
    assert message in str(e.value)


def test_the_old_single_ablation_config_key_is_refused_by_name():
    raw = yaml.safe_load(open(ROOT / "params.yaml"))
    raw["tdec"]["ablation"] = {"config": "flora_ihl", "targets": ["qv"]}
    with pytest.raises(config.ConfigError, match=r"unknown key 'config' \(did you mean 'configs'\?\)"):
        config.resolve(raw)


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


def test_the_report_tables_and_draws_the_four_methods_by_target_modules(tmp_path, monkeypatch):
    """build_report on hand-made runs (embedded config: 6 Table 1 runs, 4 methods x 4 target sets in
    Figure 4): the ablation table has a row per target set and method, default targets on the Table 1
    runs; Figure 4 draws each method's forget sets in its own style."""
    cfg = config.load(ROOT / "params.yaml", "embedded")
    premise = {
        "forget_mean": {"el": 0.3, "ma": 0.9},
        "forget_sets": [{"el": 0.3, "ma": 0.9}] * 3,
        "heldout": {"el": 0.03, "ma": 0.2},
        "threshold": {"el": 0.03, "ma": 0.2, "source": "held-out"},
        "reasoning": 0.33,
        "ppl": 600.0,
        "holds": True,
    }
    (tmp_path / "premise.json").write_text(json.dumps({"premise": premise}))
    run_files = {}
    for k, name in enumerate(runs(cfg)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"sets": [_set(i != 1, 2 + k, 100 + 10 * k + i) for i in range(3)]}))
        run_files[("tiny-gpt-neo", name)] = str(path)
    drawn, panels = [], report_tdec._utility_panels
    monkeypatch.setattr(report_tdec, "_utility_panels", lambda *a, **kw: drawn.append(panels(*a, **kw)))
    report_tdec.build_report(
        cfg, {"tiny-gpt-neo": str(tmp_path / "premise.json")}, run_files, tmp_path / "out"
    )
    assert all(Path(f).exists() for f in sum(report_tdec.outputs(str(tmp_path / "out")).values(), []))
    abl = pd.read_csv(tmp_path / "out/tables/ablation.csv")
    methods = ["LoRA + GD", "LoRA + IHL", "FLoRA + GD", "FLoRA + IHL"]
    assert list(abl["targets"]) == [t for t in ("QV", "QVKO", "FFN", "QVFFN") for _ in methods]
    assert list(abl["method"]) == methods * 4
    assert list(abl.loc[abl["targets"] == "QVFFN", "config"]) == [
        "lora_gd",
        "lora_ihl",
        "flora_gd",
        "flora_ihl",
    ]
    assert list(abl.loc[abl["targets"] == "FFN", "config"]) == [
        "lora_gd-ffn",
        "lora_ihl-ffn",
        "flora_gd-ffn",
        "flora_ihl-ffn",
    ]
    assert (
        "## Figure 4: LoRA + GD, LoRA + IHL, FLoRA + GD, FLoRA + IHL by target modules"
        in (tmp_path / "out/tables/ablation.md").read_text()
    )
    fig3, fig4 = drawn
    assert fig4.get_suptitle().startswith("FLoRA paper Figure 4: 4 methods")
    assert "3 forget sets of 32 TDEC rows each" in fig4.get_suptitle()
    adapted = [
        "lora+gradient_difference",
        "lora+inverted_hinge",
        "flora+gradient_difference",
        "flora+inverted_hinge",
    ]
    for ax in fig4.axes:  # per target set, per method, its 3 forget sets
        gids = [ln.get_gid() for ln in ax.lines if ln.get_marker() not in ("_", "None")]
        assert gids == [g for _ in range(4) for g in adapted for _ in range(3)]
        assert {ln.get_color() for ln in ax.lines if ln.get_gid() in adapted} == {
            style.method_style(g)["color"] for g in adapted
        }
    assert fig3.get_suptitle().startswith("FLoRA paper Figure 3")
    labels = [t.get_text() for t in fig3.legends[0].get_texts()]
    assert labels[:6] == ["GA (full)", "GD (full)", "LoRA + GD", "LoRA + IHL", "FLoRA + GD", "FLoRA + IHL"]


def test_a_ppl_difference_inside_its_interval_is_a_tie():
    """The rules compare PPL over the forget sets by Welch's 95 % interval of the difference (scipy's t
    quantile through report/stats): a mean that is lower or higher inside it decides nothing."""
    sets = lambda epochs, *ppl: aggregate({"sets": [_set(True, epochs, p) for p in ppl]})  # noqa: E731
    agg = {
        "ga": sets(5, 1900, 2000, 2100),
        "gd": sets(3, 100, 110, 120),
        "lora_gd": sets(9, 400, 500, 600),
        "lora_ihl": sets(8, 500, 600, 700),
        "flora_ihl": sets(2, 50, 60, 70),
    }
    f = findings(agg)
    assert f["gd_beats_ga"]["verdict"] == "holds" and f["gd_beats_ga"]["ppl_vs"] == {"ga": "less"}
    assert f["flora_ihl_fewer_epochs_best_utility"]["verdict"] == "holds"
    # Welch: mean difference 650 - 600 = 50, far inside the interval of two 3-set samples
    agg["flora_ihl"] = sets(2, 400, 650, 900)
    flora = findings(agg)["flora_ihl_fewer_epochs_best_utility"]
    assert flora["ppl_vs"]["lora_ihl"] == "tie" and flora["ppl_vs"]["ga"] == "less"
    assert flora["verdict"] == "tie" and not flora["holds"] and not flora["lowest_ppl"]
    agg["flora_ihl"] = sets(2, 2000, 2100, 2200)  # above LoRA + IHL beyond the interval
    assert findings(agg)["flora_ihl_fewer_epochs_best_utility"]["verdict"] == "does not hold"
    agg["gd"] = sets(3, 1500, 2000, 2500)  # GD's PPL is GA's within the interval, in fewer epochs
    assert findings(agg)["gd_beats_ga"]["verdict"] == "tie"
    agg["gd"] = sets(6, 100, 110, 120)  # lower PPL, more epochs
    assert findings(agg)["gd_beats_ga"]["verdict"] == "does not hold"

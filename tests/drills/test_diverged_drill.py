"""Drill: one grid point with an absurd learning rate diverges. Its evaluation must still write
metrics.json (metrics null = NaN, with the reason) and every table, summary and verdict must be built,
counting it in `diverged_runs` and leaving it out of the means (it crashed `evaluate`: "sample 0 predicts 31
tokens; no reference is that long")."""

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro.config import resolve
from unlearn_repro.io import read_json, write_json, write_jsonl
from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import build_model
from unlearn_repro.pipeline import evaluation, unlearning
from unlearn_repro.report import main as main_report
from unlearn_repro.report.tables import collect
from unlearn_repro.report.verdicts import Studies, judge_all
from unlearn_repro.tracking import NullTracker


@pytest.fixture
def diverged_run(tmp_path, tiny_tokenizer):
    """A ci-profile gradient-ascent run at lr 1e30 on a tiny cloze task, and the base model's evaluation."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["profiles"]["ci"]["methods"]["gradient_ascent"] = {"lr": 1.0e30}
    cfg = resolve(raw, "ci")
    rows = [{"context": f"the quick brown fox number {i}", "continuation": "jumps"} for i in range(60)]
    data = tmp_path / "data"
    for split, part in (("train", rows[:48]), ("test", rows[48:]), ("heldout", rows[48:])):
        write_jsonl(data / f"{split}.jsonl", part)
    write_json(data / "meta.json", {"kind": "cloze"})
    write_json(tmp_path / "split.json", {"cycles": [list(range(k * 16, (k + 1) * 16)) for k in range(2)]})
    checkpoint.save(build_model("tiny-gpt-neo", tiny_tokenizer, seed=0), tiny_tokenizer, tmp_path / "ft", {})
    where = dict(data_dir=data, split_file=tmp_path / "split.json")
    unlearning.run(
        cfg,
        dataset="arc_easy",
        model_name="tiny-gpt-neo",
        method="gradient_ascent",
        seed=0,
        finetuned=tmp_path / "ft",
        pretrained=tmp_path / "ft",
        out_dir=tmp_path / "run",
        tracker=NullTracker(),
        **where,
    )
    evaluation.evaluate_base(
        cfg,
        tmp_path / "ft",
        data,
        "heldout",
        where["split_file"],
        tmp_path / "base.json",
        NullTracker(),
        dataset="arc_easy",
        model_name="tiny-gpt-neo",
        seed=0,
    )
    return cfg, tmp_path, where


def test_a_diverged_run_is_evaluated_and_reported(diverged_run):
    cfg, tmp, where = diverged_run
    metrics = evaluation.evaluate_run(
        cfg,
        tmp / "run",
        tmp / "base.json",
        where["data_dir"],
        "heldout",
        where["split_file"],
        tmp / "metrics.json",
        NullTracker(),
    )
    assert json.loads((tmp / "metrics.json").read_text()) == metrics  # strict JSON: null, no NaN
    for c in metrics["cycles"]:
        assert c["diverged"] and c["diverged_reason"] and c["delta_exp"] is None and c["accuracy"] is None
    # beside it, a healthy seed of the same grid point: the tables show its numbers and count the other
    healthy = {
        **metrics,
        "seed": 1,
        "cycles": [
            {
                **c,
                "diverged": False,
                "diverged_reason": None,
                "delta_acc": -1.0,
                "delta_exp": -0.5,
                "accuracy": 0.5,
                "test_nll": 4.0,
                "delta_test_nll": 0.1,
                "retain_accuracy": 0.5,
                "delta_retain_acc": 0.0,
                "exposure": 3.0,
            }
            for c in metrics["cycles"]
        ],
    }
    write_json(tmp / "healthy.json", healthy)
    df = collect([str(tmp / "metrics.json"), str(tmp / "healthy.json")], tmp / "collected.csv")
    main_report.build_report(cfg, [str(tmp / "collected.csv")], tmp / "report")
    table = pd.read_csv(tmp / "report/tables/main_arc_easy.csv")
    cell = table[
        (table["method"] == "gradient_ascent")
        & (table["family"] == "neo")
        & (table["samples"] == 16)
        & (table["metric"] == "delta_exp")
    ]
    assert cell["mean"].item() == -0.5 and cell["n_seeds"].item() == 1 and cell["diverged_runs"].item() == 1
    assert "1 diverged" in (tmp / "report/tables/main_arc_easy.md").read_text()
    summary = read_json(tmp / "report/summary/gradient_ascent.json")
    assert summary["diverged_runs"] == 1 and summary["cycle1"]["delta_exp"] == -0.5  # runs, not cycles
    runtime = pd.read_csv(tmp / "report/tables/runtime.csv")
    assert runtime["runtime_mean"].item() == pytest.approx(df.loc[~df["diverged"], "runtime_s"].iloc[0])
    verdicts = pd.DataFrame(judge_all(Studies(main=df, cycles=[1, 2])))
    assert verdicts["evidence"].str.contains("diverged").any()

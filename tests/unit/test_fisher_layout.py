"""The Fisher layout the planner chose (chunk, storage, shards, planned peak) is in the job's log, its
run.json and MLflow: a user sees that chunk 48 became 24 or that storage fell back to bf16."""

import pytest

from tests.conftest import ROOT
from unlearn_repro.config import Frozen, load
from unlearn_repro.fisher.woodbury import layout_line, layout_record, plan_layout
from unlearn_repro.io import read_json
from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import build_model
from unlearn_repro.pipeline import unlearning


def test_a_halved_chunk_and_bf16_storage_are_named():
    d = 6_000_000  # F^-1 in fp32 is 1.07 GiB: over the 0.8 GiB cap, bf16 fits
    devs, dtype, chunk, plan = plan_layout(
        d,
        48,
        device="cpu",
        storage="auto",
        shards=1,
        chunk=48,
        grad_row_bytes=8 * d,
        model_bytes=0,
        max_bytes=int(0.8 * 2**30),
    )
    layout = layout_record(devs, dtype, chunk, plan, 48)
    assert layout["storage"] == "bfloat16" and layout["storage_bytes"] == 2 and layout["shards"] == 1
    assert chunk < 48 and layout["chunk"] == chunk and layout["chunk_asked"] == 48
    assert 0 < layout["planned_peak_gib"] <= 0.8
    assert layout_line(layout) == (
        f"[fisher] layout: chunk {chunk} (fisher.chunk 48 did not fit), storage bfloat16, "
        f"1 shard(s) on cpu, planned peak {layout['planned_peak_gib']:.2f} GiB per device"
    )


class RecordingTracker:
    def log_run(self, name, params, metrics, tags, step_metrics=None, **kw):
        self.metrics, self.artifacts = metrics, kw.get("artifacts")


def _fisher_removal_run(tmp_path, tiny_tokenizer, tracker):
    from unlearn_repro.io import write_json, write_jsonl

    raw = load(ROOT / "params.yaml", "ci").to_dict()
    raw["unlearn"]["table_cycles"] = [1]
    write_jsonl(
        tmp_path / "data/train.jsonl",
        [{"id": str(i), "text": f"the quick brown fox number {i} jumps"} for i in range(40)],
    )
    write_json(tmp_path / "data/meta.json", {"kind": "text"})
    write_json(tmp_path / "split.json", {"cycles": [list(range(16))]})
    checkpoint.save(build_model("tiny-gpt-neo", tiny_tokenizer, seed=0), tiny_tokenizer, tmp_path / "ft", {})
    return unlearning.run(
        Frozen(raw),
        dataset="arc_easy",
        model_name="tiny-gpt-neo",
        method="fisher_removal",
        seed=0,
        finetuned=tmp_path / "ft",
        pretrained=tmp_path / "ft",
        data_dir=tmp_path / "data",
        split_file=tmp_path / "split.json",
        out_dir=tmp_path / "run",
        tracker=tracker,
    )


@pytest.fixture
def fisher_run(tmp_path, tiny_tokenizer, capsys, monkeypatch):
    from unlearn_repro.methods import newton

    monkeypatch.setattr(newton, "_logged_layout", None)  # a fresh job: an earlier test's layout was logged
    tracker = RecordingTracker()
    _fisher_removal_run(tmp_path, tiny_tokenizer, tracker)
    return tmp_path, tracker, capsys.readouterr().out


def test_a_fisher_removal_run_records_its_layout(fisher_run):
    tmp_path, tracker, out = fisher_run
    layout = read_json(tmp_path / "run" / "run.json")["cycles"][0]["fisher_layout"]
    # the ci profile: fisher.chunk 4 fits in fp32 on one CPU shard
    assert {k: layout[k] for k in ("chunk", "chunk_asked", "storage", "shards", "devices")} == {
        "chunk": 4,
        "chunk_asked": 4,
        "storage": "float32",
        "shards": 1,
        "devices": ["cpu"],
    }
    assert layout["planned_peak_gib"] > 0
    lines = [ln for ln in out.splitlines() if ln.startswith("[fisher] layout:")]
    # F^-1 is rebuilt for each of the cycle's 2 forget batches: the layout is logged once
    assert lines == [layout_line(layout)], out
    assert tracker.artifacts == [
        tmp_path / "run" / "run.json"
    ]  # run.json, layout included, is an MLflow artifact


def test_the_layout_is_an_mlflow_metric(fisher_run):
    _, tracker, _ = fisher_run
    assert tracker.metrics["fisher_layout_cycle1/chunk"] == 4
    assert tracker.metrics["fisher_layout_cycle1/storage_bytes"] == 4

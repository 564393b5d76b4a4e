"""The memorization study's pure parts on hand-made inputs: segmentation, match length, the memorized
definition, near-duplicate counts (against a brute-force count), target choice and Table 8's ordering."""

import json
from pathlib import Path

import numpy as np
import pytest

from unlearn_repro.data.segments import cap_segments, segment_rows, segment_text
from unlearn_repro.metrics.verbatim import (
    is_memorized,
    match_length,
    near_duplicates,
    ngrams,
    score_samples,
    shared_ngram_counts,
    token_overlap,
)
from unlearn_repro.pipeline.memorization import choose_targets
from unlearn_repro.report.memorization import ordering_holds


def test_segments_are_consecutive_word_runs_that_rebuild_the_text():
    text = "  one two\nthree  four five six\tseven "
    segs = segment_text(text, 3)
    assert segs == ["one two\nthree  ", "four five six\t", "seven"]
    assert "".join(segs) == text.strip()
    assert segment_text("a b", 5) == ["a b"] and segment_text("", 5) == []
    with pytest.raises(ValueError, match="segment_words"):
        segment_text("a", 0)
    rows = segment_rows([{"id": "t1", "text": "a b c d e"}, {"id": "t2", "text": "x"}], 2)
    assert [(r["id"], r["source"], r["text"]) for r in rows] == [
        ("t1#0", "t1", "a b"),
        ("t1#1", "t1", "c d"),
        ("t1#2", "t1", "e"),
        ("t2#0", "t2", "x"),
    ]


def test_segment_cap_keeps_whole_texts_in_order():
    rows = [
        {"id": str(i), "text": " ".join(["w"] * n)} for i, n in enumerate([4, 2, 6, 2])
    ]  # 2, 1, 3, 1 segments
    kept = cap_segments(rows, 2, max_segments=3)
    assert sum(len(segment_text(r["text"], 2)) for r in kept) <= 3
    assert [r["id"] for r in kept] == sorted(r["id"] for r in kept)  # original order
    assert kept == cap_segments(rows, 2, max_segments=3)  # seeded
    assert cap_segments(rows, 2, None) == rows


def test_match_length_and_overlap_by_hand():
    ref = [5, 6, 7, 8]
    assert match_length([5, 6, 7, 8], ref) == 4
    assert match_length([5, 6, 0, 8], ref) == 2  # stops at the first difference
    assert match_length([9, 6, 7, 8], ref) == 0
    assert match_length([5, 6], ref) == 2  # a shorter sample matches at most its length
    assert token_overlap([5, 6, 0, 8], ref) == 0.75  # positions, not a prefix
    assert token_overlap([5], ref) == 0.25


def test_memorized_means_one_sample_reproduces_the_next_L_tokens():
    ref = [1, 2, 3, 4, 5]
    samples = np.array([[1, 2, 3, 9], [1, 2, 9, 9], [0, 2, 3, 4]])
    s = score_samples(samples, ref, 4)
    assert s == {"memorized": False, "match_length": 3, "overlap": 0.75, "samples_memorized": 0}
    s = score_samples(np.array([[1, 2, 3, 4], [1, 0, 0, 0]]), ref, 4)
    assert s["memorized"] and s["samples_memorized"] == 1 and s["match_length"] == 4
    assert score_samples(samples, ref, 3)["memorized"]  # L = 3: the first sample suffices
    assert list(is_memorized([3, 4, 1], 3)) == [True, True, False]
    with pytest.raises(ValueError, match="fewer than L"):
        score_samples(samples, [1, 2], 4)


def test_near_duplicate_counts_match_a_brute_force_count():
    assert ngrams([1, 2, 3, 1, 2], 2) == {(1, 2), (2, 3), (3, 1)}
    windows = [[1, 2, 3, 4], [7, 8, 9]]
    corpus = [[0, 1, 2, 3], [2, 3, 4, 5, 1, 2], [9, 9], [7, 8, 9, 1, 2]]
    got = shared_ngram_counts(windows, corpus, 2)
    brute = np.array([near_duplicates(w, corpus, 2) for w in windows])
    assert (got == brute).all()
    assert got.tolist() == [
        [2, 3, 0, 1],
        [0, 0, 0, 2],
    ]  # by hand: (1,2),(2,3) | (1,2),(2,3),(3,4) | - | (1,2)


def test_targets_are_seeded_long_sequences():
    lengths = [10, 50, 60, 5, 70, 41, 40]
    t = choose_targets(lengths, 3, 40, seed=0)
    assert len(t) == 3 and all(lengths[i] > 40 for i in t) and t == sorted(t)
    assert t == choose_targets(lengths, 3, 40, seed=0)
    assert choose_targets(lengths, 10, 40, seed=1) == [1, 2, 4, 5]  # fewer long ones than asked: all of them
    assert choose_targets(lengths, 3, 100, seed=0) == []


def test_table8_ordering_rule():
    paper = {
        "none": 16,
        "retrain": 0,
        "finetune": 16,
        "gradient_ascent": 8,
        "fisher_removal": 4,
        "fisher_forgetting": 8,
    }
    assert ordering_holds(paper)
    assert not ordering_holds({**paper, "fisher_removal": 9})  # Fisher Removal above gradient ascent
    assert not ordering_holds({**paper, "finetune": 17})  # finetuning above no unlearning
    assert not ordering_holds({**paper, "retrain": 5})  # retraining above Fisher Removal
    assert not ordering_holds({k: 3 for k in paper})  # nothing removed at all
    with pytest.raises(KeyError, match="fisher_removal"):
        ordering_holds({k: v for k, v in paper.items() if k != "fisher_removal"})


def test_report_from_hand_made_extractions(tmp_path):
    """Table 8 (No unlearning first, ours ‖ paper), Table 10 (indelible vs removed near-duplicates) and the
    summary from two seeds of hand-made extraction results."""
    import pandas as pd

    from unlearn_repro.config import load
    from unlearn_repro.io import write_json
    from unlearn_repro.report.memorization import build_report, outputs

    cfg = load("params.yaml", "ci")
    # base memorizes targets 0 and 1 (2 of 3); fisher_removal removes target 1, gradient_ascent neither
    after = {
        "none": [True, True, False],
        "retrain": [False, False, False],
        "finetune": [True, True, False],
        "gradient_ascent": [True, True, False],
        "fisher_removal": [True, False, False],
        "fisher_forgetting": [True, True, False],
    }
    dups = [5, 1, 0]
    files = []
    for seed in (0, 1):
        for method, mem in after.items():
            targets = [
                {"index": i, "memorized": m, "match_length": 8 if m else 2, "overlap": 1.0 if m else 0.2}
                for i, m in enumerate(mem)
            ]
            if method == "none":
                targets = [
                    {
                        **t,
                        "near_duplicates": d,
                        "near_duplicates_other_texts": d,
                        "closest_shared_ngrams": d,
                        "closest": 2,
                        "text": f"target {i}",
                        "closest_text": "other",
                    }
                    for i, (t, d) in enumerate(zip(targets, dups))
                ]
            f = tmp_path / f"{method}{seed}.json"
            write_json(
                f,
                {
                    "dataset": "mtsamples",
                    "model": "tiny-gpt-neo",
                    "method": method,
                    "seed": seed,
                    "n_targets": 3,
                    "memorized": sum(mem),
                    "mean_match_length": 0.0,
                    "runtime_s": None if method == "none" else 2.0 + seed,
                    "targets": targets,
                },
            )
            files.append(str(f))
    build_report(cfg, files, tmp_path / "out")
    assert all(Path(p).exists() for paths in outputs(cfg, str(tmp_path / "out")).values() for p in paths)
    t8 = pd.read_csv(tmp_path / "out/tables/table8_mtsamples.csv")
    assert list(t8["method"])[:2] == ["No Unlearning", "Retraining"]
    assert t8.iloc[0, 1] == "2.0 ± 0.0 ‖ 16"
    assert t8.iloc[4, 2] == "2.50 ± 6.35 ‖ 1.57e+03"  # Fisher Removal's runtime: t(0.975, 1) · 0.71 / √2
    t10 = pd.read_csv(tmp_path / "out/tables/table10.csv").set_index("method")
    assert (
        t10.loc["Fisher Removal", "indelible"] == 2 and t10.loc["Fisher Removal", "removed"] == 2
    )  # 2 seeds
    assert (
        t10.loc["Fisher Removal", "near-dups, indelible"] == 5
        and t10.loc["Fisher Removal", "near-dups, removed"] == 1
    )
    assert t10.loc["Retraining", "indelible"] == 0 and t10.loc["Gradient Ascent", "removed"] == 0
    assert "target 0" in (tmp_path / "out/tables/table10_examples.md").read_text()
    summary = json.loads((tmp_path / "out/summary/metrics.json").read_text())["mtsamples.neo"]
    assert summary["fisher_removal"] == 1.0 and summary["none"] == 2.0 and summary["ordering_holds"] == 1.0

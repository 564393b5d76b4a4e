"""The premise table (report.curvature): one row per second-order cycle / grid point / Sophia run, each
judged against the stated thresholds, read from the files the studies write."""

import json

from unlearn_repro.report.curvature import is_degenerate, study_tables, summarize


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_tables_per_study_with_verdicts(tmp_path):
    res = tmp_path / "results"
    fr = {
        "method": "fisher_removal",
        "dataset": "arc_easy",
        "model": "tiny-gpt-neo",
        "seed": 0,
        "cycles": [
            {"cycle": 1, "curvature": {"cosine": 0.66, "norm_ratio": 0.5, "damping": 3e-4}},
            {"cycle": 2, "curvature": {"cosine": 0.97, "norm_ratio": 0.99, "damping": 3e-4}},
        ],
    }
    ff = {
        "method": "fisher_forgetting",
        "dataset": "arc_easy",
        "model": "tiny-gpt-neo",
        "seed": 0,
        "cycles": [{"cycle": 1, "curvature": {"spread": 0.02, "noise_cosine": 0.9998}}, {"cycle": 2}],
    }
    ga = {"method": "gradient_ascent", "cycles": [{"cycle": 1}]}
    _write(res / "runs/fisher_removal/arc_easy/tiny-gpt-neo/seed0/run.json", fr)
    _write(res / "runs/fisher_forgetting/arc_easy/tiny-gpt-neo/seed0/run.json", ff)
    _write(res / "runs/gradient_ascent/arc_easy/tiny-gpt-neo/seed0/run.json", ga)
    _write(
        res / "privacy/unlearn/fisher_removal/lambada/tiny-opt/seed0.json",
        {
            "method": "fisher_removal",
            "dataset": "lambada",
            "model": "tiny-opt",
            "seed": 0,
            "points": [
                {"coefficient": "gamma", "value": 1e-4, "curvature": {"cosine": 0.5}},
                {"coefficient": "gamma", "value": 1e-3, "curvature": {"cosine": 0.96}},
            ],
        },
    )
    _write(
        res / "tofu/runs/npo/SO/seed0.json",
        {
            "method": "npo",
            "optimizer_kind": "SO",
            "seed": 0,
            "curvature": {"clip_rate": 0.998, "unclipped_share": 0.001},
        },
    )
    _write(res / "tofu/runs/npo/FO/seed0.json", {"method": "npo", "optimizer_kind": "FO", "seed": 0})
    tables = study_tables(res)
    assert set(tables) == {"main", "privacy", "tofu"}
    main = tables["main"]
    assert list(main["method"]) == ["fisher_forgetting"] * 2 + ["fisher_removal"] * 2  # files in sorted order
    assert list(main["verdict"]) == ["curvature-degenerate", "not measured", "met", "curvature-degenerate"]
    assert list(tables["privacy"]["verdict"]) == ["met", "curvature-degenerate"]
    assert tables["tofu"]["verdict"].tolist() == ["curvature-degenerate"] and is_degenerate(tables["tofu"])
    assert not is_degenerate(main)
    s = summarize(main).set_index("method")
    assert (
        s.loc["fisher_removal", "degenerate"] == 1 and s.loc["fisher_removal", "cosine"] == (0.66 + 0.97) / 2
    )
    assert s.loc["fisher_forgetting", "not_measured"] == 1
    text = (res / "curvature/premise_main.md").read_text()
    assert "cos(F^-1 g, g) > 0.95" in text and "curvature-degenerate" in text
    assert (res / "curvature/premise_tofu.csv").exists()

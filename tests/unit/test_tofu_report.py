"""The TOFU report's two Table 1s: each column named by its definition, "ours ‖ paper" only where SOUL's
definition and ours agree (docs/like-for-like.md)."""

import numpy as np
import pandas as pd

from unlearn_repro.report import tofu as report


def _meta(v: float) -> dict:
    return {"metrics": {k: v for k, _, _ in report.COLUMNS} | {k: v for k, _ in report.TOFU_COLUMNS}}


def test_paper_values_appear_only_in_columns_whose_definitions_agree():
    runs = pd.DataFrame(
        [
            {
                "method": "npo",
                "kind": "SO",
                "seed": s,
                "clip_rate": 0.1,
                **{k: 0.5 for k, _, _ in report.COLUMNS},
            }
            for s in (0, 1)
        ]
    )
    columns = [(k, h) for k, h, _ in report.COLUMNS]
    paired = [i for i, (_, _, p) in enumerate(report.COLUMNS) if p]
    rows = report._rows(_meta(0.25), _meta(1.0), runs, ["npo"], columns, paired)
    so_npo = next(r for r in rows if r["Method"] == "SO-NPO")
    for i, (_key, header, agrees) in enumerate(report.COLUMNS):
        assert (" ‖ " in so_npo[header]) == agrees, header
        if agrees:
            assert so_npo[header] == f"0.500 ± 0.000 ‖ {report.PAPER['SO-npo'][i]:.3g}"
    assert " ‖ " not in rows[1][columns[0][1]]  # the retain model has no paper row
    assert rows[0][columns[0][1]] == f"0.250 (1 seed) ‖ {report.PAPER['Original'][0]:.3g}"
    mia = dict((k, agrees) for k, _, agrees in report.COLUMNS)["soul_mia_auc"]
    assert mia is False  # SOUL's code mislabels its MIA texts


def test_tofu_definitions_table_has_no_paper_values_and_missing_keys_show_na():
    runs = pd.DataFrame(
        [{"method": "npo", "kind": "FO", "seed": 0, "clip_rate": np.nan, "forget_quality": 0.3}]
    )
    rows = report._rows(_meta(0.25), _meta(1.0), runs, ["npo"], report.TOFU_COLUMNS)
    fo = rows[-1]
    assert fo["Forget quality (TOFU: KS vs retain model)"] == "0.300 (1 seed)"
    assert fo["Model utility (TOFU)"] == "n/a"
    assert all(" ‖ " not in str(v) for r in rows for v in r.values())
    assert all("SOUL" not in h for _, h in report.TOFU_COLUMNS)


def test_so_beats_fo_rule_holds_fails_and_ties_inside_the_interval():
    def runs(forget, utility=0.5):
        return pd.DataFrame({"forget_acc": forget, "model_utility": utility, "retain_acc": utility})

    fo = runs([0.60, 0.62, 0.58])
    assert report.so_beats_fo(fo, runs([0.20, 0.22, 0.18])) == "holds"
    assert report.so_beats_fo(fo, runs([0.80, 0.82, 0.78])) == "does not hold"
    assert report.so_beats_fo(fo, runs([0.30, 0.90, 0.50])) == "tie"  # the interval spans 0
    assert report.so_beats_fo(fo, runs([0.58, 0.60, 0.56])) == "tie"  # 0.02 < FORGET_MARGIN
    assert report.so_beats_fo(fo, runs([0.20, 0.22, 0.18], utility=0.3)) == "does not hold"  # utility lost


def test_no_verdict_where_the_base_model_never_knew_the_forget_set():
    fo = pd.DataFrame({"forget_acc": [0.60, 0.62, 0.58], "model_utility": 0.5, "retain_acc": 0.5})
    so = fo.assign(forget_acc=[0.20, 0.22, 0.18])
    assert report.loss_verdict(fo, so, premise_holds=True) == "holds"
    assert report.loss_verdict(fo, so, premise_holds=False) == "premise not met"

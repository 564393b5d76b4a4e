"""The cross-paper benchmark (issue 25): the grid every entry gets, why an entry cannot run on a task, the
selection rule and the verdicts by hand, and exactly the declared files written."""

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from tests.conftest import ROOT
from unlearn_repro.config import ConfigError, load
from unlearn_repro.frozen import overlay
from unlearn_repro.io import write_json
from unlearn_repro.pipeline import crossbench as P
from unlearn_repro.report import crossbench as R


@pytest.fixture(scope="module")
def cfg():
    return load(ROOT / "params.yaml", "embedded")


def test_every_entry_with_a_step_gets_the_same_grid_around_its_task_step(cfg):
    e = P.entries(cfg)
    factors = list(cfg.crossbench.factors)
    fr = P.grid(cfg, "tasks", e["fisher_removal"])
    assert [p["values"]["gamma"] for p in fr] == pytest.approx(
        [cfg.methods.fisher_removal.gamma * f for f in factors]
    )
    ff = P.grid(cfg, "memorization", e["fisher_forgetting"])[0]["values"]  # both keys of its noise scale
    assert set(ff) == {"mu", "sigma"} and ff["mu"] == pytest.approx(
        cfg.methods.fisher_forgetting.mu * factors[0]
    )
    assert P.grid(cfg, "tasks", e["retrain"]) == [{"factor": 1.0, "values": {}}]  # no step: one point
    # TOFU: tofu.lr of the optimizer kind; TDEC: the configuration with this method and adapter
    assert P.centre(cfg, "tofu", e["soul_npo"]) == {"lr": cfg.tofu.lr.npo.SO}
    assert P.centre(cfg, "tdec", e["lora_ihl"]) == {"lr": cfg.tdec.configs.lora_ihl.lr}
    assert P.centre(cfg, "tdec", e["soul_gd"]) == {"lr": cfg.tdec.configs.gd.lr}
    # no TDEC configuration with FLoRA + NPO: the first FLoRA configuration's lr
    odd = P.Entry("x", "npo", adapter="flora")
    assert P.centre(cfg, "tdec", odd) == {"lr": cfg.tdec.configs.flora_gd.lr}
    # off TDEC an adapter's step is the method's times the FLoRA paper's adapter / full ratio (2e-4 / 5e-5)
    assert P.adapter_scale(cfg, e["lora_ihl"]) == pytest.approx(4.0)
    assert P.centre(cfg, "tasks", e["flora_gd"]) == {
        "lr": pytest.approx(4 * cfg.methods.gradient_difference.lr)
    }
    assert P.centre(cfg, "tofu", e["lora_gd"]) == {
        "lr": pytest.approx(4 * cfg.tofu.lr.gradient_difference.FO)
    }
    assert P.adapter_scale(cfg, e["soul_gd"]) == 1.0
    no_full = overlay(cfg, {"tdec": {"configs": {"ga": {"adapter": "lora"}, "gd": {"adapter": "lora"}}}})
    assert P.adapter_scale(no_full, e["lora_gd"]) == 1.0  # no full configuration to take the ratio from
    # GA has no LoRA configuration: the ratio is one method's pair (LoRA GD over full GD), not LoRA GD over GA
    fast_ga = overlay(cfg, {"tdec": {"configs": {"ga": {"lr": 1.0e-4}}}})
    assert P.adapter_scale(fast_ga, P.Entry("y", "gradient_ascent", adapter="lora")) == pytest.approx(4.0)
    sizes = {
        len(P.grid(cfg, b, x))
        for b in P.BENCHMARKS
        for x in e.values()
        if x.method not in ("retrain", "finetune")
    }
    assert sizes == {len(factors)}


def test_a_cell_that_cannot_run_says_why(cfg):
    e = P.entries(cfg)
    assert "retraining reference" in P.why_not(cfg, "tofu", e["retrain"])
    assert "pretraining" in P.why_not(cfg, "tdec", e["retrain"])
    assert "Fisher Removal does not train with the shared loop" in P.why_not(cfg, "tdec", e["fisher_removal"])
    assert (
        P.why_not(cfg, "tasks", e["flora_ihl"]) is None
        and P.why_not(cfg, "memorization", e["retrain"]) is None
    )
    assert set(P.runnable(cfg, "tasks")) == set(e)
    assert not {"retrain", "finetune", "fisher_removal", "fisher_forgetting"} & set(P.runnable(cfg, "tofu"))


def test_bad_entries_are_refused_with_the_key_named(cfg):
    with pytest.raises(ConfigError, match=r"crossbench.enabled \['nope'\] are not in crossbench.entries"):
        P.check(overlay(cfg, {"crossbench": {"enabled": ["nope"]}}))
    with pytest.raises(ConfigError, match="crossbench.entries.bad.optimizer 'lion'"):
        P.check(overlay(cfg, {"crossbench": {"entries": {"bad": {"method": "npo", "optimizer": "lion"}}}}))


def test_the_small_grid_is_crossbench_with_its_factors_and_entries(cfg):
    """crossbench_small (the default target's): crossbench's block, its own factors; its entries, else
    crossbench's; a bad entry named under its own key."""
    from unlearn_repro.studies.crossbench_small import small_config

    small = small_config(overlay(cfg, {"crossbench_small": {"factors": [1.0, 2.0], "enabled": None}}))
    assert list(small.crossbench.factors) == [1.0, 2.0] and small.crossbench.enabled == cfg.crossbench.enabled
    assert (
        small.crossbench.entries == cfg.crossbench.entries
        and small.crossbench.bounds == cfg.crossbench.bounds
    )
    assert [p["factor"] for p in P.grid(small, "tasks", P.entries(small)["npo"])] == [1.0, 2.0]
    two = small_config(overlay(cfg, {"crossbench_small": {"enabled": ["npo", "retrain"]}}))
    assert set(P.entries(two)) == {"npo", "retrain"}
    with pytest.raises(
        ConfigError, match=r"crossbench_small.enabled \['nope'\] are not in crossbench.entries"
    ):
        small_config(overlay(cfg, {"crossbench_small": {"enabled": ["nope"]}}))


def _means(rows):
    return pd.DataFrame(rows, columns=["entry", "factor", "efficacy", "utility_loss", "selectable"])


def test_selection_takes_the_best_efficacy_within_the_bound_else_the_smallest_loss():
    means = _means(
        [
            ("a", 0.5, 1.0, 0.05, True),
            ("a", 1.0, 2.0, 0.09, True),  # best within 0.1
            ("a", 2.0, 9.0, 0.50, True),  # more efficacy, over the bound
            ("b", 0.5, 1.0, 0.30, True),
            ("b", 1.0, 3.0, 0.20, True),  # none within: the smallest loss, flagged
            ("c", 1.0, 5.0, 0.00, False),  # diverged somewhere: never selected
            ("c", 2.0, 0.5, 0.01, True),
        ]
    )
    picked = R.select(means, 0.1).set_index("entry")
    assert picked.loc["a", "factor"] == 1.0 and picked.loc["a", "status"] == "within bound"
    assert picked.loc["b", "factor"] == 1.0 and picked.loc["b", "status"] == R.OVER
    assert picked.loc["c", "factor"] == 2.0
    assert R.select(means, None).set_index("entry").loc["a", "factor"] == 2.0  # no bound: best efficacy


def test_pareto_flags_by_hand():
    means = _means(
        [
            ("a", 1, 1.0, 0.1, True),
            ("b", 1, 2.0, 0.2, True),
            ("c", 1, 1.5, 0.3, True),
            ("d", 1, 9.0, 0.0, False),
        ]
    )
    assert list(R.pareto_flags(means)) == [True, True, False, False]  # c: b has more efficacy, less loss


def _points(tmp_path, benchmark, entry, method, effs, *, factors=(0.5, 1.0, 2.0), loss=0.01, optimizer=None):
    files = []
    for seed, eff in enumerate(effs):
        rec = {
            "benchmark": benchmark, "entry": entry, "method": method, "optimizer": optimizer,
            "adapter": "full", "dataset": "arc_easy", "model": "tiny-gpt-neo", "seed": seed,
            "points": [
                {"factor": f, "values": {"lr": f}, "efficacy": eff * f, "utility_loss": loss * f,
                 "diverged": False, "runtime_s": 1.0, "sample_passes": 10 * (seed + 1),
                 "premise": {"clip_rate": 0.5} if optimizer else None,
                 "forgotten": seed > 0, "tag": "not a number"}
                for f in factors
            ],
        }  # fmt: skip
        path = tmp_path / "points" / benchmark / "arc_easy" / "tiny-gpt-neo" / entry / f"seed{seed}.json"
        write_json(path, rec)
        files.append(str(path))
    return files


def test_verdicts_use_the_welch_interval_of_the_selected_points(tmp_path, cfg):
    files = _points(tmp_path, "tasks", "inverted_hinge", "inverted_hinge", [2.0, 2.1, 1.9])
    files += _points(tmp_path, "tasks", "gradient_difference", "gradient_difference", [1.0, 1.1, 0.9])
    files += _points(tmp_path, "tasks", "npo", "npo", [1.0, 3.0, -1.0])
    files += _points(tmp_path, "tasks", "soul_npo", "npo", [1.5, 1.6, 1.4], optimizer="sophia")
    df = R.long_points(files)
    boards = {"tasks": R.leaderboard(cfg, "tasks", df)}
    v = R.verdict_rows(boards, df).set_index(["question", "entry"])
    # bound 0.1 at 0.01 per factor: every factor within it, so each entry's largest factor (2.0) is selected
    ihl = v.loc[("IHL beats gradient difference", "inverted_hinge")]
    assert ihl["verdict"] == "holds"
    welch = sps.ttest_ind([4.0, 4.2, 3.8], [2.0, 2.2, 1.8], equal_var=False).confidence_interval(0.95)
    assert ihl["difference"] == f"+2.000 ± {(welch.high - welch.low) / 2:.3f}"
    assert v.loc[("Sophia helps", "soul_npo"), "verdict"] == "tie"  # npo's seeds spread over it
    lead = v.loc[(R.LEADS, "soul_npo")]
    assert lead["against"] == "inverted_hinge" and lead["verdict"] == "does not hold"
    # an entry over the bound loses to one within it, whatever its efficacy
    files += _points(
        tmp_path, "tasks", "soul_gd", "gradient_difference", [9.0, 9.1, 8.9], loss=1.0, optimizer="sophia"
    )
    df = R.long_points(files)
    boards = {"tasks": R.leaderboard(cfg, "tasks", df)}
    v = R.verdict_rows(boards, df).set_index(["question", "entry"])
    assert v.loc[("Sophia helps", "soul_gd"), "verdict"] == "does not hold"
    assert v.loc[("Sophia helps", "soul_gd"), "status"] == "over bound / within bound"
    board = boards["tasks"].set_index("entry")
    assert board.loc["soul_gd", "rank"] == 5 and board.loc["soul_gd", "factor"] == 0.5  # smallest loss
    assert board.loc["inverted_hinge", "rank"] == 1 and board.loc["inverted_hinge", "factor"] == 2.0
    assert board.loc["fisher_removal", "status"] == "not run" and math.isnan(
        board.loc["fisher_removal", "rank"]
    )


def test_report_writes_exactly_the_declared_files(tmp_path, cfg):
    files = _points(tmp_path, "tasks", "gradient_difference", "gradient_difference", [1.0, 1.2, 0.8])
    files += _points(tmp_path, "memorization", "retrain", "retrain", [0.5, 0.6, 0.4], factors=(1.0,))
    out = tmp_path / "out"
    summary = R.build_report(cfg, files, out)
    declared = {Path(p) for ps in R.outputs(cfg, out).values() for p in ps}
    written = {p for p in out.rglob("*") if p.is_file()}
    assert written == declared
    ranks = pd.read_csv(out / "tables" / "ranks.csv", keep_default_na=False).set_index("entry")
    assert ranks.loc["retrain", "tofu"] == "n/a" and str(ranks.loc["gradient_difference", "tasks"]) == "1"
    assert summary["memorization"]["retrain"]["status"] == "within bound"  # no utility measured: no bound
    # a task's further metrics (here a flag) reach the points table and the leaderboard's CSV, as means
    board = pd.read_csv(out / "tables" / "leaderboard_tasks.csv").set_index("entry")
    assert board.loc["gradient_difference", "mean_forgotten"] == pytest.approx(2 / 3)
    assert board.loc["gradient_difference", "sample_passes"] == 20  # seeds' 10, 20, 30: the mean
    assert summary["tasks"]["gradient_difference"]["sample_passes"] == 20
    assert "tag" not in pd.read_csv(out / "tables" / "points.csv").columns
    assert R.benchmarks_in(files) == ["memorization", "tasks"]


def test_download_and_check_hub_cover_every_task_the_benchmark_reads(cfg):
    from unlearn_repro.studies import STUDIES

    need = set(STUDIES.get("crossbench").datasets(cfg))
    assert {"tofu", *STUDIES.get("tdec").datasets(cfg), *cfg.crossbench.memorization.corpora} <= need

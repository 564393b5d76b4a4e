"""Why a cycle's metrics are marked diverged (null, with the reason) instead of scored."""

from unlearn_repro.pipeline.evaluation import diverged_reason

FINITE = {"accuracy": 0.5, "test_nll": 4.0, "exposure": [1.0, 2.0], "retain_accuracy": 0.5}


def test_a_cycle_is_diverged_when_its_run_says_so_or_its_scores_are_nan():
    assert diverged_reason({"diverged": False}, FINITE) is None
    assert "non-finite loss" in diverged_reason({"diverged": True}, None)
    assert diverged_reason({"diverged": True, "diverged_reason": "lr too large"}, None) == "lr too large"
    nan = {**FINITE, "exposure": [1.0, float("nan")], "test_nll": float("nan")}
    assert diverged_reason({}, nan) == "the model's scores are NaN (test_nll, exposure)"


def test_a_run_with_one_diverged_cycle_is_left_out_of_every_mean_whole():
    import pandas as pd

    from unlearn_repro.report.tables import converged, diverged_runs

    rows = [
        dict(
            dataset="piqa",
            model="m",
            method="fisher_removal",
            seed=s,
            cycle=c,
            delta_exp=-1.0 * s,
            diverged=(s == 1 and c == 2),
        )
        for s in (0, 1)
        for c in (1, 2, 3)
    ]
    df = pd.DataFrame(rows)
    kept = converged(df)
    assert set(kept["seed"]) == {0} and len(kept) == 3  # seed 1's cycles 1 and 3 are out too
    assert diverged_runs(df) == 1

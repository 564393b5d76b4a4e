"""Verdict rules on hand-made results: each claim's rule decides as written, and a missing study is 'not run'."""
import pandas as pd

from unlearn_repro.report.verdicts import accuracy_informative, claims


def _df(efficacy_best="fisher_removal", base_accuracy=0.6):
    rows = []
    for dataset in ("arc_easy", "piqa"):
        for m, dexp, t in (("retrain", -1.0, 20.0), ("finetune", -0.2, 4.0), ("gradient_ascent", -0.8, 1.0),
                           ("fisher_removal", -0.5, 10.0), ("fisher_forgetting", -0.1, 12.0)):
            if m == efficacy_best:
                dexp = -2.0
            rows.append({"dataset": dataset, "model": "tiny-gpt-neo", "family": "neo", "size": "tiny", "method": m,
                         "seed": 0, "cycle": 1, "delta_exp": dexp, "delta_acc": {"gradient_ascent": -5.0}.get(m, 0.0),
                         "runtime_s": t, "base_accuracy": base_accuracy})
    return pd.DataFrame(rows)


def _by_claim(rows):
    return {r["claim"]: r["verdict"] for r in rows}


def test_rules_decide_as_written_and_missing_studies_are_not_run():
    v = _by_claim(claims(_df(), None, None, None, None, [1]))
    assert v["Fisher Removal has the strongest efficacy"] == "holds"
    assert v["The second-order methods are cheaper than retraining"] == "holds"
    assert v["Finetuning does not erase"] == "does not hold"                 # Δexp -0.2 and not the worst rank
    assert v["Second-order methods keep the weights far closer to retraining than gradient ascent"] == "not run"
    v = _by_claim(claims(_df("retrain"), None, None, None, None, [1]))
    assert v["Fisher Removal has the strongest efficacy"] == "does not hold"
    kl = pd.DataFrame({"method": ["gradient_ascent", "fisher_removal", "fisher_forgetting"], "kl": [5.0, 0.1, 0.3]})
    onion = pd.DataFrame([{"onion_effect": True, "rose": 30, "kept": 76, "crossed": 2, "threshold": 4.0, "wilcoxon_p": 0.01}])
    shift = pd.DataFrame({"method": ["npo", "retrain"], "ks_p": [0.5, 0.01], "distribution_shifted": [False, True]})
    v = _by_claim(claims(_df(), None, kl, onion, shift, [1]))
    assert v["Second-order methods keep the weights far closer to retraining than gradient ascent"] == "holds"
    assert v["The onion effect: removing the most exposed samples exposes others"] == "holds"
    assert v["With a random forget set, the retained samples' exposure distribution does not shift"] == "does not hold"


def test_accuracy_at_chance_makes_accuracy_claims_untestable():
    assert accuracy_informative(_df(base_accuracy=0.6))
    assert not accuracy_informative(_df(base_accuracy=0.27))    # arc 0.25 / piqa 0.5 chance: mean gap < 0.05
    v = _by_claim(claims(_df(base_accuracy=0.27), None, None, None, None, [1]))
    assert v["Gradient ascent is the least stable (Δacc, the paper's fidelity)"] == "not testable at this scale"
    assert v["Gradient ascent is the least stable (Δ retain accuracy)"] == "not run"      # no retain column here


def test_table8_ordering_is_judged_from_the_memorization_counts():
    claim = ("Table 8 ordering: retraining (0) < Fisher Removal < gradient ascent ≈ Fisher Forgetting < finetuning "
             "= no unlearning")
    assert _by_claim(claims(_df(), None, None, None, None, [1]))[claim] == "not run"

    def counts(**over):
        paper = {"none": 16, "retrain": 0, "finetune": 16, "gradient_ascent": 8, "fisher_removal": 4,
                 "fisher_forgetting": 8, **over}
        return pd.DataFrame([{"dataset": c, "family": f, "method": m, "seed": s, "memorized": v + s}
                             for c in ("mtsamples", "enron") for f in ("neo", "opt") for m, v in paper.items()
                             for s in (0, 1)])
    assert _by_claim(claims(None, None, None, None, None, [1], memorization=counts()))[claim] == "holds"
    assert _by_claim(claims(None, None, None, None, None, [1], memorization=counts(fisher_removal=12)))[claim] \
        == "does not hold"
    none = counts().assign(memorized=0)   # the base models memorize nothing: the premise fails
    assert _by_claim(claims(None, None, None, None, None, [1], memorization=none))[claim] == "not testable at this scale"


def _privacy(dp_lambada_best=True):
    """Hand-made Figure 3 points: on LAMBADA the DP models sit on the Pareto front (lowest exposure for their
    test NLL), on PIQA gradient ascent is better on both axes than each DP model."""
    rows = []
    for d in ("lambada", "piqa"):
        for model in ("tiny-gpt-neo", "tiny-opt"):
            rows.append({"dataset": d, "model": model, "method": "dp_sgd", "value": float("inf"), "exposure": 5.0,
                         "test_nll": 3.0, "slowdown": None})
            for eps, (x, y) in zip((1.0, 8.0), ((1.0, 4.0), (2.0, 3.5))):
                rows.append({"dataset": d, "model": model, "method": "dp_sgd", "value": eps, "exposure": x,
                             "test_nll": y, "slowdown": 3.0})
            better = d == "piqa" or not dp_lambada_best
            for lr, (x, y) in zip((1e-3, 3e-3), ((0.5, 3.4), (0.8, 3.2)) if better else ((4.0, 3.6), (4.5, 3.3))):
                rows.append({"dataset": d, "model": model, "method": "gradient_ascent", "value": lr, "exposure": x,
                             "test_nll": y, "slowdown": None})
    return pd.DataFrame(rows)


def test_privacy_claims_follow_the_pareto_and_slowdown_rules():
    from unlearn_repro.report.privacy import pareto_share
    pts = _privacy()
    lam = pts[(pts["dataset"] == "lambada") & (pts["model"] == "tiny-opt")]
    assert pareto_share(lam) == 1.0                      # nothing beats a DP model on both axes
    assert pareto_share(pts[(pts["dataset"] == "piqa") & (pts["model"] == "tiny-opt")]) == 0.0
    v = _by_claim(claims(_df(), None, None, None, None, [1], privacy=pts))
    dataset_claim = [c for c in v if c.startswith("DP-SGD's privacy–utility trade-off")][0]
    assert v[dataset_claim] == "holds" and v["DP-SGD makes training more expensive"] == "holds"
    v = _by_claim(claims(_df(), None, None, None, None, [1], privacy=_privacy(dp_lambada_best=False)))
    assert v[dataset_claim] == "does not hold"           # DP dominated on both data sets
    v = _by_claim(claims(_df(), None, None, None, None, [1], privacy=pts[pts["dataset"] == "lambada"]))
    assert v[dataset_claim] == "not testable at this scale"   # PIQA not in this run
    fast = pts.assign(slowdown=pts["slowdown"].where(pts["slowdown"].isna(), 0.8))
    assert _by_claim(claims(_df(), None, None, None, None, [1], privacy=fast))["DP-SGD makes training more expensive"] \
        == "does not hold"
    v = _by_claim(claims(_df(), None, None, None, None, [1]))
    assert v[dataset_claim] == "not run" and v["DP-SGD makes training more expensive"] == "not run"

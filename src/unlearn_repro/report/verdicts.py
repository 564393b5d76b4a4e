"""A verdict for every qualitative claim of the paper, one registered function per claim.

Each claim declares its § and its rule in words, and its function reads the studies' outputs and returns a
verdict, the numbers behind it and its premise (met / not met, with the number that decides it). Verdicts:
holds / does not hold / tie (the difference lies inside its 95 % t interval over seeds, or inside the
claim's stated tolerance: see report/stats.py) / premise not met / not testable at this scale / not run
(its study is not built or not in this run). Every row names the file its numbers come from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_repro.metrics.curvature import COSINE_MAX
from unlearn_repro.report.figures import method_label
from unlearn_repro.report.memorization import NONE, ORDER_METHODS, label, ordering_holds
from unlearn_repro.report.privacy import pareto_share
from unlearn_repro.report.stats import (
    ESTIMATOR,
    FAILS,
    HOLDS,
    PREMISE_NOT_MET,
    TIE,
    compare,
    compare_to,
    fmt_interval,
    parse_per_seed,
    t_interval,
)
from unlearn_repro.report.tables import converged, diverged_runs, rank_methods, write_table

PAPER_METHODS = ("retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting")
SECOND_ORDER = ("fisher_removal", "fisher_forgetting")
CHANCE = {"arc_easy": 0.25, "piqa": 0.5, "mathqa": 0.25, "lambada": 0.0}  # accuracy of a random guess
INFORMATIVE = 0.05  # accuracy carries signal only when the base model beats chance by this much
EXPOSURE_UNSEEN = 1.0  # bits: a sample the model never saw ranks near |S|/2 among the references
UNTESTABLE, NOT_RUN = "not testable at this scale", "not run"
SCENARIO = ["family", "dataset", "size", "cycle"]
OUTCOME = {"less": HOLDS, "greater": FAILS, TIE: TIE}  # for rules where "lower than the rival" is the claim

# The paper's runtime setting (§4.3, §4.4, §5.1.3): m, the cache of forget samples per cycle, the forget batch
# (one F^-1 per batch), retraining's epochs over D+, and the training-set sizes of its data sets (§4.1)
PAPER_M, PAPER_CACHE, PAPER_FORGET_BATCH, PAPER_RETRAIN_EPOCHS = 1024, 128, 32, 5
PAPER_TRAIN = {"arc_easy": 2251, "piqa": 16113, "mathqa": 29837, "lambada": 4869}
LARGE = ("piqa", "mathqa")  # §5.1.3: the large data sets, where second-order methods should cost less
# Figure 5: a gap in utility change smaller than this is a tie (1 accuracy point; 0.05 nats/token ≈ 5 % PPL)
FIG5_TOLERANCE = {"accuracy": 0.01, "retain_accuracy": 0.01, "test_nll": 0.05}


@dataclass
class Studies:
    """Every study output the claims read (None: not built or not in this run) and where each came from."""

    main: pd.DataFrame | None = None  # collected metrics, one row per (run, cycle)
    kl: pd.DataFrame | None = None
    onion: pd.DataFrame | None = None
    shift: pd.DataFrame | None = None
    memorization: pd.DataFrame | None = None
    privacy: pd.DataFrame | None = None
    curvature: pd.DataFrame | None = None  # the main study's premise table (report/curvature.py)
    cycles: list[int] = field(default_factory=lambda: [1, 2])
    num_grads: int = PAPER_M  # this run's m (fisher.num_grads)
    retrain_epochs: int = PAPER_RETRAIN_EPOCHS
    sources: dict[str, str] = field(default_factory=dict)
    left_out: int = 0  # diverged runs of the main study, left out of every rule

    def __post_init__(self):
        """The paper's claims compare its own five methods, on the runs that did not diverge."""
        if self.main is not None:
            paper = self.main[self.main["method"].isin(PAPER_METHODS)]
            self.left_out = diverged_runs(paper)
            self.main = converged(paper)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    evidence: str
    premise: str = "—"


@dataclass(frozen=True)
class Claim:
    section: str
    text: str
    rule: str
    study: str  # the Studies field it reads; names its source file
    judge: Callable[[Studies], Verdict | None]  # None: the study lacks what the claim compares


CLAIMS: dict[str, Claim] = {}
STUDY_NAMES = {
    "main": "the main study",
    "kl": "the discussions study (with retraining enabled)",
    "onion": "the discussions study",
    "shift": "the discussions study",
    "memorization": "the memorization study with the paper's five methods",
    "privacy": "the privacy study",
}


def claim(key: str, section: str, text: str, rule: str, study: str):
    """Register a claim's judge under `key` (the order of registration is the table's order)."""

    def deco(fn):
        if key in CLAIMS:
            raise ValueError(f"claim {key!r} is registered twice")
        CLAIMS[key] = Claim(section, text, rule, study, fn)
        return fn

    return deco


# --- helpers ------------------------------------------------------------------------------------------------
def _fmt(values: dict, fmt="{:.2f}") -> str:
    return ", ".join(f"{method_label(m)} {fmt.format(v)}" for m, v in values.items())


def _read(path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path and Path(path).exists() else None


def premise(met: bool, what: str) -> str:
    return f"{'met' if met else 'not met'}: {what}"


def decide(outcome: str, premise_text: str, evidence: str) -> Verdict:
    """A verdict from a comparison's outcome, unless the premise is not met."""
    verdict = outcome if premise_text.startswith("met") else PREMISE_NOT_MET
    return Verdict(verdict, evidence, premise_text)


def has(df: pd.DataFrame | None, *methods: str) -> bool:
    return df is not None and not df.empty and set(methods) <= set(df["method"])


def per_seed_mean(df: pd.DataFrame, method: str, column: str) -> pd.Series:
    """One value per seed: the method's mean of `column` over that seed's scenarios."""
    return df[df["method"] == method].groupby("seed")[column].mean()


def accuracy_informative(df: pd.DataFrame) -> bool:
    """Does the fine-tuned model beat chance on the tasks (else Δacc is seed noise)?"""
    return accuracy_gap(df) > INFORMATIVE


def accuracy_gap(df: pd.DataFrame) -> float:
    base = df.groupby("dataset")["base_accuracy"].mean()
    gaps = [base[d] - CHANCE[d] for d in base.index if d in CHANCE]
    return float(np.mean(gaps)) if gaps else math.nan


def accuracy_premise(df: pd.DataFrame) -> str:
    gap = accuracy_gap(df)
    return premise(gap > INFORMATIVE, f"base accuracy beats chance by {gap:+.3f} (needs > {INFORMATIVE})")


def exposure_premise(df: pd.DataFrame) -> str:
    """Erasure is measurable only when the model exposes its forget sets above an unseen sample's level."""
    base = float(df.loc[df["cycle"] == df["cycle"].min(), "base_exposure"].mean())
    return premise(
        base > EXPOSURE_UNSEEN,
        f"forget sets' exposure before unlearning {base:.2f} bits "
        f"(needs > {EXPOSURE_UNSEEN:g}, an unseen sample's)",
    )


def curvature_premise(table: pd.DataFrame | None, method: str) -> str:
    """Whether `method`'s runs took a step that curvature shaped (docs/curvature.md): met unless every
    measured row of the premise table is curvature-degenerate."""
    rows = None if table is None else table[table["method"] == method]
    if rows is None or rows.empty or (rows["verdict"] == "not measured").all():
        return premise(False, f"no curvature premise measured for {method_label(method)}")
    measured = rows[rows["verdict"] != "not measured"]
    degenerate = int((measured["verdict"] == "curvature-degenerate").sum())
    return premise(
        degenerate < len(measured),
        f"{method_label(method)} cos(F^-1 g, g) {measured['cosine'].mean():.3f}, "
        f"{degenerate} of {len(measured)} cycles curvature-degenerate (cos > {COSINE_MAX})",
    )


def both(*premises: str) -> str:
    """Met when every premise is; the texts side by side."""
    met = all(p.startswith("met") for p in premises)
    return premise(met, "; ".join(p.split(": ", 1)[-1] for p in premises))


def moves_premise(values: pd.Series, what: str) -> str:
    """A utility metric that no method changes (every change exactly 0) cannot rank the methods."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    largest = float(v.abs().max()) if len(v) else 0.0
    return premise(largest > 0, f"largest |change| of {what} over all runs {largest:.3g} (needs > 0)")


# --- §5: the main study -------------------------------------------------------------------------------------
@claim(
    "efficacy",
    "§5.1.4",
    "Fisher Removal has the strongest efficacy",
    "Fisher Removal's Δexp (per seed: mean over scenarios) is below that of the best other method of the "
    "paper's five; a difference inside its 95 % t interval is a tie",
    "main",
)
def fisher_removal_strongest(s: Studies) -> Verdict | None:
    main = s.main[s.main["cycle"].isin(s.cycles)]
    if not has(main, "fisher_removal") or main["method"].nunique() < 2:
        return None
    seeds = {m: per_seed_mean(main, m, "delta_exp") for m in dict.fromkeys(main["method"])}
    rival = min((m for m in seeds if m != "fisher_removal"), key=lambda m: seeds[m].mean())
    ranks = rank_methods(main, SCENARIO).groupby("method")["efficacy"].mean()
    evidence = (
        f"Δexp (bits): Fisher Removal {fmt_interval(t_interval(seeds['fisher_removal']))}, "
        f"best other {method_label(rival)} {fmt_interval(t_interval(seeds[rival]))}; "
        "mean efficacy ranks: " + _fmt(ranks.to_dict())
    )
    prem = both(exposure_premise(main), curvature_premise(s.curvature, "fisher_removal"))
    return decide(OUTCOME[compare(seeds["fisher_removal"], seeds[rival])], prem, evidence)


def _rank_spread(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per seed and method: the std over scenarios of the method's rank by |column| (lower |Δ| = rank 1)."""
    agg = df.assign(gap=df[column].abs()).groupby(SCENARIO + ["seed", "method"], as_index=False)["gap"].mean()
    agg["rank"] = agg.groupby(SCENARIO + ["seed"])["gap"].rank(method="min")
    return agg.groupby(["seed", "method"])["rank"].std(ddof=0).unstack("method")


def _least_stable(s: Studies, column: str, premise_of: Callable[[pd.DataFrame], str]) -> Verdict | None:
    main = s.main[s.main["cycle"].isin(s.cycles)]
    if (
        not has(main, "gradient_ascent")
        or main["method"].nunique() < 2
        or column not in main
        or main[column].isna().all()
    ):
        return None
    spread = _rank_spread(main, column)
    rival = max((m for m in spread if m != "gradient_ascent"), key=lambda m: spread[m].mean())
    evidence = (
        f"std over scenarios of the |{column}| rank: gradient ascent "
        f"{fmt_interval(t_interval(spread['gradient_ascent']), signed=False)}, most spread other "
        f"{method_label(rival)} {fmt_interval(t_interval(spread[rival]), signed=False)}"
    )
    outcome = {"greater": HOLDS, "less": FAILS, TIE: TIE}[compare(spread["gradient_ascent"], spread[rival])]
    return decide(outcome, premise_of(main), evidence)


@claim(
    "stability_acc",
    "§5.1.2, §5.1.4",
    "Gradient ascent is the least robust in fidelity (|Δacc|)",
    "gradient ascent's rank by |Δacc| (closeness to the model before unlearning, §4.2.2) varies most over "
    "scenarios: its std of ranks (per seed) is above every other method's; inside the interval: a tie",
    "main",
)
def gradient_ascent_least_stable_acc(s: Studies) -> Verdict | None:
    return _least_stable(s, "delta_acc", accuracy_premise)


@claim(
    "stability_retain",
    "§5.1.2, §5.1.4",
    "Gradient ascent is the least robust in fidelity (|Δ retain accuracy|)",
    "as above, by |Δ retain accuracy| (D+ rows, which move where test accuracy sits at chance)",
    "main",
)
def gradient_ascent_least_stable_retain(s: Studies) -> Verdict | None:
    return _least_stable(
        s, "delta_retain_acc", lambda df: moves_premise(df["delta_retain_acc"], "retain accuracy")
    )


@claim(
    "finetuning",
    "§5.1.1, §5.1.4",
    "Finetuning does not erase",
    "finetuning's Δexp (per seed: mean over scenarios) is not below 0: its 95 % interval reaches 0 or above",
    "main",
)
def finetuning_does_not_erase(s: Studies) -> Verdict | None:
    main = s.main[s.main["cycle"].isin(s.cycles)]
    if not has(main, "finetune"):
        return None
    ft = per_seed_mean(main, "finetune", "delta_exp")
    outcome = compare_to(ft, 0.0)
    verdict = FAILS if outcome == "less" else HOLDS  # a tie with 0 is "no erasure": the claim holds
    return decide(verdict, exposure_premise(main), f"finetuning Δexp {fmt_interval(t_interval(ft))} bits")


def sample_passes(df: pd.DataFrame, num_grads: int, retrain_epochs: int) -> pd.Series:
    """Per-sample forward + backward passes of a first cycle: the Fisher methods take m gradients of D+ per
    F^-1 (fisher_rebuilds of them) plus one per forget sample; retraining takes `epochs` passes over D+."""
    fisher = df["fisher_rebuilds"] * num_grads + df["n_forgotten"]
    retrain = retrain_epochs * df["n_retain"]
    return pd.Series(np.where(df["method"] == "retrain", retrain, fisher), index=df.index, dtype=float)


def paper_passes(method: str, dataset: str) -> float:
    """The same count in the paper's setting: m = 1024, 128 forget samples in batches of 32, 5 epochs over
    D+."""
    if method == "retrain":
        return PAPER_RETRAIN_EPOCHS * (PAPER_TRAIN[dataset] - PAPER_CACHE)
    return math.ceil(PAPER_CACHE / PAPER_FORGET_BATCH) * PAPER_M + PAPER_CACHE


def projected_ratios(df: pd.DataFrame, s: Studies) -> dict[tuple[str, str], pd.Series]:
    """(second-order method, paper data set) -> per seed: its projected cycle time over retraining's, from
    each method's measured seconds per sample pass on the first cycle of the smallest GPT-Neo model."""
    first = df[(df["cycle"] == 1) & df["method"].isin(("retrain",) + SECOND_ORDER)].copy()
    neo = first[first["family"] == "neo"]
    first = first[first["model"] == sorted(set(neo["model"] if not neo.empty else first["model"]))[0]]
    first["passes"] = sample_passes(first, s.num_grads, s.retrain_epochs)
    per_pass = first.groupby(["method", "seed"]).apply(
        lambda g: g["runtime_s"].sum() / g["passes"].sum(), include_groups=False
    )
    out = {}
    for m in [x for x in SECOND_ORDER if x in per_pass.index.get_level_values(0)]:
        for d in PAPER_TRAIN:
            ratio = (per_pass[m] * paper_passes(m, d)) / (per_pass["retrain"] * paper_passes("retrain", d))
            out[(m, d)] = ratio.dropna()
    return out


@claim(
    "runtime",
    "§5.1.3, Fig. 2",
    "Second-order methods are cheaper than retraining on large data sets",
    "at the paper's m = 1024 and corpus sizes (projected from each method's measured seconds per sample "
    "pass): Fisher Removal's and Fisher Forgetting's cycle time over retraining's is below 1 on PIQA and "
    "MathQA (95 % interval over seeds); an interval containing 1 is a tie",
    "main",
)
def second_order_cheaper(s: Studies) -> Verdict | None:
    main = s.main
    if not has(main, "retrain") or not any(m in set(main["method"]) for m in SECOND_ORDER):
        return None
    rows = main[main["method"].isin(("retrain",) + SECOND_ORDER) & (main["cycle"] == 1)]
    measured = rows.groupby("method")["runtime_s"].mean()
    at_ours = f"measured at m = {s.num_grads}, s per cycle: " + _fmt(measured.to_dict(), "{:.2f}")
    passes = ["n_retain", "fisher_rebuilds"]
    recorded = set(passes) <= set(rows) and rows[passes].notna().any().all()
    if not recorded:
        return Verdict(
            f"not testable at m = {s.num_grads}",
            at_ours,
            premise(False, "the runs record no D+ size / Fisher rebuilds (run.json): no sample passes"),
        )
    ratios = projected_ratios(main, s)
    outcomes = {k: compare_to(v, 1.0) for k, v in ratios.items() if k[1] in LARGE}
    evidence = (
        at_ours
        + "; projected time / retraining's at m = 1024: "
        + ", ".join(
            f"{method_label(m)} on {d} {fmt_interval(t_interval(v), signed=False)}"
            for (m, d), v in ratios.items()
        )
    )
    verdict = FAILS if "greater" in outcomes.values() else TIE if TIE in outcomes.values() else HOLDS
    return decide(verdict, premise(True, f"sample passes recorded for {len(rows)} first cycles"), evidence)


def utility_change(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per extended run (the runs that reach the last cycle): its utility change from before unlearning to the
    last cycle, signed so that higher = kept more utility (test NLL: a fall is good)."""
    last = df[df["cycle"] == df["cycle"].max()]
    if metric == "test_nll":
        base = last["test_nll"] - last["delta_test_nll"]
    else:
        base = last[f"base_{metric}"]
    change = last[metric] - base
    return last.assign(change=-change if metric == "test_nll" else change)


def _keeps_utility(s: Studies, metric: str) -> Verdict | None:
    main = s.main
    before = "delta_test_nll" if metric == "test_nll" else f"base_{metric}"
    if not has(main, "fisher_forgetting") or not {metric, before} <= set(main) or main[metric].isna().all():
        return None
    runs = utility_change(main, metric)
    tol = FIG5_TOLERANCE[metric]
    ff = runs.loc[runs["method"] == "fisher_forgetting", "change"]
    others = [m for m in dict.fromkeys(runs["method"]) if m not in ("retrain", "fisher_forgetting")]
    if not others:
        return None
    outcomes = {m: compare(runs.loc[runs["method"] == m, "change"], ff, tol) for m in others}
    evidence = (
        f"{metric} change (higher = kept more) after {int(main['cycle'].max())} cycles: "
        + ", ".join(
            f"{method_label(m)} {fmt_interval(t_interval(runs.loc[runs['method'] == m, 'change']), 3)}"
            for m in ["fisher_forgetting"] + others
        )
        + f"; tolerance {tol:g}"
    )
    verdict = FAILS if "greater" in outcomes.values() else TIE if TIE in outcomes.values() else HOLDS
    prem = (
        accuracy_premise(main)
        if metric == "accuracy"
        else moves_premise(runs["change"], metric.replace("_", " "))
    )
    return decide(verdict, prem, evidence)


def _fig5_rule(what: str, metric: str) -> str:
    return (
        f"retraining aside, no method's {what} change from before unlearning to the last cycle is better "
        f"than Fisher Forgetting's by more than both the 95 % interval and {FIG5_TOLERANCE[metric]:g}; a "
        "method within them ties (the verdict is then 'tie')"
    )


@claim(
    "extended_accuracy",
    "§9.2, Fig. 5",
    "Fisher Forgetting keeps utility best over extended cycles (test accuracy)",
    _fig5_rule("test accuracy", "accuracy"),
    "main",
)
def fisher_forgetting_keeps_accuracy(s: Studies) -> Verdict | None:
    return _keeps_utility(s, "accuracy")


@claim(
    "extended_retain_accuracy",
    "§9.2, Fig. 5",
    "Fisher Forgetting keeps utility best over extended cycles (retain accuracy)",
    _fig5_rule("retain accuracy", "retain_accuracy"),
    "main",
)
def fisher_forgetting_keeps_retain_accuracy(s: Studies) -> Verdict | None:
    return _keeps_utility(s, "retain_accuracy")


@claim(
    "extended_test_nll",
    "§9.2, Fig. 5",
    "Fisher Forgetting keeps utility best over extended cycles (test NLL)",
    _fig5_rule("test NLL", "test_nll"),
    "main",
)
def fisher_forgetting_keeps_test_nll(s: Studies) -> Verdict | None:
    return _keeps_utility(s, "test_nll")


# --- §9: the discussion studies -----------------------------------------------------------------------------
@claim(
    "kl",
    "§9.1, Fig. 4",
    "Second-order methods keep the weights far closer to retraining than gradient ascent",
    "KL to retraining of Fisher Removal and of Fisher Forgetting are each below gradient ascent's (per "
    "seed; a difference inside its 95 % t interval is a tie)",
    "kl",
)
def kl_order(s: Studies) -> Verdict | None:
    k = s.kl.set_index("method")
    values = {m: parse_per_seed(k.loc[m, "per_seed"]) if "per_seed" in k else [] for m in k.index}
    values = {m: v or ([k.loc[m, "kl"]] if pd.notna(k.loc[m, "kl"]) else []) for m, v in values.items()}
    values = {m: v for m, v in values.items() if v}
    prem = premise(
        bool(values), f"KL to retraining computed for {len(values)} method(s) (needs retraining enabled)"
    )
    if "gradient_ascent" not in values:
        return Verdict(PREMISE_NOT_MET if not values else NOT_RUN, "no KL for gradient ascent", prem)
    outcomes = [compare(values[m], values["gradient_ascent"]) for m in SECOND_ORDER if m in values]
    verdict = FAILS if "greater" in outcomes else TIE if TIE in outcomes else HOLDS
    evidence = "KL(P_method ‖ P_retrain), nats, mean over seeds: " + ", ".join(
        f"{method_label(m)} {np.mean(v):.3g} ({len(v)} seed(s))" for m, v in values.items()
    )
    return decide(verdict, prem, evidence)


@claim(
    "onion",
    "§9.3, Fig. 6",
    "The onion effect: removing the most exposed samples exposes others",
    "the kept samples' mean exposure shift after removing the most exposed and retraining is above the "
    "shift after removing a random set of the same size and retraining (control); the 95 % interval of "
    "the difference on the samples both removals kept (t over seeds; one seed: over those samples); "
    "containing 0: a tie",
    "onion",
)
def onion_effect(s: Studies) -> Verdict | None:
    o = s.onion.iloc[-1]  # the summary row over the seeds (the only row of a one-row table)
    prem = premise(
        float(o["threshold"]) > EXPOSURE_UNSEEN,
        f"removed samples' exposure ≥ {o['threshold']:.2f} bits (needs > {EXPOSURE_UNSEEN:g}: outliers)",
    )
    top = (
        f"top removal: kept samples' shift {o['shift_mean']:+.3f} bits, {int(o['rose'])} of "
        f"{int(o['kept'])} rose"
    )
    if "control_shift_mean" not in o or pd.isna(o.get("control_shift_mean")):
        return Verdict(UNTESTABLE, top + "; no random-removal control in this run", prem)
    low, high = float(o["difference_low"]), float(o["difference_high"])
    outcome = FAILS if high < 0 else HOLDS if low > 0 else TIE
    over = f", interval over {o['interval_over']}" if "interval_over" in o else ""
    evidence = (
        f"{top}; random removal (control): {o['control_shift_mean']:+.3f} bits; difference "
        f"{o['shift_mean'] - o['control_shift_mean']:+.3f} [{low:+.3f}, {high:+.3f}]{over}"
    )
    return decide(outcome, prem, evidence)


@claim(
    "exposure_shift",
    "§9.3, Fig. 7",
    "With a random forget set, the retained samples' exposure distribution does not shift",
    "two-sample KS test before vs after per seed, combined over the seeds by Fisher's method: p ≥ 0.05 "
    "for every method",
    "shift",
)
def exposure_stable(s: Studies) -> Verdict | None:
    shift = s.shift[s.shift["method"].isin(PAPER_METHODS)]
    if shift.empty:
        return None
    n = int(shift["n_retained"].min()) if "n_retained" in shift else 0
    shifted = shift[shift["distribution_shifted"].astype(bool)]
    prem = premise(n >= 20, f"{n} retained samples per method (needs ≥ 20)")
    evidence = "KS p per method: " + _fmt(shift.set_index("method")["ks_p"].to_dict(), "{:.2g}")
    return decide(HOLDS if shifted.empty else FAILS, prem, evidence)


# --- §6, §7: memorization and privacy -----------------------------------------------------------------------
@claim(
    "table8",
    "§6.3, Table 8",
    "Table 8 ordering: retraining (0) < Fisher Removal < gradient ascent ≈ Fisher Forgetting < finetuning "
    "= no unlearning",
    "on mean memorized targets per corpus and family: retraining ≤ Fisher Removal ≤ min(gradient ascent, "
    "Fisher Forgetting), max of those ≤ finetuning ≤ No unlearning, Fisher Removal < No unlearning; in "
    "every scenario",
    "memorization",
)
def memorization_order(s: Studies) -> Verdict | None:
    mem = s.memorization
    if not {*ORDER_METHODS, NONE} <= set(mem["method"]):
        return None
    means = mem.groupby(["dataset", "family", "method"])["memorized"].mean()
    scenarios = {k: g.droplevel([0, 1]).to_dict() for k, g in means.groupby(level=[0, 1])}
    evidence = "mean memorized targets: " + "; ".join(
        f"{c} {f.upper()}: " + ", ".join(f"{label(m)} {v:.1f}" for m, v in counts.items())
        for (c, f), counts in scenarios.items()
    )
    least = min(counts.get(NONE, 0) for counts in scenarios.values())
    prem = premise(
        least > 0, f"the memorized models reproduce ≥ {least:g} targets in every scenario (needs > 0)"
    )
    ok = all(ordering_holds(counts) for counts in scenarios.values())
    return decide(HOLDS if ok else FAILS, prem, evidence)


@claim(
    "dp_datasets",
    "§7.2, Fig. 3",
    "DP-SGD's privacy–utility trade-off is not equally good on every data set (it almost dominates on "
    "LAMBADA, not on PIQA)",
    "DP-SGD's share of Pareto-optimal points (lower exposure, lower test NLL; mean over models) is ≥ 1/2 "
    "on LAMBADA and < 1/2 on PIQA",
    "privacy",
)
def dp_not_equally_good(s: Studies) -> Verdict | None:
    p = s.privacy
    share = {
        d: float(np.nanmean([pareto_share(g) for _, g in p[p["dataset"] == d].groupby("model")]))
        for d in sorted(set(p["dataset"]))
    }
    evidence = "DP-SGD's share of Pareto-optimal points (exposure, test NLL): " + ", ".join(
        f"{d} {v:.2f}" for d, v in share.items()
    )
    if not {"lambada", "piqa"} <= set(share):
        return Verdict(
            UNTESTABLE,
            evidence + " (needs LAMBADA and PIQA)",
            premise(False, f"data sets in this run: {', '.join(share)}"),
        )
    return decide(
        HOLDS if share["lambada"] >= 0.5 > share["piqa"] else FAILS,
        premise(True, "LAMBADA and PIQA both in this run"),
        evidence,
    )


@claim(
    "dp_cost",
    "§7.2",
    "DP-SGD makes training more expensive",
    "measured DP fine-tuning time per epoch over the ordinary fine-tuning's (per data set and model: mean "
    "over ε) is above 1: its 95 % interval over (data set, model) lies above 1; containing 1: a tie",
    "privacy",
)
def dp_costs_more(s: Studies) -> Verdict | None:
    p = s.privacy
    sd = p[(p["method"] == "dp_sgd") & np.isfinite(p["value"].astype(float))]
    sd = sd.groupby(["dataset", "model"])["slowdown"].mean().dropna()
    prem = premise(len(sd) > 0, f"slowdown measured for {len(sd)} (data set, model) pair(s)")
    evidence = (
        "DP / ordinary fine-tuning time per epoch: "
        + f"{fmt_interval(t_interval(sd), signed=False)}x ("
        + ", ".join(f"{d} {m} {v:.2f}x" for (d, m), v in sd.items())
        + ")"
    )
    return decide({"greater": HOLDS, "less": FAILS, TIE: TIE}[compare_to(sd, 1.0)], prem, evidence)


# --- the table ----------------------------------------------------------------------------------------------
def judge(key: str, s: Studies) -> dict:
    """One claim's row: its verdict, or 'not run' when its study is absent or lacks what the claim
    compares."""
    c = CLAIMS[key]
    data = getattr(s, c.study)
    v = c.judge(s) if data is not None else None
    if v is None:
        v = Verdict(NOT_RUN, f"needs {STUDY_NAMES[c.study]}")
    left_out = f" ({s.left_out} diverged run(s) left out)" if c.study == "main" and s.left_out else ""
    return {
        "section": c.section,
        "claim": c.text,
        "verdict": v.verdict,
        "evidence": v.evidence + left_out,
        "premise": v.premise,
        "source": s.sources.get(c.study, "—"),
        "rule": c.rule,
    }


def judge_all(s: Studies) -> list[dict]:
    return [judge(key, s) for key in CLAIMS]


def files_source(files: list[str]) -> str:
    """Where the per-run metrics come from, short: one folder's CSVs as '<folder>/*.csv (n files)'."""
    if not files:
        return "—"
    parents = {str(Path(f).parent) for f in files}
    return (
        f"{parents.pop()}/*.csv ({len(files)} files)"
        if len(parents) == 1 and len(files) > 1
        else ", ".join(str(f) for f in files)
    )


def build_verdicts(
    cfg,
    collected: list[str],
    curves_file,
    kl_file,
    onion_file,
    shift_file,
    out_base,
    memorization_file=None,
    privacy_file=None,
    curvature_file=None,
) -> pd.DataFrame:
    """The verdict table of this run. `curves_file` (Figure 5's means) is named as a source beside the
    per-run metrics the Figure 5 rules read (they need every seed)."""
    df = pd.concat([pd.read_csv(f) for f in collected], ignore_index=True) if collected else None
    main_source = files_source(collected)
    sources = {
        "main": main_source + (f" (Figure 5 means: {curves_file})" if curves_file else ""),
        "kl": kl_file,
        "onion": onion_file,
        "shift": shift_file,
        "memorization": memorization_file,
        "privacy": privacy_file,
        "curvature": curvature_file,
    }
    s = Studies(
        main=df,
        kl=_read(kl_file),
        onion=_read(onion_file),
        shift=_read(shift_file),
        memorization=_read(memorization_file),
        privacy=_read(privacy_file),
        curvature=_read(curvature_file),
        cycles=list(cfg.unlearn.table_cycles),
        num_grads=int(cfg.fisher.num_grads),
        retrain_epochs=int(cfg.methods.retrain.epochs),
        sources={k: str(v) for k, v in sources.items() if v},
    )
    table = pd.DataFrame(judge_all(s))
    write_table(
        table,
        out_base,
        f"The paper's claims at the `{cfg.profile}` scale",
        "Each verdict is computed by a registered function of `src/unlearn_repro/report/verdicts.py` "
        f"from this run's outputs with the rule shown; intervals: the {ESTIMATOR}. 'tie': the "
        "difference lies inside its interval (or the rule's tolerance), so the run cannot tell the "
        "two apart; 'premise not met': the premise column's number says the comparison carries no "
        "signal here; 'not run': the study that tests it was not built or not part of this run. "
        "`source`: the file(s) the numbers come from.",
    )
    return table

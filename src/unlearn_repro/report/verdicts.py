"""A verdict for every qualitative claim of the paper: the claim (with §), the numbers that test it, the
rule (in code, here), and holds / does not hold / not testable at this scale / not run (its study is not
built or not in this run). Reads the studies' outputs; replaces the main study's old findings.md."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from unlearn_repro.report.figures import method_label
from unlearn_repro.report.memorization import NONE, ORDER_METHODS, label, ordering_holds
from unlearn_repro.report.tables import converged, diverged_runs, rank_methods, write_table

PAPER_METHODS = ("retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting")
CHANCE = {"arc_easy": 0.25, "piqa": 0.5, "mathqa": 0.25, "lambada": 0.0}  # accuracy of a random guess
INFORMATIVE = 0.05  # accuracy carries signal only when the base model beats chance by this much
HOLDS, FAILS, UNTESTABLE, NOT_RUN = "holds", "does not hold", "not testable at this scale", "not run"


def _fmt(values: dict, fmt="{:.2f}") -> str:
    return ", ".join(f"{method_label(m)} {fmt.format(v)}" for m, v in values.items())


def _read(path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path and Path(path).exists() else None


def accuracy_informative(df: pd.DataFrame) -> bool:
    """Does the fine-tuned model beat chance on the tasks (else Δacc is seed noise)?"""
    base = df.groupby("dataset")["base_accuracy"].mean()
    gaps = [base[d] - CHANCE[d] for d in base.index if d in CHANCE]
    return bool(gaps) and float(np.mean(gaps)) > INFORMATIVE


def claims(df: pd.DataFrame | None, curves: pd.DataFrame | None, kl: pd.DataFrame | None,
           onion: pd.DataFrame | None, shift: pd.DataFrame | None, cycles: list[int],
           memorization: pd.DataFrame | None = None, privacy: pd.DataFrame | None = None) -> list[dict]:
    rows: list[dict] = []

    def add(section, claim, rule, test: Callable[[], tuple[str, str]] | None, needs: str):
        if test is None:
            rows.append({"section": section, "claim": claim, "rule": rule, "evidence": f"needs {needs}",
                         "verdict": NOT_RUN})
            return
        verdict, evidence = test()
        if left_out and "main study" in needs:
            evidence += f" ({left_out} diverged run(s) left out)"
        rows.append({"section": section, "claim": claim, "rule": rule, "evidence": evidence, "verdict": verdict})

    # the paper's claims compare its own five methods: judge them among those
    main = None if df is None else df[df["method"].isin(PAPER_METHODS)]
    left_out = 0 if main is None else diverged_runs(main)  # judged on the runs that did not diverge
    main = None if main is None else converged(main)
    curves = None if curves is None else curves[curves["method"].isin(PAPER_METHODS)]
    shift = None if shift is None else shift[shift["method"].isin(PAPER_METHODS)]
    ranks = None if main is None else rank_methods(main[main["cycle"].isin(cycles)], ["family", "dataset", "size", "cycle"])
    acc_ok = main is not None and accuracy_informative(main)

    def efficacy():
        r = ranks.groupby("method")["efficacy"].mean()
        return (HOLDS if r.idxmin() == "fisher_removal" else FAILS), "mean efficacy ranks: " + _fmt(r.to_dict())
    add("§5.1.4", "Fisher Removal has the strongest efficacy",
        "Fisher Removal has the best (lowest) mean Δexp rank among the paper's five methods, over all scenarios",
        efficacy if ranks is not None and "fisher_removal" in set(ranks["method"]) else None, "the main study")

    def stability(column):
        def test():
            scen = ["family", "dataset", "size", "cycle"]
            agg = main[main["cycle"].isin(cycles)].groupby(scen + ["method"], as_index=False)[column].mean()
            agg["rank"] = agg.groupby(scen)[column].rank(method="min", ascending=False)
            s = agg.groupby("method")["rank"].std(ddof=0)
            if column == "delta_acc" and not acc_ok:
                return UNTESTABLE, "accuracy is at chance here; std of Δacc ranks: " + _fmt(s.to_dict())
            return (HOLDS if s.idxmax() == "gradient_ascent" else FAILS), f"std of {column} ranks: " + _fmt(s.to_dict())
        return test
    for column, what in (("delta_acc", "Δacc, the paper's fidelity"), ("delta_retain_acc", "Δ retain accuracy")):
        add("§5.1.4", f"Gradient ascent is the least stable ({what})",
            f"gradient ascent has the largest std of its rank by {column} over scenarios",
            stability(column) if main is not None and "gradient_ascent" in set(main["method"])
            and column in main and main[column].notna().any() else None, "the main study")

    def finetuning():
        ft = float(main[(main["method"] == "finetune") & main["cycle"].isin(cycles)]["delta_exp"].mean())
        worst = ranks.groupby("method")["efficacy"].mean().idxmax()
        return (HOLDS if ft >= 0 or worst == "finetune" else FAILS), f"finetuning mean Δexp {ft:+.3f} bits; worst efficacy rank: {method_label(worst)}"
    add("§5.1.4", "Finetuning does not erase", "finetuning's mean Δexp ≥ 0, or it has the worst mean efficacy rank",
        finetuning if main is not None and "finetune" in set(main["method"]) else None, "the main study")

    def runtime():
        t = main[main["cycle"] == 1].groupby("method")["runtime_s"].mean()
        second = [m for m in ("fisher_removal", "fisher_forgetting") if m in t.index]
        ok = "retrain" in t.index and all(t[m] < t["retrain"] for m in second)
        return (HOLDS if ok else FAILS), "mean runtime per cycle (s): " + _fmt(t.to_dict(), "{:.1f}")
    add("§5.1.4, Fig. 2", "The second-order methods are cheaper than retraining",
        "Fisher Removal's and Fisher Forgetting's mean runtime per cycle is below retraining's",
        runtime if main is not None and "retrain" in set(main["method"]) else None, "the main study")

    def extended(metric):
        def test():
            last = curves[curves["cycle"] == curves["cycle"].max()]
            start = curves[curves["cycle"] == 0].groupby("method")[f"{metric}_mean"].mean()
            end = last.groupby("method")[f"{metric}_mean"].mean()
            change = (end - start).drop(index=["retrain"], errors="ignore")
            if metric == "accuracy" and not acc_ok:
                return UNTESTABLE, "accuracy is at chance here; change after the last cycle: " + _fmt(change.to_dict(), "{:+.3f}")
            good = -change if metric == "test_nll" else change  # higher = kept more utility
            best = good["fisher_forgetting"] >= good.max() - 1e-9  # ties at the top count as best
            return (HOLDS if best else FAILS), \
                f"{metric} change after {int(curves['cycle'].max())} cycles: " + _fmt(change.to_dict(), "{:+.3f}")
        return test
    has_curves = curves is not None and not curves.empty and "fisher_forgetting" in set(curves["method"])
    # utility metrics: test accuracy (the paper's; at chance for tiny models), retain accuracy (D+ rows, moves
    # at small scale) and test NLL; each claim's rule names the one it uses
    for metric, what in (("accuracy", "test accuracy"), ("retain_accuracy", "retain accuracy"),
                         ("test_nll", "test NLL")):
        add("§5.1.4, Fig. 5", f"Fisher Forgetting keeps utility best over extended cycles ({what})",
            f"retraining aside, Fisher Forgetting's {what} changes least in the bad direction from cycle 0 to the last",
            extended(metric) if has_curves else None, "the extended-cycles runs of the main study")

    def kl_order():
        k = kl.set_index("method")["kl"].dropna()
        ok = "gradient_ascent" in k.index and all(k[m] < k["gradient_ascent"] for m in ("fisher_removal", "fisher_forgetting") if m in k.index)
        return (HOLDS if ok else FAILS), "KL(P_method ‖ P_retrain), nats: " + _fmt(k.to_dict(), "{:.3g}")
    add("§9.1, Fig. 4", "Second-order methods keep the weights far closer to retraining than gradient ascent",
        "KL of Fisher Removal and of Fisher Forgetting to retraining are both below gradient ascent's",
        kl_order if kl is not None and kl["kl"].notna().any() else None, "the discussions study (with retraining enabled)")

    def onion_test():
        o = onion.iloc[0]
        ok = bool(o["onion_effect"])
        return (HOLDS if ok else FAILS), (f"{int(o['rose'])} of {int(o['kept'])} kept samples rose, {int(o['crossed'])} "
                                          f"crossed the threshold {o['threshold']:.2f}; Wilcoxon p = {o['wilcoxon_p']:.2g}")
    add("§9.3, Fig. 6", "The onion effect: removing the most exposed samples exposes others",
        "after removal and retraining, the kept samples' exposure rises (one-sided Wilcoxon p < 0.05) or some cross the threshold",
        onion_test if onion is not None else None, "the discussions study")

    def stable():
        shifted = shift[shift["distribution_shifted"].astype(bool)]
        return (HOLDS if shifted.empty else FAILS), "KS p per method: " + _fmt(shift.set_index("method")["ks_p"].to_dict(), "{:.2g}")
    add("§9.3, Fig. 7", "With a random forget set, the retained samples' exposure distribution does not shift",
        "two-sample KS test before vs after, p ≥ 0.05 for every method", stable if shift is not None else None,
        "the discussions study")

    def memorization_order():
        means = memorization.groupby(["dataset", "family", "method"])["memorized"].mean()
        scenarios = {k: g.droplevel([0, 1]).to_dict() for k, g in means.groupby(level=[0, 1])}
        evidence = "; ".join(f"{c} {f.upper()}: " + ", ".join(f"{label(m)} {v:.1f}"
                                                            for m, v in counts.items()) for (c, f), counts in scenarios.items())
        if any(counts.get(NONE, 0) == 0 for counts in scenarios.values()):
            return UNTESTABLE, "a memorized model reproduces no target (premise fails); mean memorized: " + evidence
        ok = all(ordering_holds(counts) for counts in scenarios.values())
        return (HOLDS if ok else FAILS), "mean memorized targets: " + evidence
    has_order = memorization is not None and {*ORDER_METHODS, NONE} <= set(memorization["method"])
    add("§6.3, Table 8", "Table 8 ordering: retraining (0) < Fisher Removal < gradient ascent ≈ Fisher Forgetting < "
        "finetuning = no unlearning",
        "on mean memorized targets per corpus and family: retraining ≤ Fisher Removal ≤ min(gradient ascent, Fisher "
        "Forgetting), max of those ≤ finetuning ≤ No unlearning, Fisher Removal < No unlearning; in every scenario",
        memorization_order if has_order else None, "the memorization study with the paper's five methods")

    def dp_datasets():
        from unlearn_repro.report.privacy import pareto_share
        share = {d: float(np.nanmean([pareto_share(g) for _, g in privacy[privacy["dataset"] == d].groupby("model")]))
                 for d in sorted(set(privacy["dataset"]))}
        evidence = "DP-SGD's share of Pareto-optimal points (exposure, test NLL): " + \
            ", ".join(f"{d} {v:.2f}" for d, v in share.items())
        if not {"lambada", "piqa"} <= set(share):
            return UNTESTABLE, evidence + " (needs LAMBADA and PIQA)"
        return (HOLDS if share["lambada"] >= 0.5 > share["piqa"] else FAILS), evidence
    add("§7.2, Fig. 3", "DP-SGD's privacy–utility trade-off is not equally good on every data set (it almost "
        "dominates on LAMBADA, not on PIQA)",
        "DP-SGD's share of Pareto-optimal points (lower exposure, lower test NLL; mean over models) is ≥ 1/2 on "
        "LAMBADA and < 1/2 on PIQA", dp_datasets if privacy is not None else None, "the privacy study")

    def dp_cost():
        sd = privacy[(privacy["method"] == "dp_sgd") & np.isfinite(privacy["value"].astype(float))]
        sd = sd.groupby(["dataset", "model"])["slowdown"].mean()
        return (HOLDS if sd.mean() > 1 else FAILS), \
            f"DP / ordinary fine-tuning time per epoch: mean {sd.mean():.2f}x (" + \
            ", ".join(f"{d} {m} {v:.2f}x" for (d, m), v in sd.items()) + ")"
    add("§7.2", "DP-SGD makes training more expensive", "measured DP fine-tuning time per epoch over the ordinary "
        "fine-tuning's, mean over data sets, models and ε, is above 1", dp_cost if privacy is not None else None,
        "the privacy study")
    return rows


def build_verdicts(cfg, collected: list[str], curves_file, kl_file, onion_file, shift_file, out_base,
                   memorization_file=None, privacy_file=None) -> pd.DataFrame:
    df = pd.concat([pd.read_csv(f) for f in collected], ignore_index=True) if collected else None
    rows = claims(df, _read(curves_file), _read(kl_file), _read(onion_file), _read(shift_file),
                  list(cfg.unlearn.table_cycles), memorization=_read(memorization_file),
                  privacy=_read(privacy_file))
    table = pd.DataFrame(rows)[["section", "claim", "verdict", "evidence", "rule"]]
    write_table(table, out_base, f"The paper's claims at the `{cfg.profile}` scale",
                "Each verdict is computed by `src/unlearn_repro/report/verdicts.py` from this run's outputs with the "
                "rule shown. 'not testable at this scale': the rule's utility metric carries no signal here "
                "(accuracy at chance); 'not run': the study that tests it was not built or not part of this run.")
    return table

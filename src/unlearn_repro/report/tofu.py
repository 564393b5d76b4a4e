"""SOUL's TOFU study report: Table 1 (ours ‖ paper, mean and 95 % t interval over seeds), Figure 1 (forget and
retain
accuracy per epoch, FO vs SO), the premise (base vs retain model on the forget set) and the per-loss
verdict "SO forgets more than FO at equal utility". Writes exactly the files `outputs` names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from unlearn_repro.io import read_json, write_json  # noqa: E402
from unlearn_repro.metrics.tofu import forget_quality  # noqa: E402
from unlearn_repro.report import style  # noqa: E402
from unlearn_repro.report.figures import _legend, _save, band  # noqa: E402
from unlearn_repro.report.stats import (  # noqa: E402
    ESTIMATOR,
    FAILS,
    HOLDS,
    PREMISE_NOT_MET,
    TIE,
    cell,
    compare,
    ours_paper,
    t_interval,
)
from unlearn_repro.report.tables import TABLE_FORMATS, write_table  # noqa: E402

# Table 1 as SOUL's code defines its columns: (metric key, header, paired with the paper's column). Each
# header names its definition; "ours ‖ paper" only where the definitions agree (docs/like-for-like.md).
COLUMNS = [
    ("soul_forget_quality", "Forget quality (SOUL: KS own forget vs retain ratios) ↑", True),
    ("soul_forget_acc", "Forget acc (SOUL: generated, embedding-judged) ↓", True),
    ("forget_rouge", "Forget Rouge-L recall ↓", True),
    # SOUL's code labels its 617 texts [0]*217 + [1]*400 in the order forget, real, world: its number is
    # not the membership AUC it names, so ours (that AUC) is not set against it
    ("soul_mia_auc", "MIA (Min-K% AUC, forget vs real+world) ↓", False),
    ("soul_retain_acc", "Retain acc (SOUL: generated, embedding-judged) ↑", True),
    ("retain_rouge", "Retain Rouge-L recall ↑", True),
    ("soul_real_authors_acc", "Real authors acc (SOUL: substring) ↑", True),
    ("real_authors_rouge", "Real authors Rouge-L recall ↑", True),
    ("soul_world_facts_acc", "World facts acc (SOUL: substring) ↑", True),
    ("world_facts_rouge", "World facts Rouge-L recall ↑", True),
]
# TOFU's (and open-unlearning's) definitions: SOUL's paper reports none of them
TOFU_COLUMNS = [
    ("forget_quality", "Forget quality (TOFU: KS vs retain model)"),
    ("model_utility", "Model utility (TOFU)"),
    ("forget_prob", "Forget prob"),
    ("forget_truth", "Forget truth ratio"),
    ("retain_prob", "Retain prob"),
    ("retain_truth", "Retain truth ratio"),
    ("mia_mink_auc", "MIA Min-K% AUC (forget vs holdout)"),
    ("mia_loss_auc", "MIA loss AUC (forget vs holdout)"),
    ("forget_acc", "Forget acc (ours: true answer likeliest)"),
    ("retain_acc", "Retain acc (ours: true answer likeliest)"),
]
# SOUL Table 1 (TOFU forget10, LLaMA2-7B-chat), in COLUMNS order; accuracies as fractions
PAPER = {
    "Original": [0.36, 0.8525, 0.9796, 0.7894, 0.8575, 0.9825, 0.89, 0.9330, 0.8632, 0.8960],
    "FO-gradient_ascent": [0.14, 0.6625, 0.4110, 0.7754, 0.6325, 0.4504, 0.42, 0.4400, 0.7692, 0.8170],
    "FO-gradient_difference": [0.02, 0.7275, 0.5174, 0.7627, 0.7650, 0.6115, 0.71, 0.7677, 0.7949, 0.8462],
    "SO-gradient_difference": [1.00, 0.1025, 0.0221, 0.2156, 0.7225, 0.5960, 0.78, 0.8113, 0.8205, 0.8675],
    "FO-preference": [0.72, 0.3700, 0.0882, 0.7911, 0.8275, 0.9051, 0.90, 0.9330, 0.8462, 0.8875],
    "SO-preference": [0.92, 0.2875, 0.0761, 0.7877, 0.8275, 0.8137, 0.90, 0.9380, 0.8632, 0.9046],
    "FO-npo": [1.00, 0.1600, 0.0458, 0.3062, 0.8075, 0.8426, 0.85, 0.9110, 0.8291, 0.8803],
    "SO-npo": [1.00, 0.1600, 0.0291, 0.2274, 0.8125, 0.8314, 0.89, 0.9283, 0.8547, 0.8917],
}
LABELS = {"gradient_ascent": "GA", "gradient_difference": "GradDiff", "preference": "PO", "npo": "NPO"}
UTILITY_TOLERANCE = (
    0.05  # "equal utility": SO's model utility and retain accuracy at most this much below FO's
)
FORGET_MARGIN = 0.05  # forget-accuracy gap below which FO and SO tie (2 questions of 40)


def outputs(root: str) -> dict[str, list[str]]:
    t = f"{root}/tables"
    names = ("table1", "table1_tofu", "premise", "verdicts", "runs")
    return {
        "tables": [f"{t}/{n}.{e}" for n in names for e in TABLE_FORMATS],
        "figures": [f"{root}/figures/figure1.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def load_runs(files) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for f in files:
        r = read_json(f)
        base = {"method": r["method"], "kind": r["optimizer_kind"], "seed": r["seed"]}
        rows.append(
            {
                **base,
                **{k: v for k, v in r["final"].items() if isinstance(v, (int, float))},
                "clip_rate": float(np.mean(r["clip_rate_per_epoch"])) if r["clip_rate_per_epoch"] else np.nan,
                "runtime_s": r["runtime_s"],
            }
        )
        curves += [{**base, **e} for e in r["epochs"]]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def _cell(values, paper=None) -> str:
    ours = cell(values, 3, signed=False)
    return ours if paper is None else ours_paper(ours, paper, "{:.3g}")


def _rows(base: dict, retain: dict, runs: pd.DataFrame, methods, columns, paired=()) -> list[dict]:
    """One row per model (base, retain, each method x kind): mean ± 95 % t half-width over seeds, "ours ‖
    paper" in the
    column positions listed in `paired` (SOUL's Table 1 order)."""

    def row(label, values, paper=None):
        return {
            "Method": label,
            **{
                h: _cell(values(k), paper[i] if paper and i in paired else None)
                for i, (k, h) in enumerate(columns)
            },
        }

    out = [
        row("Original (base)", lambda k: [base["metrics"].get(k, np.nan)], PAPER["Original"]),
        row("Retain model", lambda k: [retain["metrics"].get(k, np.nan)]),
    ]
    for m in methods:
        for kind in ("FO", "SO"):
            sub = runs[(runs.method == m) & (runs.kind == kind)]
            if not sub.empty:
                out.append(
                    {
                        **row(
                            f"{kind}-{LABELS[m]}",
                            lambda k, sub=sub: sub[k] if k in sub else [np.nan],
                            PAPER.get(f"{kind}-{m}"),
                        ),
                        "Sophia clip rate": _cell(sub["clip_rate"]) if kind == "SO" else "—",
                    }
                )
    return out


def _fo_to_so(mean: dict, key: str, fmt: str) -> str:
    """One metric's FO and SO means as `FO → SO`."""
    return f"{mean['FO'][key]:{fmt}} → {mean['SO'][key]:{fmt}}"


def build_report(cfg, run_files, base_dir, retain_dir, out_root) -> None:
    out_root = Path(out_root)
    runs, curves = load_runs(run_files)
    base, retain = (read_json(Path(d) / "meta.json") for d in (base_dir, retain_dir))
    methods = [m for m in cfg.tofu.methods if m in set(runs["method"])]
    # forget quality of the models before unlearning: their forget-set truth ratios vs the retain model's
    base["metrics"]["forget_quality"] = forget_quality(
        base["forget_truth_ratios"], retain["forget_truth_ratios"]
    )
    retain["metrics"]["forget_quality"] = 1.0

    columns = [(k, h) for k, h, _ in COLUMNS]
    paired = [i for i, (_, _, p) in enumerate(COLUMNS) if p]
    rows, tofu_rows = (
        _rows(base, retain, runs, methods, columns, paired),
        _rows(base, retain, runs, methods, TOFU_COLUMNS),
    )
    table = pd.DataFrame(rows).fillna("—")
    n_seeds = runs["seed"].nunique()
    scale = (
        f"Ours: {cfg.tofu.model}, {cfg.tofu.forget_split} ({len(base['forget_truth_ratios'])} forget QA), "
        f"mean ± half-width of the {ESTIMATOR} ({n_seeds} seed(s)); greedy answers of "
        f"{cfg.tofu.max_new_tokens} new tokens at most."
    )
    write_table(
        table,
        out_root / "tables" / "table1",
        title="SOUL Table 1 on TOFU, SOUL's definitions: ours ‖ paper (LLaMA2-7B-chat, forget10)",
        note=f"{scale} Acc (forget / retain): the greedy answer to the paraphrased question is closest "
        f"(cosine, {cfg.tofu.soul.embedding_model or 'all-MiniLM-L6-v2'}) to the paraphrased answer rather "
        "than a perturbed one; real authors / world facts: the answer is a substring of the greedy answer. "
        "Forget quality: KS p-value of a model's own forget- vs retain-set ratios (mean P(perturbed) / "
        "P(paraphrased)). MIA: no paper value (SOUL's code mislabels its texts; docs/like-for-like.md). "
        "SO-GA has no paper row.",
        data=table,
    )
    tofu_table = pd.DataFrame(tofu_rows).fillna("—")
    write_table(
        tofu_table,
        out_root / "tables" / "table1_tofu",
        title="The same runs under TOFU's definitions (SOUL's paper reports none of these)",
        note=f"{scale} Forget quality: KS p-value of the forget-set truth ratios vs the retain model's (the "
        "retain model's own row is 1 by definition); model utility: harmonic mean of prob, Rouge-L and "
        f"truth ratio on retain, real authors, world facts. Answers scored with eos: {cfg.tofu.score_eos}. "
        f"Min-K%: k = {cfg.tofu.min_k}, max(1, int(k T)) tokens. Acc (ours): the true answer likelier than "
        "every perturbed one.",
        data=tofu_table,
    )

    premise = pd.DataFrame(
        [
            {
                "Model": name,
                "Forget answer prob": meta["metrics"]["forget_prob"],
                "Forget Rouge-L": meta["metrics"]["forget_rouge"],
                "Forget acc (likeliest)": meta["metrics"]["forget_acc"],
                "Forget acc (SOUL)": meta["metrics"].get("soul_forget_acc", np.nan),
                "Retain answer prob": meta["metrics"]["retain_prob"],
                "Retain Rouge-L": meta["metrics"]["retain_rouge"],
                "Model utility": meta["metrics"]["model_utility"],
                "Final train loss": meta["train_stats"]["final_loss"],
                "Train QA": meta["n_train"],
            }
            for name, meta in (("base (full)", base), ("retain", retain))
        ]
    )
    holds = (
        premise.iloc[0]["Forget answer prob"] > premise.iloc[1]["Forget answer prob"]
        and premise.iloc[0]["Forget Rouge-L"] > premise.iloc[1]["Forget Rouge-L"]
    )
    write_table(
        premise.round(4),
        out_root / "tables" / "premise",
        title="Premise: the base model knows the forget set better than the retain model",
        note=f"Premise holds: {holds}.",
    )

    verdicts, summary = (
        [],
        {
            "premise_holds": bool(holds),
            "premise_forget_prob_base": base["metrics"]["forget_prob"],
            "premise_forget_prob_retain": retain["metrics"]["forget_prob"],
        },
    )
    for m in methods:
        g = {k: runs[(runs.method == m) & (runs.kind == k)] for k in ("FO", "SO")}
        if g["FO"].empty or g["SO"].empty:
            continue
        mean = {
            k: g[k][["forget_acc", "forget_quality", "forget_rouge", "model_utility", "retain_acc"]].mean()
            for k in g
        }
        verdict = loss_verdict(g["FO"], g["SO"], holds)
        verdicts.append(
            {
                "Loss": LABELS[m],
                "Forget acc (likeliest) FO → SO": _fo_to_so(mean, "forget_acc", ".3f"),
                "Forget quality FO → SO": _fo_to_so(mean, "forget_quality", ".3g"),
                "Model utility FO → SO": _fo_to_so(mean, "model_utility", ".3f"),
                "Retain acc FO → SO": _fo_to_so(mean, "retain_acc", ".3f"),
                "SO beats FO at equal utility": verdict,
            }
        )
        summary[f"{m}.so_beats_fo"] = verdict == "holds"
        for k in ("FO", "SO"):
            for col, v in mean[k].items():
                summary[f"{m}.{k}.{col}"] = float(v)
    write_table(
        pd.DataFrame(verdicts),
        out_root / "tables" / "verdicts",
        title="Does second-order unlearning beat first-order at equal utility? (per loss)",
        note=f"Holds when SO's forget accuracy is below FO's by more than both the {ESTIMATOR} of "
        f"the difference (Welch) and {FORGET_MARGIN} (else a tie) while its model utility and "
        "retain "
        f"accuracy are each at most {UTILITY_TOLERANCE} below FO's; '{PREMISE_NOT_MET}' where the premise "
        "table shows the base model does not know the forget set better than the retain model.",
    )
    write_table(
        runs.sort_values(["method", "kind", "seed"]).round(4),
        out_root / "tables" / "runs",
        title="Every run's final metrics (one row per method, optimizer kind and seed)",
        note="The per-seed values behind Table 1's means and intervals.",
    )
    figure1(curves, methods, out_root / "figures" / "figure1.png")
    write_json(out_root / "summary" / "metrics.json", summary)


def loss_verdict(fo: pd.DataFrame, so: pd.DataFrame, premise_holds: bool) -> str:
    """The verdict of one loss: none where the base model does not know the forget set better than the
    retain model (nothing to unlearn), else `so_beats_fo`."""
    return so_beats_fo(fo, so) if premise_holds else PREMISE_NOT_MET


def so_beats_fo(fo: pd.DataFrame, so: pd.DataFrame) -> str:
    """SO forgets more than FO (lower forget accuracy, per seed) at equal utility. A gap inside its 95 % t
    interval or below FORGET_MARGIN is a tie; utility is equal when SO's mean model utility and retain
    accuracy are each at most UTILITY_TOLERANCE below FO's."""
    utility = ("model_utility", "retain_acc")
    equal_utility = all(so[k].mean() >= fo[k].mean() - UTILITY_TOLERANCE for k in utility)
    outcome = compare(so["forget_acc"], fo["forget_acc"], FORGET_MARGIN)
    if not equal_utility or outcome == "greater":
        return FAILS
    return HOLDS if outcome == "less" else TIE


def figure1(curves: pd.DataFrame, methods, out):
    """Forget and retain accuracy vs epoch: one colour and marker per loss (report.style), FO dashed, SO
    solid; the line is the mean over seeds, the band its 95 % t interval (none for one seed).
    Returns the Figure (already saved and closed)."""
    with style.context():
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True, layout="constrained")
        for ax, key, name in (
            (axes[0], "forget_acc", "forget accuracy (share of forget QA, ↓)"),
            (axes[1], "retain_acc", "retain accuracy (share of retain QA, ↑)"),
        ):
            for m in methods:
                for kind, ls in (("FO", style.DASHED), ("SO", style.SOLID)):
                    _curve(ax, curves[(curves.method == m) & (curves.kind == kind)], key, m, kind, ls)
            ax.set_xlabel("unlearning epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(name)
            ax.set_ylim(-0.02, 1.02)
        n = curves["seed"].nunique() if "seed" in curves else 1
        _legend(fig, axes, 4)
        fig.suptitle(
            "SOUL Figure 1 on TOFU: first- (FO, AdamW, dashed) vs second-order (SO, Sophia, solid) "
            f"unlearning\nmean over {n} seed{'s' if n != 1 else ''}"
            + (", band: 95 % t interval" if n > 1 else " (no interval)")
        )
        _save(fig, out)
    return fig


def _curve(ax, runs: pd.DataFrame, key: str, method: str, kind: str, ls) -> None:
    """One (method, optimizer kind) curve: the mean over seeds per epoch and its band."""
    if runs.empty:
        return
    x, ivs = zip(*[(epoch, t_interval(v)) for epoch, v in runs.groupby("epoch")[key]])
    mean, half = [i.mean for i in ivs], [i.half for i in ivs]
    kw = {**style.line_kwargs(method), "linestyle": ls, "linewidth": 1.6, "markersize": 4.5}
    ax.plot(x, mean, label=f"{kind}-{LABELS[method]}", gid=method, **kw)
    band(ax, x, mean, half, kw["color"], gid=method)

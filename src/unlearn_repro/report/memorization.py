"""The memorization study's report (paper §6): Table 8 per corpus (memorized targets and runtime per
method and model family, "No unlearning" first, ours ‖ paper), the bar chart of memorized counts, and
Table 10 / §6.4 (near-duplicates of the texts unlearning could not remove versus the ones it did). It
writes exactly the files `outputs` names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn_repro.io import read_json, write_json, write_text  # noqa: E402
from unlearn_repro.report import style  # noqa: E402
from unlearn_repro.report.figures import _legend, _save, errors, method_label  # noqa: E402
from unlearn_repro.report.paper_tables import MEMORIZATION as PAPER  # noqa: E402
from unlearn_repro.report.stats import ESTIMATOR, cell, ours_paper, t_interval  # noqa: E402
from unlearn_repro.report.tables import TABLE_FORMATS, model_family, write_table  # noqa: E402

NONE = "none"
CORPUS_LABEL = {"mtsamples": "MT", "enron": "Enron"}
# the paper's ordering (§6.3): retraining (0) < Fisher Removal < gradient ascent ≈ Fisher Forgetting <
# finetuning = none
ORDER_METHODS = ("retrain", "fisher_removal", "gradient_ascent", "fisher_forgetting", "finetune")


def label(method: str) -> str:
    return "No Unlearning" if method == NONE else method_label(method)


def outputs(cfg, root: str) -> dict[str, list[str]]:
    t, f = f"{root}/tables", f"{root}/figures"
    names = [f"table8_{c}" for c in cfg.memorization.corpora] + ["counts", "table10"]
    return {
        "tables": [f"{t}/{n}.{e}" for n in names for e in TABLE_FORMATS] + [f"{t}/table10_examples.md"],
        "figures": [f"{f}/memorized.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def load(files: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """(one row per run, one row per run × target, the base runs' per-target near-duplicate records)."""
    runs, per_target, base = [], [], []
    for f in files:
        r = read_json(f)
        key = {
            "dataset": r["dataset"],
            "model": r["model"],
            "family": model_family(r["model"]),
            "method": r["method"],
            "seed": r["seed"],
        }
        runs.append(
            {
                **key,
                "memorized": r["memorized"],
                "n_targets": r["n_targets"],
                "runtime_s": r.get("runtime_s"),
                "mean_match_length": r["mean_match_length"],
                "diverged": bool(r.get("diverged", False)),
            }
        )
        per_target += [
            {**key, "index": t["index"], "memorized": t["memorized"], "match_length": t["match_length"]}
            for t in r["targets"]
        ]
        if r["method"] == NONE:
            base += [{**key, **t} for t in r["targets"]]
    return pd.DataFrame(runs), pd.DataFrame(per_target), base


def ordering_holds(mean_counts: dict[str, float]) -> bool:
    """The paper's Table 8 ordering on mean memorized counts: retraining ≤ Fisher Removal ≤ gradient ascent
    and Fisher Forgetting ≤ finetuning ≤ No unlearning, and Fisher Removal strictly below No unlearning
    (ties allowed elsewhere: the paper itself has GA = FF and finetuning = none)."""
    c = mean_counts
    need = set(ORDER_METHODS) | {NONE}
    if not need <= set(c):
        raise KeyError(f"ordering needs the counts of {sorted(need - set(c))}")
    first_order = max(c["gradient_ascent"], c["fisher_forgetting"])
    return bool(
        c["retrain"] <= c["fisher_removal"] <= min(c["gradient_ascent"], c["fisher_forgetting"])
        and first_order <= c["finetune"] <= c[NONE]
        and c["fisher_removal"] < c[NONE]
    )


def _cell(values: pd.Series, paper, digits=1) -> str:
    paper_fmt = "{:.3g}" if isinstance(paper, float) else "{}"
    return ours_paper(cell(values, digits, signed=False), paper, paper_fmt)


def table8(runs: pd.DataFrame, corpus: str, methods: list[str], out_base) -> pd.DataFrame:
    sub = runs[runs["dataset"] == corpus]
    n = int(sub["n_targets"].max()) if not sub.empty else 0
    rows = []
    for m in [NONE] + methods:
        row = {"method": label(m)}
        for fam in dict.fromkeys(sub["family"]):
            runs_of = sub[(sub["method"] == m) & (sub["family"] == fam)]
            paper = PAPER.get(corpus, {}).get(m, {}).get(fam, (None, None))
            row[f"{fam.upper()} # mem (of {n} ‖ 128)"] = _cell(runs_of["memorized"], paper[0])
            row[f"{fam.upper()} runtime (s)"] = "—" if m == NONE else _cell(runs_of["runtime_s"], paper[1], 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    seeds = sorted(int(x) for x in sub["seed"].unique())
    write_table(
        table,
        out_base,
        f"Table 8 ({CORPUS_LABEL.get(corpus, corpus)}): memorized targets and unlearning runtime",
        f"ours (mean ± half-width of the {ESTIMATOR}; seeds {seeds}; per-seed counts: counts.csv) ‖ "
        f"paper. Ours: {n} targets per seed, memorized = some sample "
        "reproduces the next L tokens exactly (settings in params `memorization`); paper: 128 targets, "
        "125M models. Runtime: one unlearning of all targets.",
        data=table,
    )
    return table


def table10(
    base: list[dict], per_target: pd.DataFrame, methods: list[str], tables: Path, examples: int
) -> pd.DataFrame:
    """Among the targets the memorized model reproduces: near-duplicates (other texts' segments sharing an
    n-gram with the target) of the ones still memorized after a method (indelible) vs the ones it removed."""
    dup = pd.DataFrame(base)
    key = ["dataset", "model", "seed", "index"]
    before = per_target[per_target["method"] == NONE][key + ["memorized"]].rename(
        columns={"memorized": "before"}
    )
    after = per_target[per_target["method"] != NONE].merge(before, on=key)
    after = after[after["before"]].merge(
        dup[key + ["near_duplicates_other_texts", "closest_shared_ngrams"]], on=key
    )
    rows = []
    for (corpus, model, method), g in after.groupby(["dataset", "model", "method"], sort=False):
        ind, gone = g[g["memorized"]], g[~g["memorized"]]
        rows.append(
            {
                "corpus": CORPUS_LABEL.get(corpus, corpus),
                "model": model,
                "method": label(method),
                "indelible": len(ind),
                "removed": len(gone),
                "near-dups, indelible": ind["near_duplicates_other_texts"].mean() if len(ind) else np.nan,
                "near-dups, removed": gone["near_duplicates_other_texts"].mean() if len(gone) else np.nan,
                "closest shared n-grams, indelible": ind["closest_shared_ngrams"].mean()
                if len(ind)
                else np.nan,
                "closest shared n-grams, removed": gone["closest_shared_ngrams"].mean()
                if len(gone)
                else np.nan,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "corpus",
            "model",
            "method",
            "indelible",
            "removed",
            "near-dups, indelible",
            "near-dups, removed",
            "closest shared n-grams, indelible",
            "closest shared n-grams, removed",
        ],
    )
    table["method"] = pd.Categorical(table["method"], [label(m) for m in methods])
    table = table.sort_values(["corpus", "model", "method"]).reset_index(drop=True)
    table["method"] = table["method"].astype(str)
    write_table(
        table.round(2),
        tables / "table10",
        "§6.4 / Table 10: near-duplicates of indelible vs removed texts",
        "Targets the memorized model reproduces, pooled over seeds. Indelible: still reproduced after the "
        "method; removed: no longer. near-dups: other texts' segments that share an n-gram (params "
        "`memorization.ngram` tokens) with the target's prefix + L tokens; closest: n-grams shared with the "
        "most similar other segment. The paper's explanation of indelible texts is duplication.",
    )
    # the examples: the targets most often indelible across the approximate methods, with
    # their closest segment
    approx = after[~after["method"].isin(["retrain", "finetune"])]
    lines = ["## Table 10: indelible memorizations (examples)", ""]
    counts = approx[approx["memorized"]].groupby(key).size().sort_values(ascending=False, kind="stable")
    by_key = {tuple(r[k] for k in key): r for r in base}
    # a few per corpus, each text once (another seed may draw the same segment)
    picked = (
        counts.reset_index()
        .drop_duplicates(["dataset", "model", "index"])
        .groupby("dataset", sort=False)
        .head(examples)
    )
    for k, times in ((tuple(row[c] for c in key), row[0]) for _, row in picked.iterrows()):
        r = by_key[k]
        lines += [
            f"**{CORPUS_LABEL.get(k[0], k[0])}, {k[1]}, seed {k[2]}, segment {k[3]}** — "
            f"still memorized after {times} of {approx['method'].nunique()} approximate methods; "
            f"{r['near_duplicates_other_texts']} near-duplicate segments in other texts",
            "",
            f"> {r['text']!s}".replace("\n", " "),
            "",
            (
                f"closest other segment ({r['closest_shared_ngrams']} shared n-grams): "
                f"{r['closest_text'][:400]!s}"
                if r["closest_shared_ngrams"]
                else "no other segment shares an n-gram with it"
            ).replace("\n", " "),
            "",
        ]
    if counts.empty:
        lines.append("No target stayed memorized after an approximate method in this run.")
    write_text(tables / "table10_examples.md", "\n".join(lines) + "\n")
    return table


def _half(values) -> float:
    return t_interval(values).half


def figure(runs: pd.DataFrame, methods: list[str], out) -> plt.Figure:
    """Bars: mean memorized targets per method (No unlearning first), one group per model family, one
    panel per corpus; error bars = the 95 % t interval over seeds."""
    corpora = list(dict.fromkeys(runs["dataset"]))
    order = [NONE] + methods
    with style.context():
        fig, axes = plt.subplots(
            1,
            len(corpora),
            figsize=(3.2 * len(corpora) + 1, 3.6),
            layout="constrained",
            squeeze=False,
            sharey=True,
        )
        width = 0.8 / len(order)
        for ax, corpus in zip(axes[0], corpora):
            sub = runs[runs["dataset"] == corpus]
            fams = list(dict.fromkeys(sub["family"]))
            for j, m in enumerate(order):
                agg = sub[sub["method"] == m].groupby("family")["memorized"].agg(["mean", _half])
                agg = agg.reindex(fams)
                bars = ax.bar(
                    [i + j * width for i in range(len(fams))],
                    agg["mean"],
                    width,
                    yerr=errors(agg["_half"]),
                    label=label(m),
                    error_kw={"ecolor": style.EDGE, "elinewidth": 0.8},
                    **style.bar_style(m),
                )
                for patch in bars:
                    patch.set_gid(m)
            ax.set_xticks(
                [i + width * (len(order) - 1) / 2 for i in range(len(fams))], [f.upper() for f in fams]
            )
            ax.grid(axis="x", visible=False)
            ax.set_xlabel("model family")
            title = f"{CORPUS_LABEL.get(corpus, corpus)} (of {int(sub['n_targets'].max())} targets)"
            counts = sub.groupby(["family", "method"])["memorized"].mean()
            if counts.nunique() == 1:  # e.g. nothing memorized, not even before unlearning: say so
                title += f"\nno signal: every mean count is {counts.iloc[0]:g}"
            ax.set_title(title)
        axes[0][0].set_ylim(0, max(1.0, axes[0][0].get_ylim()[1]))  # counts: from 0 (shared by the panels)
        axes[0][0].set_ylabel("memorized targets (count)")
        _legend(fig, axes, len(order))
        seeds = runs["seed"].nunique() if "seed" in runs else 1
        fig.suptitle(
            "Paper Table 8 (§6.3): targets still memorized after unlearning, mean over "
            f"{seeds} seed{'s' if seeds != 1 else ''}" + (" (bars: 95 % t interval)" if seeds > 1 else "")
        )
        _save(fig, out)
    return fig


def build_report(cfg, files: list[str], out_root: str | Path) -> None:
    out_root = Path(out_root)
    tables = out_root / "tables"
    runs, per_target, base = load(files)
    methods = [m for m in style.order(cfg.methods.enabled) if m in set(runs["method"])]
    runs = runs.sort_values(["dataset", "model", "method", "seed"]).reset_index(drop=True)
    write_table(
        runs, tables / "counts", "Memorized targets per run", "one row per (corpus, model, method, seed)"
    )
    for corpus in cfg.memorization.corpora:
        table8(runs, corpus, methods, tables / f"table8_{corpus}")
    table10(base, per_target, methods, tables, cfg.memorization.examples)
    figure(runs, methods, out_root / "figures" / "memorized.png")
    summary = {}
    for (corpus, fam), g in runs.groupby(["dataset", "family"]):
        mean = g.groupby("method")["memorized"].mean()
        summary[f"{corpus}.{fam}"] = {
            **{m: float(v) for m, v in mean.items()},
            "n_targets": int(g["n_targets"].max()),
        }
        if set(ORDER_METHODS) | {NONE} <= set(mean.index):
            summary[f"{corpus}.{fam}"]["ordering_holds"] = float(ordering_holds(mean.to_dict()))
    write_json(out_root / "summary" / "metrics.json", summary)

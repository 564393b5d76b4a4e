"""The cross-paper benchmark's report (issue 25): per forget task a leaderboard at the selected grid point
and a Pareto figure of every grid point; across tasks a rank table, one overview figure and the verdict rows
of the cross-paper questions.

The selection rule (docs/crossbench.md): per entry, the grid point with the best mean efficacy among those
whose mean utility loss stays within the task's bound (crossbench.bounds; memorization measures no utility:
the best efficacy); where no point stays within it, the point with the smallest mean utility loss, flagged
"over bound". A point where any replicate diverged is not selectable. Means and 95 % t intervals are over a
task's replicates: its seeds (TDEC: its forget sets), pooled over its settings (data set x model)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_repro.io import read_json, write_json, write_text
from unlearn_repro.metrics.curvature import verdict as premise_verdict
from unlearn_repro.report import stats, style
from unlearn_repro.report.tables import write_table

TITLES = {
    "tasks": ("Main study's task sets (§5)", "efficacy: −Δexp (bits)", "utility loss: Δ test NLL (nats)"),
    "tofu": ("TOFU (SOUL)", "efficacy: forget quality", "utility loss: model utility drop"),
    "tdec": ("TDEC (FLoRA paper)", "efficacy: MA drop (points)", "utility loss: ln(PPL / PPL before)"),
    "memorization": ("Memorization (§6)", "efficacy: share of memorized targets removed", "step factor"),
}
OVER = "over bound"
LEADS = "a second-order entry leads (the best of them vs the best other)"
OUTSIDE_TDEC, OUTSIDE_TOFU = ("tasks", "tofu", "memorization"), ("tasks", "tdec", "memorization")
PAIRS = {  # question -> (benchmarks, [(entry, against)])
    "IHL beats gradient difference": (OUTSIDE_TDEC, [("inverted_hinge", "gradient_difference")]),
    "FLoRA helps": (OUTSIDE_TDEC, [("flora_gd", "lora_gd"), ("flora_ihl", "lora_ihl")]),
    "Sophia helps": (
        OUTSIDE_TOFU,
        [
            ("soul_ga", "gradient_ascent"),
            ("soul_gd", "gradient_difference"),
            ("soul_npo", "npo"),
            ("soul_po", "preference"),
        ],
    ),  # fmt: skip
}


def outputs(cfg, root) -> dict:
    """Exactly the files build_report writes."""
    from unlearn_repro.pipeline.crossbench import BENCHMARKS

    t = Path(root) / "tables"
    tables = [f"leaderboard_{b}" for b in BENCHMARKS] + ["ranks", "verdicts"]
    return {
        "tables": [str(t / f"{n}{ext}") for n in tables for ext in (".csv", ".md", ".html")]
        + [str(t / "points.csv")],
        "figures": [
            str(Path(root) / "figures" / f"{n}.png")
            for n in [*(f"pareto_{b}" for b in BENCHMARKS), "overview"]
        ],
        "summary": [str(Path(root) / "summary" / "crossbench.json")],
    }


def benchmarks_in(files) -> list[str]:
    return sorted({Path(f).parts[Path(f).parts.index("points") + 1] for f in files})


def long_points(files) -> pd.DataFrame:
    """One row per (benchmark, entry, setting, seed, grid point)."""
    rows = []
    for f in files:
        rec = read_json(f)
        setting = "/".join(str(rec[k]) for k in ("dataset", "model") if rec.get(k))
        for p in rec["points"]:
            prem = p.get("premise") or {}
            extra = {k: _num(v) for k, v in p.items() if k not in CORE and _scalar(v)}
            rows.append(
                {
                    **extra,
                    **{k: rec[k] for k in IDS},
                    "setting": setting,
                    "factor": p["factor"],
                    "step": ", ".join(f"{k}={v:.3g}" for k, v in p["values"].items()) or "—",
                    "efficacy": _num(p.get("efficacy")),
                    "utility_loss": _num(p.get("utility_loss")),
                    "diverged": bool(p.get("diverged")),
                    "runtime_s": _num(p.get("runtime_s")),
                    "sample_passes": _num(p.get("sample_passes")),
                    **{f"premise_{k}": _num(v) for k, v in prem.items() if isinstance(v, (int, float))},
                }
            )
    return pd.DataFrame(rows)


IDS = ("benchmark", "entry", "method", "optimizer", "adapter", "seed")  # a point file's record: who, where
# a point's own columns; the rest of its numbers are the task's extras
CORE = (
    "factor",
    "values",
    "efficacy",
    "utility_loss",
    "diverged",
    "runtime_s",
    "sample_passes",
    "premise",
    "wall_s",
)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (int, float))  # a bool (TDEC's forgotten) counts as 0 / 1


def _num(v) -> float:
    return math.nan if v is None else float(v)


def extras(df: pd.DataFrame) -> list[str]:
    """A task's own further metrics of its points (TOFU's parts, TDEC's EL10 / MA / epochs / PPL, ...)."""
    known = {*IDS, "setting", "step", *CORE}
    return [c for c in df.columns if c not in known and not c.startswith("premise_") and df[c].notna().any()]


def grid_means(df: pd.DataFrame) -> pd.DataFrame:
    """Per (entry, factor): mean efficacy and utility loss over replicates; selectable unless one diverged."""
    g = df.groupby(["entry", "factor"], sort=False)
    out = g.agg(
        efficacy=("efficacy", "mean"), utility_loss=("utility_loss", "mean"), diverged=("diverged", "any")
    ).reset_index()
    out["selectable"] = ~out["diverged"] & out["efficacy"].notna()
    return out


def select(means: pd.DataFrame, bound: float | None) -> pd.DataFrame:
    """The selection rule (module doc): one row per entry with its chosen factor and status."""
    rows = []
    for entry, g in means.groupby("entry", sort=False):
        ok = g[g["selectable"]]
        if ok.empty:
            rows.append({"entry": entry, "factor": math.nan, "status": "diverged at every point"})
            continue
        within = ok if bound is None else ok[~(ok["utility_loss"] > bound)]
        if not within.empty:
            pick, status = within.loc[within["efficacy"].idxmax()], "within bound"
        else:
            pick, status = ok.loc[ok["utility_loss"].idxmin()], OVER
        rows.append({"entry": entry, "factor": pick["factor"], "status": status})
    return pd.DataFrame(rows)


def pareto_flags(means: pd.DataFrame) -> pd.Series:
    """True where no other selectable grid point has at least the efficacy and at most the utility loss,
    one of them strictly (memorization: utility NaN, so only efficacy counts)."""
    e = means["efficacy"].to_numpy()
    u = np.nan_to_num(means["utility_loss"].to_numpy(), nan=0.0)
    ok = means["selectable"].to_numpy()
    flags = []
    for i in range(len(means)):
        better = ok & (e >= e[i]) & (u <= u[i]) & ((e > e[i]) | (u < u[i]))
        flags.append(bool(ok[i] and not better.any()))
    return pd.Series(flags, index=means.index)


def leaderboard(cfg, benchmark: str, df: pd.DataFrame) -> pd.DataFrame:
    """Every entry: its selected point's efficacy and utility loss (mean ± 95 % t), runtime, whether it
    reaches the task's Pareto front, its rank; an entry that cannot run says why."""
    from unlearn_repro.pipeline.crossbench import entries, why_not

    sub = df[df["benchmark"] == benchmark]
    means = grid_means(sub) if not sub.empty else pd.DataFrame()
    chosen = select(means, cfg.crossbench.bounds.get(benchmark)) if not sub.empty else pd.DataFrame()
    front = set(means.loc[pareto_flags(means), "entry"]) if not sub.empty else set()
    rows = []
    for name, e in entries(cfg).items():
        row = {"entry": name, "label": e.label, "second_order": e.second_order}
        reason = why_not(cfg, benchmark, e)
        pick = chosen[chosen["entry"] == name] if not chosen.empty else chosen
        if reason or pick.empty:
            rows.append({**row, "status": f"not applicable: {reason}" if reason else "not run"})
            continue
        pick = pick.iloc[0]
        at = sub[(sub["entry"] == name) & (sub["factor"] == pick["factor"])]
        prem = _premise(e, at)
        rows.append(
            {
                **row,
                "status": pick["status"],
                "factor": pick["factor"],
                "step": at["step"].iloc[0] if len(at) else "—",
                "efficacy": stats.cell(at["efficacy"], 3),
                "utility_loss": stats.cell(at["utility_loss"], 3)
                if at["utility_loss"].notna().any()
                else "n/a",
                "efficacy_mean": stats.t_interval(at["efficacy"]).mean,
                "efficacy_per_seed": stats.per_seed(at["seed"], at["efficacy"]),
                "utility_loss_mean": stats.t_interval(at["utility_loss"]).mean,
                "utility_loss_per_seed": stats.per_seed(at["seed"], at["utility_loss"]),
                "runtime_s": float(at["runtime_s"].mean()),
                "sample_passes": float(at["sample_passes"].mean()),
                "grid_points": int((means["entry"] == name).sum()),
                "replicates": len(at),
                "on_front": "yes" if name in front else "no",
                "premise": prem,
                **{f"mean_{c}": float(at[c].mean()) for c in extras(sub)},  # the CSV's further columns
            }
        )
    board = pd.DataFrame(rows)
    board["rank"] = _ranks(board)
    return board.sort_values(["rank", "entry"], na_position="last").reset_index(drop=True)


def _premise(e, at: pd.DataFrame) -> str:
    """A second-order entry's premise at the selected point (metrics.curvature's rule), else '—'."""
    kind = "sophia" if e.optimizer == "sophia" else e.method
    if kind not in ("sophia", "fisher_removal", "fisher_forgetting"):
        return "—"
    cols = {c[len("premise_") :]: at[c].mean() for c in at.columns if c.startswith("premise_")}
    return premise_verdict(kind, {k: v for k, v in cols.items() if math.isfinite(v)})


def _ranks(board: pd.DataFrame) -> pd.Series:
    """1 = best: the entries within bound by mean efficacy, then those over bound by mean efficacy."""
    if "efficacy_mean" not in board:
        return pd.Series([math.nan] * len(board), index=board.index)
    ran = board["efficacy_mean"].notna()
    key = pd.Series(math.nan, index=board.index)
    over = board["status"].eq(OVER)
    key[ran] = -board.loc[ran, "efficacy_mean"] + over[ran] * 1e9
    return key.rank(method="min")


def rank_table(boards: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Entries x tasks: each leaderboard's rank ('n/a' where the entry cannot run), and the mean rank."""
    names = list(dict.fromkeys(n for b in boards.values() for n in b["entry"]))
    rows = []
    for n in names:
        row = {"entry": n}
        ranks = []
        for b, board in boards.items():
            r = board.loc[board["entry"] == n, "rank"]
            v = r.iloc[0] if len(r) else math.nan
            row[b] = "n/a" if not math.isfinite(v) else int(v)
            if math.isfinite(v):
                ranks.append(v / board["rank"].max())
        row["mean_relative_rank"] = float(np.mean(ranks)) if ranks else math.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean_relative_rank", na_position="last")


def verdict_rows(boards: dict[str, pd.DataFrame], df: pd.DataFrame) -> pd.DataFrame:
    """The cross-paper questions, each with the paper verdicts' rule: the difference of the two entries'
    efficacy at their selected points, Welch 95 % interval; inside it is a tie. Where only one of the two
    keeps within the task's utility bound, it wins whatever the efficacy (the other bought its efficacy with
    utility the rule does not allow)."""
    rows = []
    for b, board in boards.items():
        ran = board[board["efficacy_mean"].notna()] if "efficacy_mean" in board else board.iloc[0:0]
        so, fo = ran[ran["second_order"]], ran[~ran["second_order"]]
        if not so.empty and not fo.empty:
            rows.append(_pair(b, LEADS, so.iloc[0], fo.iloc[0], df))
    for question, (benchmarks, pairs) in PAIRS.items():
        for b in benchmarks:
            board = boards.get(b)
            for a, against in pairs:
                if board is None or "efficacy_mean" not in board:
                    continue
                x, y = board[board["entry"] == a], board[board["entry"] == against]
                if (
                    len(x)
                    and len(y)
                    and x["efficacy_mean"].notna().all()
                    and y["efficacy_mean"].notna().all()
                ):
                    rows.append(_pair(b, question, x.iloc[0], y.iloc[0], df))
    return pd.DataFrame(rows, columns=["benchmark", "question", "entry", "against", "difference", "verdict",
                                       "premise", "status"])  # fmt: skip


def _pair(benchmark, question, x, y, df) -> dict:
    def at(r):
        sel = df[(df["benchmark"] == benchmark) & (df["entry"] == r["entry"]) & (df["factor"] == r["factor"])]
        return sel["efficacy"]

    d = stats.difference(at(x), at(y))
    v = {"greater": stats.HOLDS, "less": stats.FAILS}.get(stats.direction(d), stats.TIE)
    if (x["status"] == OVER) != (y["status"] == OVER):  # only one keeps within the utility bound: it wins
        v = stats.FAILS if x["status"] == OVER else stats.HOLDS
    prem = x["premise"] if x["premise"] != "—" else y["premise"]
    if prem == "curvature-degenerate":
        v = stats.PREMISE_NOT_MET
    return {
        "benchmark": benchmark,
        "question": question,
        "entry": x["entry"],
        "against": y["entry"],
        "difference": stats.fmt_interval(d, 3),
        "verdict": v,
        "premise": prem,
        "status": f"{x['status']} / {y['status']}",
    }


# -- the report ------------------------------------------------------------------------------------------

BOARD_COLUMNS = ["rank", "entry", "label", "status", "step", "efficacy", "utility_loss", "runtime_s",
                 "sample_passes", "grid_points", "replicates", "on_front", "premise"]  # fmt: skip


def _styles(cfg) -> dict:
    """entry -> (its style name, its label), in the legend order of every figure."""
    from unlearn_repro.pipeline.crossbench import entries

    ran = {e.style: (name, e) for name, e in entries(cfg).items()}
    return {ran[s][0]: (s, ran[s][1].label) for s in style.order(ran)}


def build_report(cfg, files, root) -> dict:
    from unlearn_repro.pipeline.crossbench import BENCHMARKS
    from unlearn_repro.report import crossbench_figures as figs

    root = Path(root)
    df = long_points(files)
    if df.empty:
        df = pd.DataFrame(columns=["benchmark", "entry", "factor", "seed", "efficacy", "utility_loss"])
    write_text(root / "tables" / "points.csv", df.to_csv(index=False))  # every point, per seed
    boards, summary = {}, {"bounds": cfg.crossbench.bounds.to_dict(), "factors": list(cfg.crossbench.factors)}
    for b in BENCHMARKS:
        board = leaderboard(cfg, b, df)
        boards[b] = board
        bound = cfg.crossbench.bounds.get(b)
        title, ylab, xlab = TITLES[b]
        write_table(
            board.reindex(columns=BOARD_COLUMNS),
            root / "tables" / f"leaderboard_{b}",
            f"Leaderboard: {title}",
            f"{ylab}; {xlab if b != 'memorization' else 'no utility measure in §6'}; bound "
            f"{bound if bound is not None else 'none'}. Selected: the best mean efficacy within the bound, "
            f"else the smallest utility loss ('{OVER}'). Cells: mean ± 95 % t half-width over replicates "
            f"({stats.ESTIMATOR}). runtime_s: the method's run time (s); sample_passes: sequences through a "
            f"forward and backward of the model (training steps, per-sample gradients, curvature estimates); "
            f"both the mean over replicates at the selected point.",
            data=board,
        )
        sub = df[df["benchmark"] == b]
        figs.pareto(
            TITLES[b],
            {n: grid_means(sub[sub["entry"] == n]) for n in dict.fromkeys(sub["entry"])},
            dict(zip(board["entry"], board.get("factor", [math.nan] * len(board)))),
            cfg.crossbench.bounds.get(b) if b != "memorization" else None,
            b == "memorization",
            _styles(cfg),
            root / "figures" / f"pareto_{b}.png",
        )
        summary[b] = {
            r["entry"]: {
                k: r.get(k)
                for k in (
                    "rank",
                    "efficacy_mean",
                    "utility_loss_mean",
                    "factor",
                    "status",
                    "runtime_s",
                    "sample_passes",
                )  # fmt: skip
            }
            for r in board.to_dict("records")
        }
    ranks = rank_table(boards)
    write_table(
        ranks,
        root / "tables" / "ranks",
        "Rank of every entry on every forget task",
        "1 = best on that task's leaderboard (within-bound entries first); n/a: cannot run there. "
        "mean_relative_rank: the mean of rank / entries ranked, over the tasks the entry runs on.",
    )
    figs.overview(ranks, {b: TITLES[b][0] for b in BENCHMARKS}, root / "figures" / "overview.png")
    verdicts = verdict_rows(boards, df)
    write_table(
        verdicts,
        root / "tables" / "verdicts",
        "Cross-paper questions",
        "difference: efficacy of entry minus against at their selected points (Welch 95 % interval); "
        "a difference whose interval holds 0 is a tie.",
    )
    summary["verdicts"] = verdicts.to_dict("records")
    write_json(root / "summary" / "crossbench.json", summary)
    return summary

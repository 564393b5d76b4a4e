"""Metric tables: collect per-run metrics into CSV, aggregate over seeds, rank methods (Table 7), and
write every table as CSV + Markdown."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_repro.io import read_json, write_text
from unlearn_repro.models.registry import MODELS

COLUMNS = [
    "dataset",
    "model",
    "family",
    "size",
    "method",
    "seed",
    "cycle",
    "n_forgotten",
    "accuracy",
    "base_accuracy",
    "delta_acc",
    "exposure",
    "base_exposure",
    "delta_exp",
    "test_nll",
    "delta_test_nll",
    "retain_accuracy",
    "base_retain_accuracy",
    "delta_retain_acc",
    "runtime_s",
    "diverged",
    "fisher_deviation",
    "n_retain",
    "fisher_rebuilds",
]
RUN_COLUMNS = ("n_retain", "fisher_rebuilds")  # from the run's own record (run.json beside metrics.json)


def model_family(model: str) -> str:
    return "neo" if MODELS.get(model).family == "gpt_neo" else "opt"


def model_size(model: str) -> str:
    tail = model.rsplit("-", 1)[-1]
    return "tiny" if model.startswith("tiny") else tail.upper()


def collect(metric_files: list[str], out: str | Path) -> pd.DataFrame:
    """One CSV row per (run, cycle)."""
    rows = []
    for f in metric_files:
        m = read_json(f)
        run = _run_record(f)
        for c in m["cycles"]:
            rows.append(
                {
                    "dataset": m["dataset"],
                    "model": m["model"],
                    "family": model_family(m["model"]),
                    "size": model_size(m["model"]),
                    "method": m["method"],
                    "seed": m["seed"],
                    **{k: c.get(k) for k in COLUMNS if k in c},
                    **{k: run.get(c["cycle"], {}).get(k) for k in RUN_COLUMNS},
                }
            )
    df = pd.DataFrame(rows, columns=COLUMNS)
    write_text(out, df.to_csv(index=False))
    return df


def _run_record(metrics_file) -> dict[int, dict]:
    """Cycle -> the run's own record of it (D+ size, Fisher rebuilds), which the runtime verdict turns into
    sample passes; empty when run.json is not beside metrics.json."""
    path = Path(metrics_file).with_name("run.json")
    if not path.exists():
        return {}
    return {c["cycle"]: c for c in read_json(path).get("cycles", [])}


def _diverged(df: pd.DataFrame) -> pd.Series:
    if "diverged" not in df:
        return pd.Series(False, index=df.index)
    return df["diverged"].fillna(False).astype(bool)


RUN_KEYS = ["dataset", "model", "method", "seed"]


def converged(df: pd.DataFrame) -> pd.DataFrame:
    """The rows (cycles) of runs none of whose cycles diverged: a diverged run is counted, never averaged, not
    even its cycles before or after the one that diverged."""
    bad = _diverged(df)
    if not all(k in df for k in RUN_KEYS):
        return df[~bad]
    diverged = set(map(tuple, df.loc[bad, RUN_KEYS].astype(str).values))
    keep = pd.Series(
        [tuple(row) not in diverged for row in df[RUN_KEYS].astype(str).values], index=df.index, dtype=bool
    )
    return df[keep]


def diverged_runs(df: pd.DataFrame) -> int:
    """How many runs (not cycles) of `df` diverged."""
    return int(df.loc[_diverged(df), RUN_KEYS].drop_duplicates().shape[0])


def rank_methods(df: pd.DataFrame, group_cols: list[str]) -> pd.DataFrame:
    """Rank methods within each scenario (1 = best): efficacy by mean Δexp (lower is better), fidelity by mean
    |Δacc| (the paper's §4.2.2: accuracy stays close to the model before unlearning, so a rise is no better
    than a fall), `fidelity_nll` by mean |Δ test NLL| beside it, efficiency by mean runtime; ties share the
    lower rank."""
    nll = df["delta_test_nll"] if "delta_test_nll" in df else pd.Series(np.nan, index=df.index)
    df = df.assign(abs_delta_acc=df["delta_acc"].abs(), abs_delta_test_nll=nll.abs())
    agg = df.groupby(group_cols + ["method"], as_index=False).agg(
        delta_exp=("delta_exp", "mean"),
        delta_acc=("delta_acc", "mean"),
        abs_delta_acc=("abs_delta_acc", "mean"),
        abs_delta_test_nll=("abs_delta_test_nll", "mean"),
        runtime_s=("runtime_s", "mean"),
    )
    g = agg.groupby(group_cols)
    agg["efficacy"] = g["delta_exp"].rank(method="min", ascending=True)
    agg["fidelity"] = g["abs_delta_acc"].rank(method="min", ascending=True)
    agg["fidelity_nll"] = g["abs_delta_test_nll"].rank(method="min", ascending=True)
    agg["efficiency"] = g["runtime_s"].rank(method="min", ascending=True)
    return agg


TABLE_FORMATS = ("csv", "md", "html")  # every table: data, text for people, and a page the HTML report shows


def write_table(df: pd.DataFrame, out_base: str | Path, title: str = "", note: str = "", data=None) -> None:
    """<out_base>.csv (of `data`, default df), .md and .html (a title line, the table, a note)."""
    out_base = Path(out_base)
    write_text(out_base.with_suffix(".csv"), (df if data is None else data).to_csv(index=False))
    md = (
        (f"## {title}\n\n" if title else "")
        + df.to_markdown(index=False)
        + "\n"
        + (f"\n{note}\n" if note else "")
    )
    write_text(out_base.with_suffix(".md"), md)
    write_html(out_base.with_suffix(".html"), df, title, note)


def write_html(path: str | Path, df: pd.DataFrame, title: str = "", note: str = "") -> None:
    """A small standalone page (Snakemake's report shows HTML inline; CSV and Markdown only download)."""
    table = df.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.4g}", escape=True)
    head = (
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
        "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
    )
    body = (
        (f"<h3>{html.escape(title)}</h3>" if title else "")
        + table
        + (f"<p>{html.escape(note)}</p>" if note else "")
    )
    write_text(
        path, f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>\n"
    )

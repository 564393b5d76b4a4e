"""Premise tables: per second-order run, how far its step was from the first-order one (metrics.curvature),
and whether the run is "curvature-degenerate" against the stated thresholds. One table per study; a
study's conclusions about second-order methods hold only for the rows marked "met"."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn_repro.io import read_json, write_text
from unlearn_repro.metrics.curvature import CLIP_MAX, COSINE_MAX, verdict

NEWTON = ("fisher_removal", "fisher_forgetting")
COLUMNS = ["study", "method", "dataset", "model", "seed", "cycle", "damping", "diag_mean", "cosine", "cosine_max",
           "norm_ratio", "spread", "noise_cosine", "clip_rate", "unclipped_share", "verdict"]
RULE = (f"curvature-degenerate: Fisher Removal cos(F^-1 g, g) > {COSINE_MAX}; Fisher Forgetting expected cos"
        f"(F^-1/4 M, M) = 1/sqrt(1 + spread^2) > {COSINE_MAX}; Sophia clip rate > {CLIP_MAX}")


def newton_rows(study: str, run: dict) -> list[dict]:
    """One row per cycle of a Fisher Removal / Forgetting run.json (none for other methods)."""
    if run.get("method") not in NEWTON:
        return []
    rows = []
    for rec in run.get("cycles", []):
        premise = rec.get("curvature") or {}
        rows.append({"study": study, "method": run["method"], "dataset": run.get("dataset"), "model": run.get("model"),
                     "seed": run.get("seed"), "cycle": rec.get("cycle"), **premise,
                     "verdict": verdict(run["method"], premise)})
    return rows


def sophia_rows(study: str, summary: dict, model: str | None = None) -> list[dict]:
    """One row for a TOFU run with Sophia (its clip rate over all steps); none for a first-order run."""
    premise = summary.get("curvature")
    if not premise:
        return []
    return [{"study": study, "method": f"{summary['method']} (Sophia)", "dataset": "tofu", "model": model,
             "seed": summary.get("seed"), "cycle": 1, "clip_rate": premise["clip_rate"],
             "unclipped_share": premise["unclipped_share"], "verdict": verdict("sophia", premise)}]


def premise_table(study: str, files: list[str | Path], model: str | None = None) -> pd.DataFrame:
    """The premise table of a study from its run.json files (unlearning.run) or TOFU run summaries."""
    rows = []
    for f in files:
        rec = read_json(f)
        rows += sophia_rows(study, rec, model) if "optimizer_kind" in rec else newton_rows(study, rec)
    return pd.DataFrame(rows, columns=COLUMNS)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per study and method: runs (cycles), how many are degenerate, and the mean premise numbers."""
    if table.empty:
        return pd.DataFrame(columns=["study", "method", "rows", "degenerate", "not_measured"])
    numbers = [c for c in ("damping", "cosine", "norm_ratio", "spread", "noise_cosine", "clip_rate", "unclipped_share")
               if table[c].notna().any()]
    g = table.groupby(["study", "method"], sort=True)
    out = g[numbers].mean()
    out.insert(0, "not_measured", g["verdict"].apply(lambda v: int((v == "not measured").sum())))
    out.insert(0, "degenerate", g["verdict"].apply(lambda v: int((v == "curvature-degenerate").sum())))
    out.insert(0, "rows", g.size())
    return out.reset_index()


def write(table: pd.DataFrame, out_md: str | Path, out_csv: str | Path | None = None) -> None:
    """The table as Markdown (summary, then every row) under its rule; CSV of the rows beside it."""
    if out_csv:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)
    fmt = lambda df: df.to_markdown(index=False, floatfmt=".4g") if not df.empty else "(no second-order runs)"  # noqa: E731
    write_text(out_md, f"# Curvature premise\n\n{RULE}\n\n## Summary\n\n{fmt(summarize(table))}\n\n"
                       f"## Runs\n\n{fmt(table.dropna(axis=1, how='all'))}\n")


def is_degenerate(table: pd.DataFrame) -> bool:
    """True when every measured row is degenerate (the study's second-order premise fails throughout)."""
    v = table["verdict"]
    measured = v[v != "not measured"]
    return bool(len(measured)) and bool((measured == "curvature-degenerate").all())

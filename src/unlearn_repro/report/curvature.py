"""Premise tables: per second-order run, how far its step was from the first-order one (metrics.curvature),
and whether the run is "curvature-degenerate" against the stated thresholds. One table per study; a
study's conclusions about second-order methods hold only for the rows marked "met"."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn_repro.io import read_json, write_text
from unlearn_repro.metrics.curvature import CLIP_MAX, COSINE_MAX, verdict

NEWTON = ("fisher_removal", "fisher_forgetting")
COLUMNS = [
    "study",
    "method",
    "dataset",
    "model",
    "seed",
    "cycle",
    "damping",
    "diag_mean",
    "cosine",
    "cosine_max",
    "norm_ratio",
    "spread",
    "noise_cosine",
    "noise_norm_ratio",
    "sampled_noise_cosine",
    "clip_rate",
    "unclipped_share",
    "verdict",
]
RULE = (
    f"curvature-degenerate: Fisher Removal cos(F^-1 g, g) > {COSINE_MAX}; Fisher Forgetting expected cos"
    f"(F^-1/4 M, M) = 1/sqrt(1 + spread^2) > {COSINE_MAX}; Sophia clip rate > {CLIP_MAX}"
)


def newton_rows(study: str, run: dict) -> list[dict]:
    """One row per cycle of a Fisher Removal / Forgetting run.json (none for other methods)."""
    if run.get("method") not in NEWTON:
        return []
    rows = []
    for rec in run.get("cycles", []):
        premise = rec.get("curvature") or {}
        rows.append(
            {
                "study": study,
                "method": run["method"],
                "dataset": run.get("dataset"),
                "model": run.get("model"),
                "seed": run.get("seed"),
                "cycle": rec.get("cycle"),
                **premise,
                "verdict": verdict(run["method"], premise),
            }
        )
    return rows


def sophia_rows(study: str, summary: dict, model: str | None = None) -> list[dict]:
    """One row for a TOFU run with Sophia (its clip rate over all steps); none for a first-order run."""
    premise = summary.get("curvature")
    if not premise:
        return []
    return [
        {
            "study": study,
            "method": f"{summary['method']} (Sophia)",
            "dataset": "tofu",
            "model": model,
            "seed": summary.get("seed"),
            "cycle": 1,
            "clip_rate": premise["clip_rate"],
            "unclipped_share": premise["unclipped_share"],
            "verdict": verdict("sophia", premise),
        }
    ]


def privacy_rows(study: str, result: dict) -> list[dict]:
    """One row per grid point of a privacy-study method (its coefficient value in the `cycle` column)."""
    if result.get("method") not in NEWTON:
        return []
    return [
        {
            "study": study,
            "method": f"{result['method']} ({p['coefficient']}={p['value']:g})",
            "dataset": result.get("dataset"),
            "model": result.get("model"),
            "seed": result.get("seed"),
            "cycle": 1,
            **(p.get("curvature") or {}),
            "verdict": verdict(result["method"], p.get("curvature") or {}),
        }
        for p in result.get("points", [])
    ]


def premise_table(study: str, files: list[str | Path], model: str | None = None) -> pd.DataFrame:
    """The premise table of a study from its run.json files (unlearning.run), privacy results or TOFU run
    summaries."""
    rows = []
    for f in files:
        rec = read_json(f)
        rows += (
            sophia_rows(study, rec, model)
            if "optimizer_kind" in rec
            else privacy_rows(study, rec)
            if "points" in rec
            else newton_rows(study, rec)
        )
    return pd.DataFrame(rows, columns=COLUMNS)


STUDY_FILES = {
    "main": "runs/fisher_*/*/*/seed*/run.json",
    "memorization": "memorization/runs/fisher_*/*/*/seed*/run.json",
    "privacy": "privacy/unlearn/fisher_*/*/*/seed*.json",
    "tofu": "tofu/runs/*/SO/seed*.json",
}


def study_tables(results: str | Path, out_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The premise table of every study with runs under `results` (results/<profile>), written to
    `out_dir` (default results/<profile>/curvature) as premise_<study>.md / .csv."""
    results = Path(results)
    out_dir = Path(out_dir) if out_dir else results / "curvature"
    tables = {}
    for study, pattern in STUDY_FILES.items():
        files = sorted(results.glob(pattern))
        if files:
            tables[study] = t = premise_table(study, files)
            write(t, out_dir / f"premise_{study}.md", out_dir / f"premise_{study}.csv")
    return tables


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per study and method: runs (cycles), how many are degenerate, and the mean premise numbers."""
    if table.empty:
        return pd.DataFrame(columns=["study", "method", "rows", "degenerate", "not_measured"])
    numbers = [
        c
        for c in ("damping", "cosine", "norm_ratio", "spread", "noise_cosine", "clip_rate", "unclipped_share")
        if table[c].notna().any()
    ]
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

    def fmt(df):
        if df.empty:
            return "(no second-order runs)"
        return (
            df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".4g", missingval="—")
        )

    write_text(
        out_md,
        f"# Curvature premise\n\n{RULE}\n\n## Summary\n\n{fmt(summarize(table))}\n\n"
        f"## Runs\n\n{fmt(table.dropna(axis=1, how='all'))}\n",
    )


def is_degenerate(table: pd.DataFrame) -> bool:
    """True when every measured row is degenerate (the study's second-order premise fails throughout)."""
    v = table["verdict"]
    measured = v[v != "not measured"]
    return bool(len(measured)) and bool((measured == "curvature-degenerate").all())


if __name__ == "__main__":  # python -m unlearn_repro.report.curvature results/<profile> [out_dir]
    import sys

    for name, table in study_tables(*sys.argv[1:3]).items():
        print(
            f"{name}: {len(table)} rows, "
            f"{int((table['verdict'] == 'curvature-degenerate').sum())} curvature-degenerate"
        )

"""`make reproduce`'s 2-hour budget, projected from measured jobs before the next full run: a full run's jobs
(study_times.py's STEM.jobs.csv) with the jobs of some rules replaced by those of later measured runs (their
own STEM.jobs.csv), so that a study added or changed since the full run counts at its measured cost.

    python benchmarks/budget.py RUN.jobs.csv NEW.jobs.csv [NEW.jobs.csv ...] [--cores 2] [--out STEM]
                                [--measured FULL.jobs.csv]

Every rule that a NEW file has replaces all of that rule's jobs before it (later files win). The projection
assumes what the full run showed: the cores stay busy (its wall time is its summed job wall time / cores,
times its own packing factor, measured wall / (summed job wall / cores)). It is a projection, not a run: the
next full `make reproduce` measures the real time. Writes STEM.csv (per study: jobs, summed job wall and CPU,
the file its jobs come from) and STEM.md. `--measured`: the full run that followed, beside the projection
(its jobs and summed job wall per study, its wall time): how far the projection was off.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_times import rule_studies, study_totals  # noqa: E402

BUDGET_MIN = 120.0


def read_jobs(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def merged(base: list[dict], new: dict[str, list[dict]]) -> list[dict]:
    """The base run's jobs, each rule of a new file replaced by that file's jobs of it (later files win);
    every job tagged with the file it comes from."""
    source = {}
    for name, jobs in new.items():
        for j in jobs:
            source[j["rule"]] = name
    kept = [j | {"source": "full run"} for j in base if j["rule"] not in source]
    return kept + [
        j | {"source": name} for name, jobs in new.items() for j in jobs if source[j["rule"]] == name
    ]


def study_rows(jobs: list[dict], study_of: dict[str, str]) -> list[dict]:
    """Per study (largest summed job wall first): jobs, summed job wall and CPU (study_times.study_totals),
    the files its jobs come from."""
    sources = defaultdict(set)
    for j in jobs:
        sources[study_of.get(j["rule"], "other")].add(j["source"])
    rows = [
        {
            "study": study,
            "jobs": t["jobs"],
            "wall_min": t["wall_s"] / 60,
            "cpu_min": (t["cpu_s"] or 0) / 60,
            "from": ", ".join(sorted(sources[study])),
        }
        for study, t in study_totals(jobs, study_of).items()
        if study != "all"
    ]
    return sorted(rows, key=lambda r: -r["wall_min"])


def project(base: list[dict], new: dict[str, list[dict]], study_of: dict[str, str], cores: int) -> dict:
    """Per study rows and the totals: the full run's packing factor and the projected wall time."""
    full = study_totals(base, study_of)["all"]
    base_sum, span = full["wall_s"] / 60, full["span_s"] / 60
    packing = span / (base_sum / cores)
    rows = study_rows(merged(base, new), study_of)
    total = sum(r["wall_min"] for r in rows)
    return {
        "rows": rows,
        "full_run_min": span,
        "full_run_sum_min": base_sum,
        "packing": packing,
        "sum_min": total,
        "projected_min": total / cores * packing,
        "cores": cores,
    }


def add_measured(p: dict, jobs: list[dict], study_of: dict[str, str]) -> dict:
    """The projection with a later full run's numbers beside it: per study its jobs and summed job wall."""
    totals = study_totals(jobs, study_of)
    for r in p["rows"]:
        t = totals.get(r["study"], {"jobs": 0, "wall_s": 0.0})
        r.update(measured_jobs=t["jobs"], measured_wall_min=t["wall_s"] / 60)
    return p | {"measured_min": totals["all"]["span_s"] / 60}


def markdown(p: dict, base: str, new: list[str], measured: str | None = None) -> str:
    fits = "fits" if p["projected_min"] <= BUDGET_MIN else "does not fit"
    extra = " measured: jobs | measured: summed job wall (min) |" if measured else ""
    out = [
        f"Full run: `{base}` ({p['full_run_min']:.1f} min wall, {p['full_run_sum_min']:.1f} min of summed "
        f"job wall on {p['cores']} cores: packing factor {p['packing']:.3f}); replaced rules' jobs from: "
        + ", ".join(f"`{n}`" for n in new)
        + ".",
        "",
        "| study | jobs | summed job wall (min) | summed job CPU (min) | jobs from |" + extra,
        "|:--|--:|--:|--:|:--|" + ("--:|--:|" if measured else ""),
    ]
    for r in p["rows"]:
        line = f"| {r['study']} | {r['jobs']} | {r['wall_min']:.1f} | {r['cpu_min']:.1f} | {r['from']} |"
        if measured:
            line += f" {r['measured_jobs']} | {r['measured_wall_min']:.1f} |"
        out.append(line)
    out += [
        "",
        f"Projected `make reproduce`: {p['sum_min']:.1f} min of job wall / {p['cores']} cores × "
        f"{p['packing']:.3f} = **{p['projected_min']:.1f} min**: {fits} the {BUDGET_MIN:.0f}-minute budget "
        "(a projection from measured jobs; the next full run measures it).",
    ]
    if measured:
        out += [
            "",
            f"Measured: the full run `{measured}` took **{p['measured_min']:.1f} min** "
            f"({p['measured_min'] - p['projected_min']:+.1f} min against the projection).",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a full run's STEM.jobs.csv (study_times.py)")
    ap.add_argument(
        "new", type=Path, nargs="+", help="later runs' STEM.jobs.csv, whose rules replace the run's"
    )
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rules-dir", type=Path, default=Path("rules"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/budget_embedded"))
    ap.add_argument("--measured", type=Path, help="the full run that followed (its STEM.jobs.csv)")
    args = ap.parse_args(argv)
    for f in [args.run, *args.new, *([args.measured] if args.measured else [])]:
        if not f.is_file():
            ap.error(f"{f}: no such file (a STEM.jobs.csv of study_times.py)")
    study_of = rule_studies(args.rules_dir)
    p = project(read_jobs(args.run), {f.name: read_jobs(f) for f in args.new}, study_of, args.cores)
    if args.measured:
        p = add_measured(p, read_jobs(args.measured), study_of)
    with args.out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(p["rows"][0]))
        w.writeheader()
        w.writerows(p["rows"])
    md = markdown(p, args.run.name, [f.name for f in args.new], args.measured.name if args.measured else None)
    args.out.with_suffix(".md").write_text(md)
    print(md, end="")


if __name__ == "__main__":
    main(sys.argv[1:])

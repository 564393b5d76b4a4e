"""Do the privacy study's and the Newton ablations' grid points at the main study's setting equal the main
runs' cycle 1? The premise of reading them from the main runs (src/unlearn_repro/pipeline/main_points.py).

    python benchmarks/main_points.py RESULTS [--profile embedded] [--out STEM] [--name NAME]

RESULTS: a run's `results/<profile>/` in which those points were computed by their own jobs (a run before
main_points.py; after it they are read, so equal by construction). For each point file, the grid value that
is the method's own setting (params.yaml's profile) is compared with cycle 1 of
`runs/<method>/<dataset>/<model>/seed<s>/metrics.json`, every value but the times. Writes STEM.csv (one row
per compared value) and STEM.md; exit status 1 where a value differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from unlearn_repro.config import load
from unlearn_repro.pipeline.ablations import NEWTON_KEYS
from unlearn_repro.pipeline.main_points import is_main_point
from unlearn_repro.pipeline.privacy import AUDIT, grid_keys

ROOT = Path(__file__).resolve().parents[1]


def _points(results: Path, cfg):
    """(study, point file's JSON, its grid keys) of every privacy and Newton ablation point file."""
    for path in sorted((results / "privacy" / "unlearn").glob("*/*/*/seed*.json")):
        doc = json.loads(path.read_text())
        yield "privacy", doc, grid_keys(cfg, doc["method"]), ("diverged", *AUDIT, "curvature")
    for path in sorted((results / "ablations" / "points").glob("*/*/*/*/seed*.json")):
        doc = json.loads(path.read_text())
        if doc.get("comparison") in cfg.ablations.newton:
            keys = [k for k in NEWTON_KEYS if k != "runtime_s"]
            yield "ablations", doc, list(cfg.ablations.newton[doc["comparison"]]["keys"]), keys


def compare(results: Path, cfg) -> list[dict]:
    """One row per compared value of every point at the main setting that has a main run."""
    rows = []
    for study, doc, keys, values in _points(results, cfg):
        main = results / "runs" / doc["method"] / doc["dataset"] / doc["model"] / f"seed{doc['seed']}"
        if not (main / "metrics.json").is_file():
            continue
        cycle = json.loads((main / "metrics.json").read_text())["cycles"][0]
        for p in (p for p in doc["points"] if is_main_point(cfg, doc["method"], keys, p["value"])):
            ids = {"study": study, "method": doc["method"], "setting": f"{doc['dataset']}/{doc['model']}"}
            rows += [
                {**ids, "seed": doc["seed"], "key": k, "point": json.dumps(p.get(k)),
                 "main": json.dumps(cycle.get(k)), "identical": p.get(k) == cycle.get(k)}
                for k in values
            ]  # fmt: skip
    return rows


def markdown(rows: list[dict], name: str) -> str:
    lines = [
        f"`{name}`: each privacy and Newton ablation point at the main study's own setting against cycle 1 "
        "of the main run of its method, task, model and seed, every value but the times "
        "(`python benchmarks/main_points.py`).",
        "",
        "| study | points | values | identical |",
        "|:--|--:|--:|--:|",
    ]
    for study in dict.fromkeys(r["study"] for r in rows):
        rs = [r for r in rows if r["study"] == study]
        pts = {(r["method"], r["setting"], r["seed"]) for r in rs}
        lines.append(f"| {study} | {len(pts)} | {len(rs)} | {sum(r['identical'] for r in rs)} |")
    differ = [r for r in rows if not r["identical"]]
    if differ:
        lines += ["", "| study | method | setting | seed | value | point | main |"]
        lines += ["|:--|:--|:--|--:|:--|--:|--:|"]
        lines += [f"| {r['study']} | {r['method']} | {r['setting']} | {r['seed']} | {r['key']} | "
                  f"{r['point']} | {r['main']} |" for r in differ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--profile", default="embedded")
    ap.add_argument("--out", type=Path, help="STEM: writes STEM.csv and STEM.md")
    ap.add_argument("--name", help="what the results are (default: their path)")
    args = ap.parse_args(argv)
    rows = compare(args.results, load(ROOT / "params.yaml", args.profile))
    if not rows:
        ap.error(f"{args.results}: no privacy or ablation point at the main setting with a main run")
    text = markdown(rows, args.name or str(args.results))
    if args.out:
        with open(args.out.with_suffix(".csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

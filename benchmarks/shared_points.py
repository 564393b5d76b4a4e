"""Points that two studies compute alike, compared bit for bit across two runs of different commits.

A cross-paper point at step factor 1 runs its task's own study step on the same models and seed
(docs/crossbench.md: the grid's centre is that study's value), so it must equal that study's run. Read from
one run's committed `crossbench/tables/points.csv` and a later run's study outputs, this checks that the code
between the two commits kept those numbers, point by point. It answers where the published tables cannot: a
run on another CPU vendor than the published one differs there everywhere (docs/determinism.md).

    python benchmarks/shared_points.py POINTS_CSV RUN_RESULTS [--out STEM] [--names OLD NEW]
    python benchmarks/shared_points.py POINTS_CSV OTHER_POINTS_CSV ...

POINTS_CSV: a crossbench points table; RUN_RESULTS: the later run's `results/<profile>/`. Given another
points table instead (e.g. crossbench_small's), each of its points that the first has (same entry, setting,
seed and factor) is compared, every number but the times. Pairs with a study run:

* tasks         an entry of a main-study method (full model, its own optimizer) and the main study's
                cycle 1 (`runs/<method>/<dataset>/<model>/seed<s>/metrics.json`)
* tofu          a full-model entry and the TOFU study's run of its loss and optimizer kind
                (`tofu/runs/<method>/<FO|SO>/seed<s>.json`, its final metrics)
* tdec          an entry (its own optimizer) and the TDEC study's configuration of the same method, adapter
                and lr on the same forget set (`tdec/runs/<model>/<config>.json`)
* memorization  a full-model entry and the memorization study's run (`memorization/runs/.../extraction.json`)

Writes STEM.csv (one row per compared value) and STEM.md (per benchmark, then each pair that differs).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

TOFU_KEYS = ("forget_quality", "model_utility", "forget_prob", "forget_rouge", "forget_truth", "retain_prob",
             "retain_rouge", "retain_truth", "real_authors_prob", "real_authors_rouge", "real_authors_truth",
             "world_facts_prob", "world_facts_rouge", "world_facts_truth")  # fmt: skip
TDEC_KEYS = ("el", "ma", "ppl", "epochs", "epochs_run")


@functools.cache  # each TDEC point looks through every TDEC run of its model
def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _step(row: dict, key: str) -> float:
    """A point's value of its step key (points.csv's `step`: 'lr=0.001', 'gamma=5e-05', ...)."""
    values = dict(part.split("=", 1) for part in row["step"].split(", ") if "=" in part)
    return float(values.get(key, math.nan))


def _tasks(run: Path, row: dict) -> dict | None:
    if row["adapter"] != "full" or row["optimizer"]:
        return None  # the main study runs each method with its own optimizer, on the full model
    dataset, model = row["setting"].split("/")
    ev = _read(run / "runs" / row["method"] / dataset / model / f"seed{row['seed']}" / "metrics.json")
    if ev is None:
        return None
    c = ev["cycles"][0]
    return {
        "efficacy": None if c.get("delta_exp") is None else -c["delta_exp"],
        "utility_loss": c.get("delta_test_nll"),
        "delta_acc": c.get("delta_acc"),
        "retain_accuracy": c.get("retain_accuracy"),
    }


def _tofu(run: Path, row: dict) -> dict | None:
    if row["adapter"] != "full":
        return None
    kind = "SO" if row["optimizer"] == "sophia" else "FO"
    summary = _read(run / "tofu" / "runs" / row["method"] / kind / f"seed{row['seed']}.json")
    return None if summary is None else {k: summary["final"].get(k) for k in TOFU_KEYS}


def _tdec(run: Path, row: dict) -> dict | None:
    if row["optimizer"]:
        return None  # the TDEC study trains with its own optimizer only
    for path in sorted((run / "tdec" / "runs" / row["setting"]).glob("*.json")):
        summary = _read(path)  # the run's spec at its top level: method, adapter, lr, table (default targets)
        same = (summary.get("method"), summary.get("adapter")) == (row["method"], row["adapter"])
        if same and float(summary.get("lr", math.nan)) == _step(row, "lr") and summary.get("table"):
            sets = {s["set"]: s for s in summary["sets"]}
            return {k: sets[int(row["seed"])].get(k) for k in TDEC_KEYS} if int(row["seed"]) in sets else None
    return None


def _memorization(run: Path, row: dict) -> dict | None:
    if row["adapter"] != "full" or row["optimizer"]:
        return None
    corpus, model = row["setting"].split("/")
    seed_dir = run / "memorization" / "runs" / row["method"] / corpus / model / f"seed{row['seed']}"
    ex = _read(seed_dir / "extraction.json")
    return None if ex is None else {"memorized": ex.get("memorized")}


STUDY = {"tasks": _tasks, "tofu": _tofu, "tdec": _tdec, "memorization": _memorization}


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    return float(v)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(points_csv: Path, run: Path) -> list[dict]:
    """One row per compared value of every factor-1 point that has a study run in `run`."""
    out = []
    with open(points_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["benchmark"] not in STUDY or float(row["factor"]) != 1.0:
                continue
            new = STUDY[row["benchmark"]](run, row)
            out += [_value(row, key, _num(row.get(key)), _num(value)) for key, value in (new or {}).items()]
    return out


def _value(row: dict, key: str, old: float | None, new: float | None) -> dict:
    """One compared value of a point (row: its points.csv row)."""
    diff = None if old is None or new is None else abs(old - new)
    ids = {k: row[k] for k in ("benchmark", "entry", "setting", "seed")}
    return {**ids, "key": key, "old": old, "new": new, "identical": _same(old, new), "abs_diff": diff}


TIMES = ("runtime_s", "wall_s")
IDS = ("benchmark", "entry", "method", "optimizer", "adapter", "seed", "setting", "factor", "step")


def compare_points(old_csv: Path, new_csv: Path) -> list[dict]:
    """One row per number of every point of `new_csv` that `old_csv` has too (same entry, setting, seed and
    factor): the same grid point of two crossbench runs (times left out: no rerun repeats them)."""
    with open(old_csv, newline="") as f:
        old = {tuple(r[k] for k in IDS): r for r in csv.DictReader(f)}
    out = []
    with open(new_csv, newline="") as f:
        for row in csv.DictReader(f):
            match = old.get(tuple(row[k] for k in IDS))
            for key in (k for k in row if match and k not in IDS + TIMES and k in match):
                try:
                    a, b = _num(match[key]), _num(row[key])
                except ValueError:  # not a number (a status, a bool)
                    continue
                if a is not None or b is not None:  # else a column of another task
                    out.append(_value(row, key, a, b))
    return out


def markdown(rows: list[dict], names: tuple[str, str]) -> str:
    by = defaultdict(list)
    for r in rows:
        by[r["benchmark"]].append(r)
    lines = [
        f"Old: `{names[0]}`; new: `{names[1]}`. Each new point against the same point of the old points "
        "table, or a factor-1 point against the study run it repeats (`python benchmarks/shared_points.py`).",
        "",
        "| benchmark | points | values | identical | largest change |",
        "|:--|--:|--:|--:|--:|",
    ]
    for bench, rs in by.items():
        pts = {(r["entry"], r["setting"], r["seed"]) for r in rs}
        diffs = [r["abs_diff"] for r in rs if r["abs_diff"] is not None and not r["identical"]]
        largest = f"{max(diffs):.3g}" if diffs else "–"
        lines.append(f"| {bench} | {len(pts)} | {len(rs)} | {sum(r['identical'] for r in rs)} | {largest} |")
    differ = [r for r in rows if not r["identical"]]
    if differ:
        lines += ["", "| benchmark | entry | setting | seed | value | old | new |"]
        lines += ["|:--|:--|:--|--:|:--|--:|--:|"]
        lines += [f"| {r['benchmark']} | {r['entry']} | {r['setting']} | {r['seed']} | {r['key']} | "
                  f"{r['old']!r} | {r['new']!r} |" for r in differ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("points_csv", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, help="STEM: writes STEM.csv and STEM.md")
    ap.add_argument("--names", nargs=2, metavar=("OLD", "NEW"))
    args = ap.parse_args(argv)
    if not args.points_csv.is_file():
        ap.error(f"{args.points_csv}: no such points table")
    pair = compare_points if args.run.suffix == ".csv" else compare
    rows = pair(args.points_csv, args.run)
    if not rows:
        ap.error(f"{args.run}: no study run matches a factor-1 point of {args.points_csv}")
    text = markdown(rows, tuple(args.names or (args.points_csv, args.run)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out.with_suffix(".csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

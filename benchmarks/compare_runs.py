"""Are two runs' numbers the same? Every table and summary file of two results folders, compared file by file:
a speed change must keep every number (issue 26), a change of one study must leave the others' as they were.

    python benchmarks/compare_runs.py OLD_RESULTS NEW_RESULTS [--out STEM] [--names OLD NEW]

OLD / NEW: two `results/<profile>/` folders (e.g. the committed one, from `git worktree add`, and a fresh
run). Compared: each study's `tables/*.csv` and `summary/*.json`, the premise tables `curvature/*.csv` and
`verdicts.csv` (the numbers; figures and HTML are drawn from them). A file is `identical` (same bytes),
`same numbers` (every number equal but the measured times, columns or keys that TIMING names: a run's own
wall clock), `differs` (how many of its numbers changed and the largest change), or only in one run
(`added`, `removed`). Then every claim's verdict on the two overview pages (`README.md`). Writes STEM.csv
(one row per file), STEM.verdicts.csv (one row per claim) and STEM.md (per study, each file that is not
identical, each verdict that changed).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

NUMBERS = ("*/tables/*.csv", "*/summary/*.json", "curvature/*.csv", "verdicts.csv")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\b(?:nan|-?inf)\b", re.IGNORECASE)
# a run's own wall clock (a column or key of seconds, a slowdown of two timed runs, Table 7's efficiency: the
# rank of the runtimes): no rerun repeats it
TIMING = re.compile(r"runtime|(^|_)time(_|$)|_s$|seconds|slowdown|epoch_s|wall|efficiency", re.IGNORECASE)


def number_files(root: Path) -> dict[str, Path]:
    """study-relative path -> file, for every table and summary under `root` (one folder per study)."""
    return {str(p.relative_to(root)): p for pattern in NUMBERS for p in root.glob(pattern) if p.is_file()}


def numbers(path: Path) -> tuple[list[float], list[float]]:
    """(the numbers of a CSV or JSON file, its measured times), each in reading order: a CSV's from its cells
    (a formatted cell such as '1.3 ± 1.4' gives two), a JSON file's from its number values (not its keys or
    strings such as a commit). A time is a number under a column or key that TIMING names, or any number of a
    file that it names (main/tables/runtime.csv): a run's own wall clock, which no rerun repeats."""
    plain, timing = [], []
    if path.suffix == ".json":
        pairs = [(key, float(v)) for key, v in _leaves(json.loads(path.read_text()))]
    else:
        with path.open(newline="") as f:
            pairs = [
                (col or "", float(m))
                for row in csv.DictReader(f)
                for col, cell in row.items()
                for m in NUMBER.findall(cell or "")
            ]
    for key, value in pairs:
        (timing if TIMING.search(key) or TIMING.search(path.stem) else plain).append(value)
    return plain, timing


def _leaves(obj, key: str = ""):
    """(the key above it, value) for every number in a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v, key)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield key, obj


def compare_file(old: Path | None, new: Path | None) -> dict:
    if old is None or new is None:
        return {"status": "added" if old is None else "removed", "changed": "", "largest_change": ""}
    if old.read_bytes() == new.read_bytes():
        return {"status": "identical", "changed": 0, "largest_change": 0.0}
    (a, a_time), (b, b_time) = numbers(old), numbers(new)
    if len(a) != len(b):
        return {"status": "differs", "changed": f"{len(a)} -> {len(b)} numbers", "largest_change": ""}
    diffs = [abs(x - y) for x, y in zip(a, b, strict=True) if not _same(x, y)]
    if not diffs:  # the same numbers: only measured times (or formatting) changed
        times = sum(not _same(x, y) for x, y in zip(a_time, b_time)) + abs(len(a_time) - len(b_time))
        return {"status": "same numbers", "changed": 0, "largest_change": 0.0, "times_changed": times}
    return {"status": "differs", "changed": len(diffs), "largest_change": max(diffs)}


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


# a claim's row on the overview page (results/<profile>/README.md): | claim | **verdict** | ...
VERDICT_ROW = re.compile(r"^\| (.+?) \| \*\*(.+?)\*\* \|", re.MULTILINE)


def verdicts(root: Path) -> dict[str, str]:
    """claim -> verdict of every claim on a results folder's overview page (none without the page)."""
    page = root / "README.md"
    return dict(VERDICT_ROW.findall(page.read_text(encoding="utf-8"))) if page.is_file() else {}


def verdict_rows(old_root: Path, new_root: Path) -> list[dict]:
    """Every claim of either overview page with its two verdicts: a changed number matters most where it
    changes a verdict."""
    old, new = verdicts(old_root), verdicts(new_root)
    return [
        {"claim": c, "old": old.get(c, ""), "new": new.get(c, ""), "same": old.get(c) == new.get(c)}
        for c in [*old, *(c for c in new if c not in old)]
    ]


def compare(old_root: Path, new_root: Path) -> list[dict]:
    old, new = number_files(old_root), number_files(new_root)
    rows = []
    for rel in sorted(set(old) | set(new)):
        rows.append(
            {
                "study": rel.split("/")[0].removesuffix(".csv"),
                "file": rel,
                **compare_file(old.get(rel), new.get(rel)),
            }
        )
    return rows


def verdict_markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    changed = [r for r in rows if not r["same"]]
    lines = [
        "",
        f"Verdicts (the overview page, `README.md`): {len(rows) - len(changed)} of {len(rows)} the same.",
    ]
    if changed:
        lines += ["", "| claim | old verdict | new verdict |", "|:--|:--|:--|"]
        lines += [f"| {r['claim']} | {r['old'] or '–'} | {r['new'] or '–'} |" for r in changed]
    return lines


def markdown(rows: list[dict], old_root, new_root, verdict_list: list[dict] = ()) -> str:
    per_study: dict[str, Counter] = {}
    for r in rows:
        per_study.setdefault(r["study"], Counter())[r["status"]] += 1
    statuses = ("identical", "same numbers", "differs", "added", "removed")
    lines = [
        f"Old: `{old_root}`; new: `{new_root}`. Each study's tables and summaries, the premise "
        "tables and the verdicts, file by file (`python benchmarks/compare_runs.py`).",
        "",
        "| study | files | " + " | ".join(statuses) + " |",
        "|:--|--:|" + "--:|" * len(statuses),
    ]
    for study, n in sorted(per_study.items()):
        lines.append(f"| {study} | {sum(n.values())} | " + " | ".join(str(n[s]) for s in statuses) + " |")
    lines += [
        "",
        "Same numbers: every number equal but the measured times (runtime and time columns or keys).",
    ]
    changed = [r for r in rows if r["status"] != "identical"]
    if changed:
        lines += [
            "",
            "| file | status | numbers changed | largest change | times changed |",
            "|:--|:--|--:|--:|--:|",
        ]
        for r in changed:
            largest = r["largest_change"]
            largest = f"{largest:.3g}" if isinstance(largest, float) else largest
            lines.append(
                f"| {r['file']} | {r['status']} | {r['changed']} | {largest} | {r.get('times_changed', '')} |"
            )
    return "\n".join(lines + verdict_markdown(list(verdict_list))) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--out", default="benchmarks/results/run_comparison")
    ap.add_argument("--names", nargs=2, metavar=("OLD", "NEW"), help="how the table names the two runs")
    args = ap.parse_args(argv)
    for root in (args.old, args.new):
        if not root.is_dir():
            sys.exit(f"error: {root}: not a results folder")
    rows = compare(args.old, args.new)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["study", "file", "status", "changed", "largest_change", "times_changed"]
        )
        writer.writeheader()
        writer.writerows(rows)
    claims = verdict_rows(args.old, args.new)
    if claims:
        with out.with_name(out.name + ".verdicts.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["claim", "old", "new", "same"])
            writer.writeheader()
            writer.writerows(claims)
    text = markdown(rows, *(args.names or (args.old, args.new)), claims)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

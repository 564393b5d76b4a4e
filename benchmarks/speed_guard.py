"""`make benchmark`: run the speed benchmarks, print every target's ratio and PASS / FAIL in one table, write
it to results/speed_guard.{csv,md} (--quick: to results/quick/), and exit 1 when a target fails or a
benchmark does not finish.

    python benchmarks/speed_guard.py [--quick] [--only fisher second_order]

Each benchmark writes its own targets (results/targets_<name>_cpu.csv, targets.py); a benchmark that dies
before writing them counts as a FAIL, and an old file is never read (it is deleted before the run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results"
sys.path.insert(0, str(HERE))

import doc_tables  # noqa: E402
import targets  # noqa: E402

BENCHMARKS = {  # name -> (script, its arguments, its arguments with --quick)
    "fisher": ("bench_fisher.py", [], ["--dims", "100000", "470000", "--blocks", "48", "--repeats", "3"]),
    "second_order": ("bench_second_order.py", [], ["--quick", "--skip-100m"]),
}


def run(name: str, quick: bool, scripts: Path, out_dir: Path) -> tuple[list[dict], float]:
    """Run one benchmark: its target rows (one FAIL row when it wrote none) and its seconds."""
    script, args, quick_args = BENCHMARKS[name]
    result = out_dir / f"targets_{name}_cpu.csv"
    result.unlink(missing_ok=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, str(scripts / script), *(quick_args if quick else args), "--out-dir", str(out_dir)]
    code = subprocess.call(cmd)
    seconds = time.perf_counter() - t0
    if result.is_file():
        return targets.read(result), seconds
    crash = targets.Target(
        name,
        f"{script} finished and wrote its targets (exit status {code})",
        float("nan"),
        "<=",
        0.0,
        "no result file",
    )
    return [crash.row()], seconds


def git_commit() -> str:
    """The checkout's commit, `+dirty` when the code (benchmarks/*.py, src/) differs from it."""

    def git(*args):
        out = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=True)
        return out.stdout

    try:
        dirty = git("status", "--porcelain", "--", ":(glob)benchmarks/*.py", "src").strip()
        return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    ap.add_argument("--only", choices=list(BENCHMARKS), nargs="+", default=list(BENCHMARKS))
    args = ap.parse_args(argv)
    out = OUT / "quick" if args.quick else OUT  # a smoke run leaves the committed results alone
    out.mkdir(parents=True, exist_ok=True)
    commit, load = git_commit(), os.getloadavg()[0]
    rows, took = [], {}
    for name in args.only:
        got, took[name] = run(name, args.quick, HERE, out)
        rows += got
    failed = sum(r["verdict"] != "PASS" for r in rows)
    times = ", ".join(f"{name} {s:.0f} s" for name, s in took.items())
    summary = (
        f"{len(rows) - failed} of {len(rows)} targets pass; at {commit}"
        f"{' (--quick)' if args.quick else ''}, {times}, CPU, 1 thread; load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} cores."
    )
    md = targets.markdown(rows) + "\n" + summary + "\n"
    targets.write_rows(rows, out / "speed_guard.csv")
    (out / "speed_guard.md").write_text(md)
    print("\n" + md, end="")
    if not args.quick and set(args.only) == set(BENCHMARKS):
        print(f"refreshed in {doc_tables.DOC.name}: {', '.join(doc_tables.refresh()) or 'nothing'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

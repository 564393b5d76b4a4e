"""The Snakemake process's own CPU time under the default job-selection rate and under the workflow profile's.

    python benchmarks/scheduler_overhead.py [--jobs 200] [--inputs 60] [--out STEM]

Snakemake re-runs its job selection every `max-jobs-per-timespan` timespan while jobs wait for a core (default
100/1s: every second), and each selection stats every input of every ready job. In the embedded
`make reproduce` the Snakemake process took about a third of one of the two cores (16 of the first 48 min),
time the jobs did not get. This runs one synthetic workflow (`--jobs` jobs of `sleep 1` on 2 cores, each with
`--inputs` source files as inputs, as the pipeline's rules have) twice, with Snakemake's default and with
profiles/default's setting, and writes the Snakemake process's wall and CPU time for each.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = """
SRC = [f"src/f{{i}}.py" for i in range({inputs})]
rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))
rule job:
    input: SRC
    output: "out/{{i}}.txt"
    shell: "sleep 1; echo {{wildcards.i}} > {{output}}"
"""


def profile_rate() -> str:
    return str(yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())["max-jobs-per-timespan"])


def run(workdir: Path, rate: str | None) -> dict:
    """One run in a fresh copy of the workflow: the Snakemake process's wall and CPU seconds."""
    args = [sys.executable, "-m", "snakemake", "--cores", "2", "--workflow-profile", "none", "-q"]
    args += ["--max-jobs-per-timespan", rate] if rate else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(args, cwd=workdir, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # the jobs sleep: ~0 CPU
    return {
        "setting": rate or "default (100/1s)",
        "wall_s": round(time.monotonic() - start, 1),
        "cpu_s": round(cpu, 1),
    }


def workflow(root: Path, jobs: int, inputs: int) -> Path:
    (root / "src").mkdir(parents=True)
    for i in range(inputs):
        (root / "src" / f"f{i}.py").write_text(f"{i}\n")
    (root / "Snakefile").write_text(SNAKEFILE.format(jobs=jobs, inputs=inputs))
    return root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--inputs", type=int, default=60)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/scheduler_overhead"))
    a = ap.parse_args(argv)
    rows = []
    for rate in (None, profile_rate()):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(
                run(workflow(Path(tmp), a.jobs, a.inputs), rate) | {"jobs": a.jobs, "inputs": a.inputs}
            )
            print(rows[-1], flush=True)
    out = Path(a.out)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"Snakemake's own CPU time: {a.jobs} jobs of `sleep 1` on 2 cores, {a.inputs} inputs each "
        f"(`python benchmarks/scheduler_overhead.py`, {os.cpu_count()} CPUs)",
        "",
        "| max-jobs-per-timespan | wall (s) | Snakemake CPU (s) |",
        "|:--|--:|--:|",
        *[f"| {r['setting']} | {r['wall_s']} | {r['cpu_s']} |" for r in rows],
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Each study's share of a Snakemake run, from its log: jobs, summed job wall time, and the span from its first
job's start to its last job's end. `python benchmarks/study_times.py .snakemake/log/<run>.snakemake.log`.

A job's study is the rule file that defines its rule (base_models, data, evaluate, unlearn and main are the
main study's). With `--cores N` jobs overlap, so the summed job time / N is the study's share of the run's
wall time; the span overlaps other studies'."""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

MAIN_FILES = {"base_models", "data", "evaluate", "unlearn", "main", "common"}


def rule_studies(rules_dir: Path) -> dict[str, str]:
    out = {}
    for f in sorted(rules_dir.glob("*.smk")):
        study = "main" if f.stem in MAIN_FILES else f.stem
        for name in re.findall(r"^rule (\w+):", f.read_text(), flags=re.M):
            out[name] = study
    return out


def jobs(log: Path) -> list[tuple[str, datetime, datetime]]:
    """(rule, start, end) of every finished job."""
    now, pending, started, done = None, None, {}, []
    for line in log.read_text().splitlines():
        if m := re.fullmatch(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line.strip()):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):$", line):
            pending = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)$", line)) and pending:
            started[m.group(1)], pending = (pending, now), None
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in started:
            rule, start = started.pop(m.group(1))
            done.append((rule, start, now))
    return done


def main(log: str, rules_dir: str = "rules") -> None:
    study_of = rule_studies(Path(rules_dir))
    per = defaultdict(list)
    for rule, start, end in jobs(Path(log)):
        per[study_of.get(rule, "other")].append((start, end))
    print("| study | jobs | summed job time | span |\n|---|--:|--:|--:|")
    for study, spans in sorted(per.items(), key=lambda kv: min(s for s, _ in kv[1])):
        busy = sum((e - s).total_seconds() for s, e in spans) / 60
        span = (max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds() / 60
        print(f"| {study} | {len(spans)} | {busy:.1f} min | {span:.1f} min |")


if __name__ == "__main__":
    main(*sys.argv[1:])

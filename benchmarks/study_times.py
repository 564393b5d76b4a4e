"""Where a Snakemake run's time goes, from its log and the jobs' own logs: per rule the job count, the summed
wall and CPU time, the peak memory, the share spent before the first model step, and the run's critical path.

    python benchmarks/study_times.py .snakemake/log/<run>.snakemake.log [--root DIR] [--out STEM]

writes STEM.csv (one row per rule), STEM.jobs.csv (one per job) and STEM.md (the table, the critical path);
with `--before OLD.jobs.csv` (an earlier run's STEM.jobs.csv) also STEM.compare.csv / .md: per study, before
and after, the job count, the summed job wall and CPU time and the span; STEM.compare_rules.csv / .md the same
per rule and method.
Sources, per job (every job is `python -m unlearn_repro.job`, forked from the job server, so Snakemake's
`benchmark:` files measure the thin client: right for wall time, not for CPU or memory):
  * wall: the job's benchmark file (`s`) where its rule has one, else its start and end in the Snakemake log
    (1 s resolution);
  * CPU, peak RSS: the job's last log line `[job] cpu X s, max rss Y MB` (jobserver.py), else the benchmark
    file's (a job that ran as its own process);
  * before the first model step: `[job] first model step X s (cpu Y s) after the job started` (progress.py:
    wall time since the job's client started, the job process's CPU time), in jobs
    that have a model loop (training, unlearning, scoring); other jobs have none;
  * the DAG: a job depends on the jobs whose outputs (files, or directories above its inputs) it reads.
The critical path is the longest chain of dependent jobs by wall time: the run's length with unlimited cores.
A job's study is the rule file that defines its rule (base_models, data, evaluate, unlearn and main: `main`;
the Snakefile's `all`: `workflow`).
"""

from __future__ import annotations

import argparse
import csv
import graphlib
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

MAIN_FILES = {"base_models", "data", "evaluate", "unlearn", "main", "common"}
STAMP = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]")
JOB_LINE = re.compile(r"\[job\] cpu ([\d.]+) s, max rss ([\d.]+) MB")
FIRST_STEP = re.compile(r"\[job\] first model step ([\d.]+) s(?: \(cpu ([\d.]+) s\))? after the job started")
FIELDS = ("input", "output", "log", "benchmark", "wildcards")


@dataclass
class Job:
    """One finished job of the log, with what its own log and benchmark file say (None: not recorded)."""

    jobid: str
    rule: str
    start: datetime
    end: datetime | None = None
    input: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    benchmark: list[str] = field(default_factory=list)
    wildcards: list[str] = field(default_factory=list)
    wall_s: float | None = None
    cpu_s: float | None = None
    rss_mb: float | None = None
    first_step_s: float | None = None
    first_step_cpu_s: float | None = None


def rule_studies(rules_dir: Path) -> dict[str, str]:
    """rule -> its study: the rule file's name (the main study's files: `main`; the Snakefile: `workflow`)."""
    out = {}
    for f in [*sorted(rules_dir.glob("*.smk")), rules_dir.parent / "Snakefile"]:
        if not f.is_file():
            continue
        study = "main" if f.stem in MAIN_FILES else "workflow" if f.name == "Snakefile" else f.stem
        text = (
            f.read_text()
        )  # a rule, or one reused from another file (`use rule a as b with:`): b is this study's
        for name in re.findall(
            r"^(?:(?:rule|checkpoint) (\w+):|use rule \w+ as (\w+))", text, flags=re.MULTILINE
        ):
            out[name[0] or name[1]] = study
    return out


def parse_log(text: str) -> list[Job]:
    """The finished jobs of a Snakemake log in the order they finished (failed, unfinished ones left out)."""
    now, current, started, done = None, None, {}, []
    for line in text.splitlines():
        if m := STAMP.fullmatch(line.strip()):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):$", line):
            current = Job("", m.group(1), now)
        elif current is not None and (m := re.match(r"\s+(\w+): (.*)$", line)):
            key, value = m.groups()
            if key == "jobid":
                current.jobid = value
                started[value] = current
            elif key in FIELDS:
                setattr(current, key, value.split(", "))
        elif m := re.match(r"Finished jobid: (\d+)", line):
            current = None
            if (job := started.pop(m.group(1), None)) is not None:
                job.end = now
                done.append(job)
        elif not line.startswith(" "):
            current = None
    return done


def read_job_log(path: Path) -> dict[str, float]:
    """cpu_s, rss_mb, first_step_s and first_step_cpu_s from a job's own log (absent: not in it)."""
    out = {}
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            if m := JOB_LINE.search(line):
                out.update(cpu_s=float(m.group(1)), rss_mb=float(m.group(2)))
            elif (m := FIRST_STEP.search(line)) and "first_step_s" not in out:
                out["first_step_s"] = float(m.group(1))
                if m.group(2) is not None:
                    out["first_step_cpu_s"] = float(m.group(2))
    return out


def read_benchmark(path: Path) -> dict[str, float]:
    """The first row of a Snakemake benchmark file (`s`, `cpu_time`, `max_rss`, ...); {} when absent."""
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(path.open(), delimiter="\t"))
    return {k: float(v) for k, v in rows[0].items() if k != "h:m:s" and v not in ("", "NA")} if rows else {}


def measure(jobs: list[Job], root: Path) -> None:
    """Fill each job's wall, CPU, RSS and first-step time from its files under `root`."""
    for job in jobs:
        bench = read_benchmark(root / job.benchmark[0]) if job.benchmark else {}
        own = read_job_log(root / job.log[0]) if job.log else {}
        job.wall_s = bench.get("s", (job.end - job.start).total_seconds())
        job.cpu_s = own.get("cpu_s", bench.get("cpu_time"))
        job.rss_mb = own.get("rss_mb", bench.get("max_rss"))
        if "first_step_s" in own:
            job.first_step_s = min(own["first_step_s"], job.wall_s)
            job.first_step_cpu_s = own.get("first_step_cpu_s")


def dependencies(jobs: list[Job]) -> dict[str, set[str]]:
    """jobid -> the jobids whose outputs it reads (an output directory counts for the files under it)."""
    producer = {out.rstrip("/"): job.jobid for job in jobs for out in job.output}
    deps = {}
    for job in jobs:
        found = set()
        for path in job.input:
            p = Path(path.rstrip("/"))
            hit = next((producer[str(q)] for q in (p, *p.parents) if str(q) in producer), None)
            if hit is not None and hit != job.jobid:
                found.add(hit)
        deps[job.jobid] = found
    return deps


def critical_path(jobs: list[Job], deps: dict[str, set[str]]) -> tuple[float, list[Job]]:
    """The longest chain of dependent jobs by summed wall time: (its seconds, its jobs from first to last)."""
    by_id = {job.jobid: job for job in jobs}
    finish, best_dep = {}, {}
    for jid in graphlib.TopologicalSorter(deps).static_order():
        prev = max(deps.get(jid, ()), key=lambda d: finish[d], default=None)
        best_dep[jid] = prev
        finish[jid] = (finish[prev] if prev else 0.0) + by_id[jid].wall_s
    if not finish:
        return 0.0, []
    jid, chain = max(finish, key=finish.get), []
    total = finish[jid]
    while jid is not None:
        chain.append(by_id[jid])
        jid = best_dep[jid]
    return total, chain[::-1]


def _total(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def before_first_step(jobs: list[Job]) -> dict:
    """Of the jobs that logged a first model step: how many, the wall and CPU time before it, and their
    shares of those jobs' wall and CPU time."""
    stepped = [j for j in jobs if j.first_step_s is not None]
    wall, before = sum(j.wall_s for j in stepped), sum(j.first_step_s for j in stepped)
    timed = [j for j in stepped if j.first_step_cpu_s is not None and j.cpu_s]
    cpu, before_cpu = sum(j.cpu_s for j in timed), sum(j.first_step_cpu_s for j in timed)
    return {
        "jobs_with_model_step": len(stepped),
        "before_first_step_s": before if stepped else None,
        "before_first_step_share": before / wall if wall > 0 else None,
        "before_first_step_cpu_s": before_cpu if timed else None,
        "before_first_step_cpu_share": before_cpu / cpu if cpu > 0 else None,
    }


def rule_rows(jobs: list[Job], study_of: dict[str, str], on_path: set[str]) -> list[dict]:
    """One row per rule, the rules with the most wall time first."""
    per = defaultdict(list)
    for job in jobs:
        per[job.rule].append(job)
    rows = []
    for rule, group in per.items():
        rows.append(
            {
                "rule": rule,
                "study": study_of.get(rule, "other"),
                "jobs": len(group),
                "wall_s": sum(j.wall_s for j in group),
                "cpu_s": _total(j.cpu_s for j in group),
                "max_rss_mb": max((j.rss_mb for j in group if j.rss_mb is not None), default=None),
                **before_first_step(group),
                "on_critical_path": sum(j.jobid in on_path for j in group),
            }
        )
    return sorted(rows, key=lambda r: -r["wall_s"])


def study_lines(jobs: list[Job], study_of: dict[str, str]) -> list[str]:
    """Each study's jobs, summed job wall time and span (first start to last end; spans overlap), in the
    order the studies started."""
    per = defaultdict(list)
    for job in jobs:
        per[study_of.get(job.rule, "other")].append(job)
    out = ["| study | jobs | summed job wall time | span |", "|:--|--:|--:|--:|"]
    for study, group in sorted(per.items(), key=lambda kv: min(j.start for j in kv[1])):
        span = (max(j.end for j in group) - min(j.start for j in group)).total_seconds()
        busy = sum(j.wall_s for j in group)
        out.append(f"| {study} | {len(group)} | {busy / 60:.1f} min | {span / 60:.1f} min |")
    return out


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _before_cell(b: dict) -> str:
    if not b["jobs_with_model_step"]:
        return "–"
    return (
        f"{_pct(b['before_first_step_share'])} / {_pct(b['before_first_step_cpu_share'])} "
        f"({_fmt(b['before_first_step_s'])} s / {_fmt(b['before_first_step_cpu_s'])} s)"
    )


def _rule_line(r: dict) -> str:
    return (
        f"| {r['rule']} | {r['study']} | {r['jobs']} | {_fmt(r['wall_s'])} | {_fmt(r['cpu_s'])} | "
        f"{_fmt(r['max_rss_mb'], 0)} | {_before_cell(r)} | {r['on_critical_path']} |"
    )


def markdown(
    rows: list[dict], jobs: list[Job], path_s: float, chain: list[Job], study_of: dict[str, str]
) -> str:
    """The per-rule table with its totals, the run's span, the critical path and the per-study table."""
    first, last = min(j.start for j in jobs), max(j.end for j in jobs)
    span = (last - first).total_seconds()
    wall, cpu = sum(j.wall_s for j in jobs), _total(j.cpu_s for j in jobs)
    out = [
        (
            "| rule | study | jobs | wall (s) | CPU (s) | max RSS (MB) | before the first model step: "
            "wall / CPU | jobs on critical path |"
        ),
        "|:--|:--|--:|--:|--:|--:|--:|--:|",
        *map(_rule_line, rows),
        (
            f"| **all** | | {len(jobs)} | {_fmt(wall)} | {_fmt(cpu)} | | "
            f"{_before_cell(before_first_step(jobs))} | {len(chain)} |"
        ),
        "",
        (
            f"Run: {len(jobs)} jobs from {first:%Y-%m-%d %H:%M:%S} to {last:%H:%M:%S}: {_fmt(span)} s "
            f"of wall time, {_fmt(wall)} s of summed job wall time. Critical path: {_fmt(path_s)} s "
            f"({_pct(path_s / span if span else None)} of the run), {len(chain)} jobs:"
        ),
        "",
    ]
    out += [
        f"{i}. {j.rule} ({', '.join(j.wildcards) or '-'}): {_fmt(j.wall_s)} s" for i, j in enumerate(chain, 1)
    ]
    return "\n".join([*out, "", *study_lines(jobs, study_of)]) + "\n"


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def job_rows(jobs: list[Job], on_path: set[str]) -> list[dict]:
    return [
        {
            "jobid": j.jobid,
            "rule": j.rule,
            "wildcards": ", ".join(j.wildcards),
            "start": j.start.isoformat(),
            "end": j.end.isoformat(),
            "wall_s": j.wall_s,
            "cpu_s": j.cpu_s,
            "max_rss_mb": j.rss_mb,
            "first_step_s": j.first_step_s,
            "first_step_cpu_s": j.first_step_cpu_s,
            "on_critical_path": j.jobid in on_path,
        }
        for j in jobs
    ]


METHOD_WILDCARDS = ("method=", "ablation_method=", "tofu_method=", "xentry=")  # a rule's jobs told apart


def rule_and_method(row: dict) -> str:
    """A job's rule, with its method (or cross-paper entry) where its rule runs several: `unlearn
    (retrain)`."""
    method = [w.split("=", 1)[1] for w in row["wildcards"].split(", ") if w.startswith(METHOD_WILDCARDS)]
    rule = "all (the target)" if row["rule"] == "all" else row["rule"]  # not the run's total, `all`
    return f"{rule} ({method[0]})" if method else rule


def study_totals(rows: list[dict], study_of: dict[str, str], group=None) -> dict[str, dict]:
    """study (or `group(row)`) -> jobs, summed job wall and CPU seconds and span (first start to last end),
    from the rows of a STEM.jobs.csv (strings, as read); `all`: the whole run."""
    per = defaultdict(list)
    for r in rows:
        per[group(r) if group else study_of.get(r["rule"], "other")].append(r)
        per["all"].append(r)
    out = {}
    for study, group in per.items():
        cpu = [float(r["cpu_s"]) for r in group if r["cpu_s"] not in ("", None)]
        start = min(datetime.fromisoformat(r["start"]) for r in group)
        end = max(datetime.fromisoformat(r["end"]) for r in group)
        out[study] = {
            "jobs": len(group),
            "wall_s": sum(float(r["wall_s"]) for r in group),
            "cpu_s": sum(cpu) if cpu else None,
            "span_s": (end - start).total_seconds(),
        }
    return out


def compare_rows(before: list[dict], after: list[dict], study_of: dict[str, str], group=None) -> list[dict]:
    """One row per study (or `group`, as study_totals; the run's `all` last): each measure before, after and
    after / before."""
    b, a = study_totals(before, study_of, group), study_totals(after, study_of, group)
    rows = []
    for study in sorted(set(a) | set(b), key=lambda s: (s == "all", s)):
        row = {"study": study}
        for key in ("jobs", "wall_s", "cpu_s", "span_s"):
            x, y = b.get(study, {}).get(key), a.get(study, {}).get(key)
            row |= {
                f"{key}_before": x,
                f"{key}_after": y,
                f"{key}_ratio": y / x if x and y is not None else None,
            }
        rows.append(row)
    return rows


def compare_markdown(rows: list[dict], before: str, after: str, what: str = "study") -> str:
    """The comparison as a Markdown table, times in minutes."""
    out = [
        f"Before: `{before}`; after: `{after}`. Minutes; the ratio is after / before.",
        "",
        f"| {what} | jobs | summed job wall: before / after (ratio) | summed job CPU | span |",
        "|:--|--:|--:|--:|--:|",
    ]
    for r in rows:
        cells = []
        for key in ("wall_s", "cpu_s", "span_s"):
            x, y, q = (r[f"{key}_{k}"] for k in ("before", "after", "ratio"))
            x, y = (None if v is None else v / 60 for v in (x, y))
            cells.append(f"{_fmt(x)} / {_fmt(y)} ({_fmt(q, 2)})")
        jobs = f"{r['jobs_before'] or 0} / {r['jobs_after'] or 0}"
        name = f"**{r['study']}**" if r["study"] == "all" else r["study"]
        out.append(f"| {name} | {jobs} | {' | '.join(cells)} |")
    return "\n".join(out) + "\n"


def compare(before: Path, out: Path, study_of: dict[str, str]) -> str:
    """Write OUT.compare.csv / .md from an earlier run's jobs file and this run's OUT.jobs.csv, per study, and
    OUT.compare_rules.csv / .md per rule and method (where a change touched some methods' jobs only)."""
    old, new = _read_csv(before), _read_csv(out.with_suffix(".jobs.csv"))
    names = before.name, out.with_suffix(".jobs.csv").name
    md = ""
    for suffix, group, what in (
        (".compare", None, "study"),
        (".compare_rules", rule_and_method, "rule (method)"),
    ):
        rows = compare_rows(old, new, study_of, group)
        _write_csv(out.with_suffix(suffix + ".csv"), rows)
        text = compare_markdown(rows, *names, what)
        out.with_suffix(suffix + ".md").write_text(text)
        md = md or text
    return md


def report(log: Path, root: Path, out: Path, rules_dir: Path) -> str:
    """Write OUT.csv, OUT.jobs.csv and OUT.md for the run in `log`; returns the Markdown."""
    jobs = parse_log(log.read_text(errors="replace"))
    if not jobs:
        raise SystemExit(f"no finished jobs in {log}")
    measure(jobs, root)
    path_s, chain = critical_path(jobs, dependencies(jobs))
    on_path = {j.jobid for j in chain}
    study_of = rule_studies(rules_dir)
    rows = rule_rows(jobs, study_of, on_path)
    md = markdown(rows, jobs, path_s, chain, study_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(out.with_suffix(".csv"), rows)
    _write_csv(out.with_suffix(".jobs.csv"), job_rows(jobs, on_path))
    out.with_suffix(".md").write_text(md)
    return md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", type=Path, help="a Snakemake log (.snakemake/log/*.snakemake.log, or its stderr)")
    ap.add_argument("--root", type=Path, help="the run's working directory (default: the log's, else .)")
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/study_times"),
        help="stem of the result files (default: benchmarks/results/study_times)",
    )
    ap.add_argument("--rules-dir", type=Path, help="the workflow's rules/ (default: ROOT/rules)")
    ap.add_argument(
        "--before", type=Path, help="an earlier run's STEM.jobs.csv: write STEM.compare.csv / .md"
    )
    args = ap.parse_args(argv)
    if args.before and not args.before.is_file():
        ap.error(f"--before {args.before}: no such file (an earlier run's STEM.jobs.csv)")
    log = args.log.resolve()
    root = args.root or (log.parents[2] if log.parent.name == "log" else Path("."))
    rules_dir = args.rules_dir or root / "rules"
    print(report(args.log, root, args.out, rules_dir), end="")
    if args.before:
        print(compare(args.before, args.out, rule_studies(rules_dir)), end="")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import doc_tables  # the docs' copies of the result files, refreshed

    print(f"refreshed in {doc_tables.DOC.name}: {', '.join(doc_tables.refresh()) or 'nothing'}")


if __name__ == "__main__":
    main(sys.argv[1:])

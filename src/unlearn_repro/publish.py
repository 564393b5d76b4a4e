"""Publishing one complete run (docs/publishing.md): after `make reproduce`, `make publish` builds the
Snakemake report, writes the provenance (RUN.json, RUN.md) and checks what git will hold of
results/<profile>/. The published set is a rule on paths, `published()`, that .gitignore spells out
line by line (git alone decides what is committed; tests/unit/test_published_results.py checks that the two
agree), and dvc.yaml's generated stages mark those outputs `cache: false` (git holds them, DVC only hashes
them: a cached DVC output that git tracks stops `dvc commit`).

    python -m unlearn_repro.publish targets PROFILE        the files the default target names (JSON)
    python -m unlearn_repro.publish provenance results/P   RUN.json + RUN.md from the newest complete run
    python -m unlearn_repro.publish check results/P        what git will commit: complete, small, no weights
    python -m unlearn_repro.publish verify results/P       the committed set (CI: the published results)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from unlearn_repro.paths import ROOT

# Relative to results/<profile>/. Files at its top: the report, the provenance, the verdicts (and a results
# page, if one is written there). Folders: every study's summary, tables and figures, and the curvature
# premise tables. Everything else (models, runs, splits, checkpoints, collected metrics) is DVC's alone.
PUBLISHED_FILES = (
    "report.html",
    "RUN.json",
    "RUN.md",
    "README.md",
    "overview.html",
    "verdicts.csv",
    "verdicts.md",
    "verdicts.html",
)
PUBLISHED_DIRS = ("*/summary", "*/tables", "*/figures", "curvature")
# made by `make publish`, not by the DAG; and what it also writes where the run has it (not required)
PUBLISH_MADE = ("report.html", "RUN.json", "RUN.md")
PUBLISH_MAY_MAKE = ("README.md", "tdec/summary/provenance.json")  # the results page; `make verify`'s record
# the published set of one profile: a few MB (report.html, every figure inlined, is most of it; 10 MB until
# crossbench_small joined the default target and took it to 10.6 MB)
MAX_BYTES = 12 * 2**20
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".npz", ".npy", ".pkl", ".gguf")
SHALLOW_HINT = "fetch the history: `git fetch --unshallow` (GitHub's actions/checkout: `fetch-depth: 0`)"


def published(rel: str) -> bool:
    """Whether git holds this path of results/<profile>/ (a file or a folder, '/'-separated)."""
    if rel in PUBLISHED_FILES:
        return True
    parts = PurePosixPath(rel).parts
    for folder in PUBLISHED_DIRS:
        pattern = folder.split("/")
        if len(parts) >= len(pattern) and all(map(fnmatchcase, parts, pattern)):
            return True
    return False


def _git(*args: str, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


# ---- the default target ----


def _targets_here(profile: str) -> list[str]:
    """The files `rule all` asks for at this profile, from the parsed workflow (no DAG, no job)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            ResourceSettings(cores=1),
            ConfigSettings(config={"profile": profile}),
            snakefile=Path("Snakefile"),
            workdir=Path("."),
        )
        return [str(f) for f in workflow._workflow.get_rule("all").input]


def default_targets(profile: str, root: Path = ROOT) -> list[str]:
    """The files the default target names at `profile` (paths from the repository root). In a child process:
    reading the Snakefile sets environment variables that the caller should not inherit."""
    r = subprocess.run(
        [sys.executable, "-m", "unlearn_repro.publish", "targets", profile],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
    )
    if r.returncode != 0:  # the child's last line names the cause (e.g. a ConfigError naming the profile)
        last = next((line for line in reversed((r.stdout + r.stderr).splitlines()) if line.strip()), "")
        raise SystemExit(f"publish: reading the default target of profile {profile!r} failed: {last.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- provenance ----


def _finished(log: Path, profile: str) -> bool:
    text = log.read_text(errors="replace")
    return bool(re.search(r"^(\d+) of \1 steps \(100%\) done$", text, re.M)) and f"results/{profile}/" in text


def run_log(root: Path, profile: str) -> Path:
    """The newest Snakemake log of a finished run of this profile (every step done, its outputs under
    results/<profile>/): `make reproduce`'s, not a dry run's, a lint's or a report's."""
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True)
    for log in logs:
        if _finished(log, profile):
            return log
    raise SystemExit(
        f"no finished run of profile {profile!r} among {len(logs)} log(s) in {root}/.snakemake/log: "
        "`make reproduce` first"
    )


def _log_header(text: str) -> dict[str, str]:
    head = {}
    for key in ("Date", "Command", "Platform", "Snakemake version"):
        if m := re.search(rf"^  {key}: (.*)$", text, re.M):
            head[key] = m.group(1).strip()
    return head


def _study_times():
    """benchmarks/study_times.py (where every run's per-rule and per-study times come from)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_times", ROOT / "benchmarks" / "study_times.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("study_times", module)
    spec.loader.exec_module(module)
    return module


def run_times(log: Path, root: Path) -> dict:
    """Start, end, wall time, cores, job count and each study's summed job time of the run in `log`."""
    st = _study_times()
    text = log.read_text(errors="replace")
    jobs = st.parse_log(text)
    if not jobs:
        raise SystemExit(f"no finished jobs in {log}")
    st.measure(jobs, root)
    study_of = st.rule_studies(root / "rules")
    start, end = min(j.start for j in jobs), max(j.end for j in jobs)
    wall = (end - start).total_seconds()
    if m := re.search(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)$", text, re.M):
        wall = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    per: dict[str, list] = {}
    for job in jobs:
        per.setdefault(study_of.get(job.rule, "other"), []).append(job)
    busy = sum(j.wall_s for j in jobs) or 1.0
    studies = [
        {
            "study": study,
            "jobs": len(group),
            "job_wall_s": round(sum(j.wall_s for j in group), 1),
            "share": round(sum(j.wall_s for j in group) / busy, 4),
        }
        for study, group in sorted(per.items(), key=lambda kv: -sum(j.wall_s for j in kv[1]))
    ]
    cores = re.search(r"^Provided cores: (\d+)", text, re.M)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "wall_time_s": round(wall, 1),
        "cores": int(cores.group(1)) if cores else None,
        "jobs": len(jobs),
        "studies": studies,
    }


def later_runs(log: Path, profile: str) -> list[dict]:
    """The finished runs after `log` (e.g. the report jobs rerun after a change of the report code): what
    they reran, so that the provenance says which outputs are younger than the run."""
    st = _study_times()
    out = []
    for other in sorted(log.parent.glob("*.snakemake.log")):
        if other.name <= log.name or not _finished(other, profile):
            continue
        jobs = st.parse_log(other.read_text(errors="replace"))
        if jobs:
            rules = sorted({j.rule for j in jobs})
            out.append({"log": other.name, "start": min(j.start for j in jobs).isoformat(), "rules": rules})
    return out


def artifact_commits(results: Path) -> Counter:
    """The code commits the run's own records name (`git_commit` in its models', runs' and data's JSON),
    the published files left out: git holds those, so they may be an older run's."""
    found: Counter = Counter()
    for path in results.rglob("*.json"):
        rel = path.relative_to(results).as_posix()
        if published(rel) or path.stat().st_size > 4 * 2**20:
            continue
        data = path.read_bytes()
        if b'"git_commit"' not in data:
            continue
        try:
            commit = json.loads(data).get("git_commit")
        except (ValueError, AttributeError):
            continue
        if isinstance(commit, str) and commit and commit != "unknown":
            found[commit] += 1
    return found


def _is_ancestor(a: str, b: str, root: Path) -> bool:
    return _git("merge-base", "--is-ancestor", a, b, cwd=root, check=False).returncode == 0


def run_commit(commits: Counter, head: str, root: Path) -> str:
    """The run's commit: the one its artifacts name; of several, the newest (every other one its ancestor);
    none or no such one: HEAD."""
    names = {c.removesuffix("+dirty") for c in commits}
    for c in names:
        if all(_is_ancestor(o, c, root) for o in names):
            return c
    return head


def machine() -> dict:
    """The machine, as numerics records it for every artifact, with its size."""
    from unlearn_repro import numerics

    info = numerics.describe()
    mem = None
    if Path("/proc/meminfo").is_file():
        if m := re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M):
            mem = round(int(m.group(1)) / 2**20, 1)
    return {
        "platform": platform.platform(),
        "cpu_model": info.get("cpu_model"),
        "cpu_count": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "numerics": info.get("mode"),
    }


def provenance(results: Path, root: Path = ROOT, log: Path | None = None) -> dict:
    profile = results.name
    log = log or run_log(root, profile)
    text = log.read_text(errors="replace")
    header = _log_header(text)
    command = re.sub(r"^\S*/snakemake\b", "snakemake", header.get("Command", "snakemake"))
    make = re.fullmatch(r"snakemake --cores \S+ --profile profiles/default", command)
    head = _git("rev-parse", "HEAD", cwd=root).stdout.strip()
    changed = _git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)results",
        ":(exclude)dvc.lock",
        cwd=root,
    ).stdout.split("\n")
    commits = artifact_commits(results)
    commit = run_commit(commits, head, root)
    return {
        "profile": profile,
        "commit": commit,
        "clean": bool(commits) and not any(c.endswith("+dirty") for c in commits) and len(set(commits)) == 1,
        "artifact_commits": dict(commits.most_common()),
        "command": "make reproduce" if make else command,
        "snakemake_command": command,
        **run_times(log, root),
        "machine": machine(),
        "snakemake_log": log.relative_to(root).as_posix() if log.is_relative_to(root) else str(log),
        "snakemake_version": header.get("Snakemake version"),
        "later_runs": later_runs(log, profile),
        "published": {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "head": head,
            "head_clean": not any(line.strip() for line in changed),
        },
    }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def run_md(run: dict, study: str | None = None) -> str:
    """RUN.md: RUN.json in a few lines (`study`: one published from its own run, outside the default
    target)."""
    m = run["machine"]
    named = ", ".join(f"{c} ({n})" for c, n in run["artifact_commits"].items()) or "no commit"
    state = (
        "every artifact from this commit, no uncommitted change under src/"
        if run["clean"]
        else f"**not clean**: the artifacts name {named}"
    )
    of = f" of `{study}`" if study else ""
    refresh = (
        f"`make {study}`, then `python -m unlearn_repro.publish provenance results/{run['profile']} "
        f"--log <its log> --into results/{run['profile']}/{study}/summary` (docs/publishing.md)"
        if study
        else "`make reproduce && make publish` (docs/publishing.md)"
    )
    lines = [
        f"# The published `{run['profile']}` run{of}",
        "",
        f"- commit: `{run['commit']}` ({state})",
        f"- command: `{run['command']}`"
        + ("" if run["command"] == run["snakemake_command"] else f" (`{run['snakemake_command']}`)"),
        f"- date: {run['start']} to {run['end']}; wall time {_minutes(run['wall_time_s'])}, "
        f"{run['jobs']} jobs on {run['cores']} core(s)",
        *(
            f"- rerun after it: {r['start']}, {', '.join(r['rules'])} (`{r['log']}`)"
            for r in run.get("later_runs", [])
        ),
        f"- machine: {m['cpu_model']}, {m['cpu_count']} CPUs, {m['memory_gib']} GiB; {m['platform']}; "
        f"Python {m['python']}, numerics {m['numerics']}",
        f"- published: {run['published']['date']} at `{run['published']['head'][:12]}`"
        + ("" if run["published"]["head_clean"] else " (uncommitted changes outside results/)"),
        "",
        "| study | jobs | summed job time | share |",
        "|:--|--:|--:|--:|",
        *(
            f"| {s['study']} | {s['jobs']} | {_minutes(s['job_wall_s'])} | {100 * s['share']:.0f} % |"
            for s in run["studies"]
        ),
        "",
        "Share: of the summed job time (jobs overlap on the cores). From "
        f"`{run['snakemake_log']}` (`python benchmarks/study_times.py` gives the per-rule table). "
        f"Refresh: {refresh}.",
    ]
    return "\n".join(lines) + "\n"


def write_provenance(
    results: Path, root: Path = ROOT, log: Path | None = None, into: Path | None = None
) -> dict:
    """RUN.json and RUN.md of the run in `log`, into results/<profile>/ (or `into`)."""
    run = provenance(results, root, log)
    into = into or results
    into.mkdir(parents=True, exist_ok=True)
    (into / "RUN.json").write_text(json.dumps(run, indent=2) + "\n")
    (into / "RUN.md").write_text(run_md(run, into.parent.name if into != results else None))
    return run


# ---- checks ----


def _tracked(root: Path, *paths: str, others: bool = False) -> list[str]:
    """Files git tracks under `paths` (others=True: also the untracked ones it does not ignore)."""
    args = ["ls-files", "-z", *(["-co", "--exclude-standard"] if others else []), "--", *paths]
    return [p for p in _git(*args, cwd=root).stdout.split("\0") if p]


def missing_targets(targets: list[str], present: set[str]) -> list[str]:
    return [f"missing: {t}" for t in targets if t not in present]


def commit_problems(commit: str | None, root: Path) -> list[str]:
    """Whether RUN.json's commit is HEAD or an ancestor of it."""
    if not commit:
        return ["RUN.json names no commit"]
    if _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=root, check=False).returncode != 0:
        shallow = _git("rev-parse", "--is-shallow-repository", cwd=root).stdout.strip() == "true"
        if shallow:
            return [f"RUN.json's commit {commit} is not in this shallow clone: {SHALLOW_HINT}"]
        return [f"RUN.json's commit {commit} is not in this repository"]
    if not _is_ancestor(commit, "HEAD", root):
        return [f"RUN.json's commit {commit} is not an ancestor of HEAD: publish a run of this branch"]
    return []


def size_problems(files: list[str], root: Path, max_bytes: int = MAX_BYTES) -> list[str]:
    total = sum((root / f).stat().st_size for f in files if (root / f).is_file())
    if total > max_bytes:
        big = sorted(files, key=lambda f: -(root / f).stat().st_size if (root / f).is_file() else 0)[:5]
        mb = f"{total / 2**20:.1f} MB, over {max_bytes / 2**20:.0f} MB"
        return [f"the published files take {mb}; largest: {big}"]
    return []


def weight_problems(files: list[str]) -> list[str]:
    return [f"a weight file is in git: {f}" for f in files if f.endswith(WEIGHT_SUFFIXES)]


def verify(results: str, targets: list[str], root: Path = ROOT, max_bytes: int = MAX_BYTES) -> list[str]:
    """What is wrong with the committed results of results/<profile>/ (empty: nothing): every file the
    default target names and the provenance tracked, RUN.json's commit an ancestor of HEAD, the set under
    `max_bytes`, no weight file anywhere in git, dvc.lock tracked."""
    tracked = _tracked(root, results)
    problems = missing_targets([*targets, *(f"{results}/{f}" for f in PUBLISH_MADE)], set(tracked))
    run_json = root / results / "RUN.json"
    if f"{results}/RUN.json" in tracked and run_json.is_file():
        problems += commit_problems(json.loads(run_json.read_text()).get("commit"), root)
    problems += size_problems(tracked, root, max_bytes)
    problems += weight_problems(_tracked(root))
    if not _tracked(root, "dvc.lock"):
        problems.append("dvc.lock is not tracked: commit the run's dvc.lock with its results")
    return problems


def check(results: str, targets: list[str], root: Path = ROOT, max_bytes: int = MAX_BYTES):
    """Before committing: the files git will commit under results/<profile>/ (tracked or not ignored) are
    what `published()` names, hold every target, fit `max_bytes` and hold no weights. Returns (problems,
    notes, files)."""
    visible = _tracked(root, results, others=True)
    rel = {f: f.removeprefix(f"{results}/") for f in visible}
    problems = [
        f"git sees {f}, which is not published (.gitignore?)" for f, r in rel.items() if not published(r)
    ]
    problems += missing_targets([*targets, *(f"{results}/{f}" for f in PUBLISH_MADE)], set(visible))
    problems += size_problems(visible, root, max_bytes) + weight_problems(visible)
    named = {*targets, *(f"{results}/{f}" for f in PUBLISH_MADE + PUBLISH_MAY_MAKE)}
    optional = _optional_studies()  # published from their own run, with their own RUN.md (docs/publishing.md)
    notes = [
        f"not named by the DAG (stale? remove it): {f}"
        for f, r in rel.items()
        if f not in named and r.split("/")[0] not in optional
    ]
    return problems, notes, visible


def _optional_studies() -> set[str]:
    """The studies outside the default target (`make crossbench`, ...)."""
    from unlearn_repro.studies import STUDIES

    return {n for n in STUDIES.names() if not STUDIES.get(n).default}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("targets", "provenance", "check", "verify"))
    ap.add_argument("where", help="a profile (targets) or results/<profile>")
    ap.add_argument(
        "--log", type=Path, help="provenance: the run's Snakemake log (default: the newest finished)"
    )
    ap.add_argument(
        "--into",
        type=Path,
        help="provenance: write RUN.json / RUN.md here (a study outside the default target, published from "
        "its own run: results/<profile>/<study>/summary)",
    )
    a = ap.parse_args(argv)
    if a.action == "targets":
        print(json.dumps(_targets_here(a.where)))
        return 0
    results = Path(a.where)
    if a.action == "provenance":
        run = write_provenance(ROOT / results, ROOT, a.log and a.log.resolve(), a.into and ROOT / a.into)
        print(
            f"{a.into or results}/RUN.json, RUN.md: commit {run['commit'][:12]} (clean: {run['clean']}), "
            f"{_minutes(run['wall_time_s'])} wall, {run['jobs']} jobs, log {run['snakemake_log']}"
        )
        return 0
    rel = results.as_posix().rstrip("/")
    targets = default_targets(results.name)
    if a.action == "verify":
        problems = verify(rel, targets)
        print("\n".join(problems) or f"{rel}: the committed results are complete")
        return 1 if problems else 0
    problems, notes, files = check(rel, targets)
    total = sum((ROOT / f).stat().st_size for f in files if (ROOT / f).is_file())
    for note in notes:
        print(note)
    print(f"published: {len(files)} files under {rel}/, {total / 2**20:.1f} MB")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"commit them: git add -A {rel} dvc.lock && git commit -m 'Publish the {results.name} run'")
    return 0


if __name__ == "__main__":
    sys.exit(main())

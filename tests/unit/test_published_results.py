"""The published results (docs/publishing.md): results/embedded/ in git holds every file the default target
names, the report and the provenance of one run whose commit is an ancestor of HEAD, in a few MB, and no
weights. Consistent, not fresh: nothing here reruns anything. The checks themselves are tried on a
throwaway repository; .gitignore, publish.published() and dvc.yaml's cache flags are checked to agree.

`test_the_committed_embedded_results_are_complete` fails until a run is published (`make reproduce && make
publish`, then commit results/embedded and dvc.lock)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro import publish

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
PROFILE = "embedded"


@pytest.fixture(scope="module")
def targets() -> list[str]:
    """The files the default target names at the embedded profile (the Snakefile read once)."""
    return publish.default_targets(PROFILE)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def _ignored(paths: list[str]) -> set[str]:
    """Of `paths`, those that the project's .gitignore ignores (whether or not they exist)."""
    r = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z"],
        cwd=ROOT,
        input="\0".join(paths),
        capture_output=True,
        text=True,
    )
    assert r.returncode in (0, 1), r.stderr
    return {p for p in r.stdout.split("\0") if p}


def test_the_default_target_is_published(targets):
    prefix = f"results/{PROFILE}/"
    assert len(targets) > 50 and all(t.startswith(prefix) for t in targets), targets[:5]
    assert [t for t in targets if not publish.published(t.removeprefix(prefix))] == []
    assert {f"{prefix}verdicts.md", f"{prefix}README.md", f"{prefix}main/summary/retrain.json"} <= set(
        targets
    )


def test_gitignore_lets_through_exactly_what_publish_publishes(targets):
    prefix = f"results/{PROFILE}/"
    paths = [*targets, *(prefix + f for f in publish.PUBLISHED_FILES)]
    paths += [
        prefix + rel
        for rel in (
            "models/tiny-opt/pretrained/model.safetensors",
            "models/tiny-opt/pretrained/meta.json",
            "runs/npo/seed0/run.json",
            "metrics/npo.csv",
            "splits/arc_easy/forget.jsonl",
            "tdec/models/base/adapter.pt",
            "discussions/checkpoints/a/model.safetensors",
            "memorization/runs/x/run.json",
            "tokenizer/tokenizer.json",
            "report.zip",
            "stray.csv",
            "main/stray.csv",
            "main/tables/new_table.csv",
            "curvature/premise_new.md",
        )
    ]
    paths += [p.replace(prefix, "results/paper/") for p in paths]
    expected = {p for p in paths if not publish.published(p.split("/", 2)[2])}
    assert _ignored(paths) == expected


def _outs(stage: dict):
    body = stage.get("do", stage)
    for key in ("outs", "metrics"):
        for entry in body.get(key, []):
            (path, flags), *_ = entry.items() if isinstance(entry, dict) else ((entry, {}),)
            yield path, (flags or {}).get("cache", True)


def test_dvc_caches_exactly_what_git_does_not_hold():
    """A published output is `cache: false` (DVC refuses to cache what git tracks); everything else is cached
    and git-ignored, so that DVC writes no .gitignore of its own."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    seen = []
    for name, stage in stages.items():
        for path, cached in _outs(stage):
            rel = path.removeprefix("results/${profile}/")
            if rel == path:
                continue
            seen.append(rel)
            assert cached != publish.published(rel), (name, path, cached)
            concrete = path.replace("${profile}", PROFILE).replace("${item}", "npo")
            inside = (
                concrete if Path(concrete).suffix else f"{concrete}/file.bin"
            )  # a file, or one in a folder
            assert bool(_ignored([inside])) == cached, (name, inside)
            if cached:  # as DVC asks git (the path itself): else it appends the path to a .gitignore
                assert _ignored([concrete]) == {concrete}, (name, concrete)
    assert "main/tables" in seen and "models" in seen


# ---- the checks, on a throwaway repository ----

FAKE_TARGETS = [
    "results/embedded/main/tables/t.csv",
    "results/embedded/main/figures/f.png",
    "results/embedded/main/summary/metrics.json",
    "results/embedded/curvature/premise_main.md",
    "results/embedded/verdicts.md",
]


@pytest.fixture
def published_repo(tmp_path) -> tuple[Path, str]:
    """A repository with the project's .gitignore: a code commit, then the results of a run at it
    (RUN.json naming it), a checkpoint beside them (ignored) and dvc.lock. Returns (repo, code commit)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    _git(repo, "init", "-q")
    _git(repo, "add", ".gitignore")
    _git(repo, "commit", "-qm", "code")
    code = _git(repo, "rev-parse", "HEAD")
    for rel in FAKE_TARGETS + [f"results/embedded/{f}" for f in ("report.html", "RUN.md")]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x\n")
    (repo / "results/embedded/RUN.json").write_text(json.dumps({"commit": code}))
    weights = repo / "results/embedded/models/m/model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"\0" * 4096)
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "publish")
    return repo, code


def _verify(repo: Path, **kw) -> list[str]:
    return publish.verify("results/embedded", FAKE_TARGETS, root=repo, **kw)


def test_a_complete_publication_passes(published_repo):
    repo, _ = published_repo
    assert _verify(repo) == []
    assert "results/embedded/models/m/model.safetensors" not in _git(repo, "ls-files")
    problems, notes, files = publish.check("results/embedded", FAKE_TARGETS, root=repo)
    assert problems == [] and notes == [] and len(files) == len(FAKE_TARGETS) + 3


def test_a_missing_file_fails(published_repo):
    repo, _ = published_repo
    _git(repo, "rm", "-q", "results/embedded/main/figures/f.png", "results/embedded/RUN.md")
    assert _verify(repo) == [
        "missing: results/embedded/main/figures/f.png",
        "missing: results/embedded/RUN.md",
    ]


def test_the_run_commit_must_be_an_ancestor_of_head(published_repo):
    repo, code = published_repo
    run_json = repo / "results/embedded/RUN.json"
    _git(repo, "checkout", "-qb", "other", code)
    (repo / "elsewhere").write_text("x")
    _git(repo, "add", "elsewhere")
    _git(repo, "commit", "-qm", "elsewhere")
    other = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    run_json.write_text(json.dumps({"commit": other}))
    assert _verify(repo) == [
        f"RUN.json's commit {other} is not an ancestor of HEAD: publish a run of this branch"
    ]
    run_json.write_text(json.dumps({"commit": "0" * 40}))
    assert _verify(repo) == [f"RUN.json's commit {'0' * 40} is not in this repository"]
    run_json.write_text(json.dumps({}))
    assert _verify(repo) == ["RUN.json names no commit"]


def test_a_shallow_clone_says_so(published_repo, tmp_path):
    repo, code = published_repo
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    (problem,) = _verify(shallow)
    assert "shallow clone" in problem and code in problem and "fetch-depth: 0" in problem


def test_size_weights_and_dvc_lock(published_repo):
    repo, _ = published_repo
    (problem,) = _verify(repo, max_bytes=8)
    assert problem.startswith("the published files take") and "over" in problem
    _git(repo, "add", "-f", "results/embedded/models/m/model.safetensors")
    _git(repo, "rm", "-q", "--cached", "dvc.lock")
    assert _verify(repo) == [
        "a weight file is in git: results/embedded/models/m/model.safetensors",
        "dvc.lock is not tracked: commit the run's dvc.lock with its results",
    ]


def test_check_before_committing_names_strays_and_gaps(published_repo):
    """`make publish`'s check reads what git will commit: tracked or not ignored."""
    repo, _ = published_repo
    (repo / "results/embedded/main/tables/old.csv").write_text("x\n")  # a table the DAG no longer makes
    (repo / "results/embedded/crossbench/tables").mkdir(parents=True)  # published from its own run: no stray
    (repo / "results/embedded/crossbench/tables/ranks.csv").write_text("x\n")
    (repo / "results/embedded/verdicts.md").unlink()
    _git(repo, "rm", "-q", "--cached", "results/embedded/verdicts.md")
    problems, notes, _ = publish.check("results/embedded", FAKE_TARGETS, root=repo)
    assert problems == ["missing: results/embedded/verdicts.md"]
    assert notes == ["not named by the DAG (stale? remove it): results/embedded/main/tables/old.csv"]


# ---- provenance ----

LOG = """\
Assuming unrestricted shared filesystem usage.

SNAKEMAKE
=========
  Date: 2026-12-05 10:00:00
  Platform: Linux-6-x86_64
  Snakemake version: 9.27.1
  Command: /x/.venv/bin/snakemake --cores 2 --profile profiles/default

Building DAG of jobs...
Provided cores: 2
[Sat Dec  5 10:00:00 2026]
rule base_model:
    output: results/embedded/models/m
    jobid: 1
[Sat Dec  5 10:10:00 2026]
Finished jobid: 1 (Rule: base_model)
1 of 2 steps (50%) done
[Sat Dec  5 10:10:00 2026]
rule tofu_report:
    input: results/embedded/models/m
    output: results/embedded/tofu/tables/t.csv
    jobid: 2
[Sat Dec  5 10:12:30 2026]
Finished jobid: 2 (Rule: tofu_report)
2 of 2 steps (100%) done
Elapsed time: 0:12:31.5
"""


def test_provenance_from_the_run_log_and_its_artifacts(published_repo):
    repo, code = published_repo
    (repo / "rules").mkdir()
    (repo / "rules/base_models.smk").write_text("rule base_model:\n")
    (repo / "rules/tofu.smk").write_text("rule tofu_report:\n")
    logs = repo / ".snakemake/log"
    logs.mkdir(parents=True)
    (logs / "2026-12-05T100000.snakemake.log").write_text(LOG)
    (logs / "2026-12-05T110000.snakemake.log").write_text(
        "Congratulations, your workflow is in a good condition!\n"
    )
    results = repo / "results/embedded"
    (results / "models/m/meta.json").write_text(json.dumps({"git_commit": code}))
    # a published file is git's copy, possibly of an older run: it does not count
    (results / "main/summary/provenance.json").write_text(json.dumps({"git_commit": "f" * 40}))

    run = publish.write_provenance(results, root=repo)
    assert run["commit"] == code and run["clean"] and run["artifact_commits"] == {code: 1}
    assert run["command"] == "make reproduce" and run["cores"] == 2 and run["jobs"] == 2
    assert run["wall_time_s"] == 751.5 and run["snakemake_log"].endswith("T100000.snakemake.log")
    assert [(s["study"], s["jobs"], s["share"]) for s in run["studies"]] == [
        ("main", 1, 0.8),
        ("tofu", 1, 0.2),
    ]
    assert run["machine"]["cpu_count"] and run["published"]["head"] == _git(repo, "rev-parse", "HEAD")
    assert json.loads((results / "RUN.json").read_text()) == run
    md = (results / "RUN.md").read_text()
    assert f"`{code}`" in md and "| main | 1 | 10.0 min | 80 % |" in md and "12.5 min" in md

    # a study outside the default target, published from its own run: its RUN.md beside its summary
    into = results / "crossbench/summary"
    publish.write_provenance(results, root=repo, into=into)
    md = (into / "RUN.md").read_text()
    assert md.startswith("# The published `embedded` run of `crossbench`") and "`make crossbench`" in md
    assert json.loads((into / "RUN.json").read_text())["commit"] == code

    (results / "models/m/meta.json").write_text(json.dumps({"git_commit": code + "+dirty"}))
    run = publish.provenance(results, root=repo)
    assert run["commit"] == code and not run["clean"]


# ---- the real thing ----


def test_the_committed_embedded_results_are_complete(targets):
    """Fails until `make reproduce && make publish` and a commit of results/embedded and dvc.lock."""
    problems = publish.verify(f"results/{PROFILE}", targets)
    assert not problems, "results/embedded is not a complete publication:\n" + "\n".join(problems[:20])

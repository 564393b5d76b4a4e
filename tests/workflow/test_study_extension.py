"""A study is its declaration, rule file, pipeline and report modules, params block (and its captions): a
throw-away study added in a temp workspace is planned by the default target, validated by the schema it
declares, run by Snakemake through its own CLI commands and report, and gets its DVC stage, with no other
file of the pipeline edited."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import BIN, ENV, ROOT, pipeline_workspace

STUDY_FILES = {
    "src/unlearn_repro/studies/toy.py": '''"""A throw-away study: one number per seed, and their table."""
from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(Study("toy", "a throw-away study", schema=block_schema("""
    type: object
    additionalProperties: false
    required: [scale]
    properties:
      scale: {$ref: "#/$defs/pos_num"}
"""), dvc=DvcStage(deps=("rules/toy.smk", "src/unlearn_repro/pipeline/toy.py",
                         "src/unlearn_repro/report/toy.py"),
                   params=("toy", "seeds", "profile", "profiles"), outs=("toy/runs", "toy/tables"),
                   metrics=("toy/summary",))))


@command("toy-run", "the toy study: one seed's number", "seed", "out", tracked=False)
def _toy_run(a, cfg, tracker):
    from unlearn_repro.pipeline.toy import run
    run(cfg, int(a.seed), a.out)


@command("toy-report", "the toy study's table", "out", tracked=False, options=[opt("runs", nargs="+")])
def _toy_report(a, cfg, tracker):
    from unlearn_repro.report.toy import build_report
    build_report(cfg, a.runs, a.out)
''',
    "src/unlearn_repro/pipeline/toy.py": '''"""The toy study's one step."""
import json
from pathlib import Path


def run(cfg, seed, out):
    Path(out).write_text(json.dumps({"seed": seed, "value": cfg.toy.scale * (seed + 1)}))
''',
    "src/unlearn_repro/report/toy.py": '''"""The toy study's table and summary."""
import json
from pathlib import Path


def outputs(root):
    return {"tables": [f"{root}/tables/toy.csv"], "summary": [f"{root}/summary/metrics.json"]}


def build_report(cfg, runs, root):
    rows = sorted((json.loads(Path(r).read_text()) for r in runs), key=lambda row: row["seed"])
    (table,), (summary,) = outputs(root).values()
    for path in (table, summary):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(table).write_text("seed,value\\n" + "".join(f"{r['seed']},{r['value']}\\n" for r in rows))
    Path(summary).write_text(json.dumps({"total": sum(r["value"] for r in rows)}))
''',
    "rules/toy.smk": """# A throw-away study. Target: `snakemake --cores all toy`.
from unlearn_repro.report import toy as toy_report

TOY_OUTPUTS = toy_report.outputs(R("toy"))


rule toy_run:
    input:
        CORE_SRC + src("pipeline/toy.py"),
    output:
        R("toy/runs/seed{seed}.json"),
    params:
        cli=CLI,
        toy=CFG.toy.to_dict(),
    log:
        L("toy/run_seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} toy-run --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule toy_report:
    input:
        CORE_SRC + src("report/toy.py"),
        runs=expand(R("toy/runs/seed{seed}.json"), seed=SEEDS),
    output:
        tables=[report(p, caption="../report_captions/toy/table.rst", category="Toy")
                for p in TOY_OUTPUTS["tables"]],
        summary=TOY_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: R("toy"),
    log:
        L("toy/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} toy-report --out {params.root} {input.runs} > {log} 2>&1"


rule toy:
    input:
        rules.toy_report.output,
""",
    "report_captions/toy/table.rst": "One number per seed: ``toy.scale`` times (seed + 1).\n",
}
# what runs write (outputs, caches, DVC's and git's records): not pipeline files
OUTPUT_ROOTS = (
    ".snakemake",
    "results",
    "logs",
    "data",
    ".git",
    ".dvc",
    ".dvcignore",
    "dvc.lock",
    "mlruns",
    "mlflow.db",
)


def _run(ws: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(ws / "src")}
    env.pop("UNLEARN_CONFIG", None)
    return subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)


def _hashes(ws: Path) -> dict:
    """Every pipeline file of the workspace (not outputs or caches) -> its content hash."""
    return {
        str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ws.rglob("*")
        if p.is_file()
        and p.relative_to(ws).parts[0] not in OUTPUT_ROOTS
        and "__pycache__" not in p.parts
        and not p.name.endswith(".dvc")
    }


def _set_scale(ws: Path, value) -> None:
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["toy"] = {"scale": value}
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_throwaway_study_flows_through_the_dag_its_report_and_dvc(tmp_path, mirror):
    ws = pipeline_workspace(tmp_path, mirror, copy_src=True)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, ws / name)
    before = _hashes(ws)
    for rel, text in STUDY_FILES.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    _set_scale(ws, 2.0)
    snake = [str(BIN / "snakemake"), "--cores", "1"]

    # the default target plans its jobs beside every other study's
    dry = _run(ws, *snake, "-n", "--printshellcmds")
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    assert "toy-run --seed 0 --out results/ci/toy/runs/seed0.json" in out and "rule toy_report" in out
    assert "tdec-report" in out and "main-report" in out
    # its block is validated by the schema it declares, with the file named
    _set_scale(ws, -1)
    bad = _run(ws, *snake, "-n")
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "params.yaml: key 'toy.scale' = -1 is invalid" in said, said[-2000:]
    _set_scale(ws, 2.0)
    # its commands are the CLI's
    helped = _run(ws, sys.executable, "-m", "unlearn_repro", "--help")
    assert "toy-run" in helped.stdout and "toy-report" in helped.stdout, helped.stderr[-2000:]

    # Snakemake runs it: its step, then its report
    ran = _run(ws, *snake, "toy")
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-3000:]
    assert (ws / "results/ci/toy/tables/toy.csv").read_text() == "seed,value\n0,2.0\n"
    assert json.loads((ws / "results/ci/toy/summary/metrics.json").read_text()) == {"total": 2.0}

    # DVC: its stage is generated from the declaration, records the run and reruns it on a change of its block
    gen = _run(ws, sys.executable, "-m", "unlearn_repro.dvc_yaml")
    assert gen.returncode == 0, gen.stderr
    stage = yaml.safe_load((ws / "dvc.yaml").read_text())["stages"]["toy"]
    assert stage["cmd"].endswith(" toy") and "toy" in stage["params"]
    dvc, git = str(BIN / "dvc"), ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    assert _run(ws, *git, "init", "-q").returncode == 0 and _run(ws, dvc, "init", "-q").returncode == 0
    committed = _run(ws, dvc, "commit", "--force", "-q", "toy")
    assert committed.returncode == 0, committed.stderr[-2000:]
    assert _run(ws, *git, "check-ignore", "-q", "results/ci/toy/summary/metrics.json").returncode == 1
    assert "up to date" in _run(ws, dvc, "status", "toy").stdout
    _set_scale(ws, 3.0)
    status = json.loads(_run(ws, dvc, "status", "--json", "toy").stdout)
    assert status == {"toy": [{"changed deps": {"params.yaml": {"toy": "modified"}}}]}, status

    # nothing but the study's own files, its params block and the generated dvc.yaml changed
    after = _hashes(ws)
    changed = {f for f in set(before) | set(after) if before.get(f) != after.get(f)}
    assert changed == set(STUDY_FILES) | {"params.yaml", "dvc.yaml"}, sorted(changed)

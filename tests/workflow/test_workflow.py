"""The workflow definitions themselves: Snakemake's dry run and linter, and DVC's change detection."""

import json
import shutil
import subprocess

import yaml

from tests.conftest import BIN, ENV, ROOT


def _run(*cmd, cwd=ROOT):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_snakemake_dry_run_plans_the_whole_paper():
    r = _run(str(BIN / "snakemake"), "-n", "--forceall", "--quiet", "rules")
    assert r.returncode == 0, r.stderr[-3000:]
    for rule in (
        "prepare_data",
        "tokenizer",
        "base_model",
        "finetune",
        "splits",
        "unlearn",
        "evaluate_base",
        "evaluate",
        "collect",
        "main_report",
    ):
        assert rule in r.stdout + r.stderr


def test_snakemake_lint_is_clean():
    r = _run(str(BIN / "snakemake"), "--lint")
    assert r.returncode == 0 and "Congratulations" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]


def test_bad_params_stop_the_snakefile_with_a_clear_message(tmp_path):
    for name in ("Snakefile", "rules", "schemas", "environment.yml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["unlearn"]["cycle_sise"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = _run(str(BIN / "snakemake"), "-n", cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "unknown key 'cycle_sise'" in out and "valid keys: cycle_size" in out


def test_dvc_reruns_only_the_stage_whose_params_changed(tmp_path):
    """After a recorded run, changing one method's hyperparameter marks only that method's stage."""
    for name in (
        "dvc.yaml",
        "params.yaml",
        "Snakefile",
        "rules",
        "src",
        "profiles",
        "schemas",
        "environment.yml",
    ):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name,
            tmp_path / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}),
        )
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    enabled, profile = params["methods"]["enabled"], params["profile"]
    for st in stages.values():  # stand-in outputs, as a finished run leaves them
        body, items = (st["do"], enabled) if "foreach" in st else (st, [None])
        outs = [
            next(iter(o)) if isinstance(o, dict) else o
            for o in body.get("outs", []) + body.get("metrics", [])
        ]
        for out in [o.replace("${item}", str(i)).replace("${profile}", profile) for o in outs for i in items]:
            path = tmp_path / out
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "x").write_text("x")
    dvc = str(BIN / "dvc")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    assert _run(*git, "init", "-q", cwd=tmp_path).returncode == 0
    assert _run(dvc, "init", "-q", cwd=tmp_path).returncode == 0
    r = _run(dvc, "commit", "--force", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _run(*git, "add", "-A", cwd=tmp_path)
    assert _run(*git, "commit", "-qm", "recorded run", cwd=tmp_path).returncode == 0
    assert "up to date" in _run(dvc, "status", cwd=tmp_path).stdout
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["methods"]["gradient_ascent"]["lr"] = 1.0e-4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(_run(dvc, "status", "--json", cwd=tmp_path).stdout)
    assert set(status) == {
        "unlearn@gradient_ascent",
        "memorization",
        "privacy",
        "tofu",
        "crossbench_small",
    }  # studies that run the method too
    diff = _run(dvc, "params", "diff", "--json", cwd=tmp_path)
    assert "methods.gradient_ascent.lr" in diff.stdout


def test_dvc_unlearn_stages_list_every_section_a_method_declares():
    from unlearn_repro.methods import METHODS

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["unlearn"]
    assert stage["foreach"] == "${methods.enabled}"
    listed = set(stage["do"]["params"])
    for name in METHODS.names():
        missing = set(METHODS.get(name).params_sections()) - listed - {f"methods.{name}"}
        assert not missing, f"dvc.yaml stage `unlearn` lacks params {missing} that method {name!r} declares"


def test_the_new_methods_plan_jobs_when_enabled():
    r = _run(str(BIN / "snakemake"), "-n", "--forceall", "--printshellcmds", "--config", "profile=ci")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    for method in ("gradient_difference", "inverted_hinge", "npo", "preference"):
        assert f"unlearn --method {method} " in out

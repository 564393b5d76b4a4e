"""DVC for offline users: `dvc plots show` draws only images (no vega scripts from a CDN), and the main
study's metrics are readable (`dvc metrics show`) and comparable with the last commit (`dvc metrics diff`).
Stand-in outputs, no pipeline run."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import BIN, ENV, ROOT

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)


def _run(*cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


STUDIES_WITH_OUTPUTS = ("discussions", "tofu", "tdec", "privacy")  # report modules with outputs(root)


def _main_outputs(profile=None):
    """The named outputs of every study with DVC plots and metrics (main, the STUDIES_WITH_OUTPUTS, ...)."""
    from importlib import import_module

    from unlearn_repro.config import load

    cfg = load(ROOT / "params.yaml", profile)
    outs = [import_module("unlearn_repro.report.main").outputs(cfg, f"results/{cfg.profile}/main")]
    outs += [
        import_module(f"unlearn_repro.report.{study}").outputs(f"results/{cfg.profile}/{study}")
        for study in STUDIES_WITH_OUTPUTS
    ]
    outs += [
        import_module(f"unlearn_repro.report.{study}").outputs(cfg, f"results/{cfg.profile}/{study}")
        for study in ("memorization", "ablations")  # report modules with outputs(cfg, root)
    ]
    from unlearn_repro.studies.crossbench_small import small_config

    outs.append(
        import_module("unlearn_repro.report.crossbench").outputs(
            small_config(cfg), f"results/{cfg.profile}/crossbench_small"
        )
    )
    return {k: sum((o[k] for o in outs), []) for k in outs[0]}


def _workspace(tmp_path) -> Path:
    """A git + DVC repository with the project's dvc.yaml, params.yaml and .gitignore."""
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert _run(*GIT, "init", "-q", cwd=tmp_path).returncode == 0
    r = _run(str(BIN / "dvc"), "init", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def _write(ws: Path, rel: str, data) -> None:
    path = ws / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)


def test_every_profile_draws_its_figures_as_images():
    """What `plots:` points at (the main study's figures folder) must hold images only."""
    from dvc_render.image import ImageRenderer

    for profile in yaml.safe_load((ROOT / "params.yaml").read_text())["profiles"]:
        figures = _main_outputs(profile)["figures"]
        assert figures and all(Path(f).suffix in ImageRenderer.EXTENSIONS for f in figures), (
            profile,
            figures,
        )


def test_dvc_plots_render_offline(tmp_path):
    ws = _workspace(tmp_path)
    outputs = _main_outputs()
    for f in outputs["figures"]:
        _write(ws, f, PNG)
    for f in outputs["tables"]:  # the tables sit beside the figures; none of them may become a vega plot
        _write(ws, f, "method,runtime_mean\nnpo,1.0\n")
    dvc = str(BIN / "dvc")
    r = _run(dvc, "plots", "show", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)["data"]
    assert set(data) == set(outputs["figures"])
    assert {d["type"] for entries in data.values() for d in entries} == {"image"}

    r = _run(dvc, "plots", "show", "-o", "page", cwd=ws)
    assert r.returncode == 0, r.stderr
    html = (ws / "page" / "index.html").read_text()
    assert not CDN_SCRIPT.search(html), "dvc plots show loads scripts from the network"
    images = re.findall(r"<img src=\"([^\"]+)\"", html)
    assert len(images) == len(outputs["figures"])
    assert all((ws / "page" / src).read_bytes() == PNG for src in images)  # local copies, relative links

    # the check above catches a data (vega) plot: DVC's page then loads vega from a CDN
    spec = yaml.safe_load((ws / "dvc.yaml").read_text())
    spec["plots"].append({outputs["tables"][0]: {"x": "method", "y": "runtime_mean"}})
    (ws / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _run(dvc, "plots", "show", "-o", "page2", cwd=ws).returncode == 0
    assert CDN_SCRIPT.search((ws / "page2" / "index.html").read_text())


def test_dvc_metrics_show_and_diff_against_the_last_commit(tmp_path):
    """The summary the report writes is a DVC metric that git tracks (results/ is otherwise ignored), so
    `dvc metrics diff` after a change compares with the committed run."""
    ws = _workspace(tmp_path)
    summaries = _main_outputs()["summary"]
    assert summaries
    for f in summaries:
        _write(ws, f, json.dumps({"npo": {"cycle1": {"delta_exp": -0.5}, "runtime_s": 2.0}}))
        assert _run("git", "check-ignore", "-q", f, cwd=ws).returncode == 1, f"{f} is git-ignored"
    _write(ws, "results/x/models/w.bin", b"weights")  # the rest of results/ stays ignored
    assert _run("git", "check-ignore", "-q", "results/x/models/w.bin", cwd=ws).returncode == 0
    dvc = str(BIN / "dvc")
    r = _run(dvc, "metrics", "show", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr
    (shown,) = [
        rev["data"] for rev in json.loads(r.stdout).values()
    ]  # the workspace (keyed "" before a commit)
    assert set(shown) == set(summaries)
    assert all(v["data"]["npo"]["cycle1"]["delta_exp"] == -0.5 for v in shown.values())
    table = _run(dvc, "metrics", "show", "--md", cwd=ws).stdout
    assert "npo.cycle1.delta_exp" in table and "-0.5" in table

    _run(*GIT, "add", "-A", cwd=ws)
    assert _run(*GIT, "commit", "-qm", "recorded run", cwd=ws).returncode == 0
    _write(ws, summaries[0], json.dumps({"npo": {"cycle1": {"delta_exp": -0.75}, "runtime_s": 2.0}}))
    r = _run(dvc, "metrics", "diff", "--json", cwd=ws)
    assert r.returncode == 0, r.stderr
    diff = json.loads(r.stdout)[summaries[0]]
    assert diff == {"npo.cycle1.delta_exp": {"old": -0.5, "new": -0.75, "diff": -0.25}}


def test_the_study_stages_and_plots_are_generated_from_the_declarations():
    """dvc.yaml below its MARK is what `make dvc-yaml` writes from src/unlearn_repro/studies/."""
    from unlearn_repro import dvc_yaml

    text = (ROOT / "dvc.yaml").read_text()
    assert dvc_yaml.updated(text) == text, (
        "dvc.yaml is out of step with the studies' declarations: `make dvc-yaml`"
    )

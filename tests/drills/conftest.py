"""Fault drills: each replays one failure a user or a reliability engineer met, on the `ci` profile in a
temp workspace, running only the few jobs the drill needs (never the whole DAG)."""

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import BIN, ENV, pipeline_workspace

ARC = "data/processed/ci/arc_easy"


def snakemake(ws: Path, *args: str) -> subprocess.CompletedProcess:
    """One `snakemake --cores 1` in `ws` with the workspace's own src/ (and the workflow profile,
    profiles/default, which Snakemake loads by itself: the settings a user runs with)."""
    env = {**ENV, "PYTHONPATH": str(ws / "src")}
    env.pop("UNLEARN_CONFIG", None)
    return subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", *args],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def mirror_copy(dest: Path, mirror: Path, copied: tuple[str, ...] = ("arc_easy",)) -> Path:
    """A mirror whose `copied` data sets are real copies (a drill edits them) and the others links."""
    dest.mkdir(parents=True)
    for folder in mirror.iterdir():
        if folder.name in copied:
            shutil.copytree(folder, dest / folder.name)
        else:
            (dest / folder.name).symlink_to(folder)
    return dest


def workspace(tmp: Path, mirror: Path) -> Path:
    (tmp / "ws").mkdir()
    return pipeline_workspace(tmp / "ws", mirror, copy_src=True)  # src/ as it is now: others may edit it


def edit_params(ws: Path, edit) -> None:
    """params.yaml after edit(params) (in place)."""
    params = yaml.safe_load((ws / "params.yaml").read_text())
    edit(params)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def out(r: subprocess.CompletedProcess) -> str:
    return (r.stdout + r.stderr)[-4000:]

"""dvc.yaml's study stages and plots, generated from the study declarations (src/unlearn_repro/studies/):
`make dvc-yaml` (`python -m unlearn_repro.dvc_yaml`) rewrites everything below MARK, and
tests/workflow/test_dvc.py fails while dvc.yaml is out of step. The shared stages above MARK are hand-written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from unlearn_repro.paths import ROOT
from unlearn_repro.publish import published
from unlearn_repro.studies import STUDIES, DvcStage, Study
from unlearn_repro.studies.base import DVC_CMD

MARK = "  # --- every study's stage: generated from src/unlearn_repro/studies/*.py by `make dvc-yaml` ---\n"
WIDTH = 110
RESULTS = "results/${profile}/"
HEADER = """\
  # Each stage asks Snakemake for the study's target. Its metrics (every JSON file in summary/: one row
  # each in `dvc metrics show`) and its published outputs (tables, figures: docs/publishing.md) are not
  # cached: git tracks them (.gitignore lets them through), so `dvc metrics diff` and `dvc plots diff`
  # compare with the last commit in any clone, results or not. The rest (models, runs) is DVC's cache's.
"""
PLOTS_HEADER = """\
# Images only: `dvc plots show` embeds a PNG as <img>, while a CSV/JSON plot is drawn by vega scripts
# that dvc_plots/index.html loads from a CDN (a blank page offline). The figures directory holds the
# matplotlib PNGs of the tables (runtime.png: Figure 2; extended_cycles_<model>.png: Figure 5);
# tests/workflow/test_dvc.py checks that every plot stays an image.
plots:
"""


def _scalar(item: str) -> str:
    """A YAML scalar for a flow list: quoted where `{` or `}` would end the list."""
    return json.dumps(item) if any(c in item for c in "{}[],:#") else item


def _flow(key: str, items, indent: str = "    ") -> str:
    """`key: [a, b, ...]` wrapped at WIDTH, continuation lines aligned under the first item."""
    lead = f"{indent}{key}: ["
    lines, line = [], lead
    for i, item in enumerate(items):
        word = _scalar(item) + ("]" if i == len(items) - 1 else ",")
        if line != lead and len(line) + 1 + len(word) > WIDTH:
            lines.append(line)
            line = " " * len(lead) + word
        else:
            line += ("" if line == lead else " ") + word
    return "\n".join(lines + [line]) + "\n"


def _paths(key: str, paths, flags: str) -> str:
    if not paths:
        return ""
    return f"    {key}:\n" + "".join(f"      - {RESULTS}{p}: {{{_flags(p, flags)}}}\n" for p in paths)


def _flags(path: str, flags: str) -> str:
    """A published output (publish.published: git holds it) is not cached: DVC refuses to cache what git
    tracks (`dvc commit` fails on it)."""
    return flags if "cache:" in flags or not published(path) else f"cache: false, {flags}"


def stage(study: Study) -> str:
    """One study's stage, in the hand-written stages' style."""
    dvc: DvcStage = study.dvc
    head = f"  {study.name}:  # {study.title}\n"
    return (
        head
        + f"    cmd: {DVC_CMD.format(target=study.target)}\n"
        + _flow("deps", dvc.deps)
        + _flow("params", dvc.params)
        + _paths("outs", dvc.outs, "persist: true")
        + _paths("metrics", dvc.metrics, "cache: false, persist: true")
    )


def generated(studies=None) -> str:
    """Everything below MARK: the study stages, then `plots:` (every study's image folders). The DVC pipeline
    is the default target: a study run only on request (`default=False`) has no stage, or `dvc commit` after
    `make reproduce` would fail on its missing outputs."""
    if studies is None:
        studies = [s for s in map(STUDIES.get, STUDIES.names()) if s.default]
    plots = "".join(f"  - {RESULTS}{p}\n" for s in studies for p in s.dvc.plots)
    return MARK + HEADER + "".join(stage(s) for s in studies) + PLOTS_HEADER + plots


def updated(text: str, path: str = "dvc.yaml") -> str:
    """`text` (a dvc.yaml) with its generated part rewritten; the hand-written part must end with MARK."""
    if MARK not in text:
        raise ValueError(
            f"{path}: no line {MARK.strip()!r} after the hand-written stages; add it at the end "
            "of `stages:`, where the generated study stages begin"
        )
    return text[: text.index(MARK)] + generated()


def main(argv: list[str]) -> int:
    """`python -m unlearn_repro.dvc_yaml [--check] [PATH]`: rewrite dvc.yaml, or (--check) fail if stale."""
    check = "--check" in argv
    path = Path(next((a for a in argv if a != "--check"), ROOT / "dvc.yaml"))
    text = path.read_text()
    new = updated(text, str(path))
    if check:
        if new != text:
            print(f"{path} is out of step with the study declarations: run `make dvc-yaml`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        path.write_text(new)
        print(f"{path}: study stages regenerated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

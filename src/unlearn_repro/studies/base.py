"""What a study declares: its name (which names its rule file, results folder, target rule and DVC stage),
its params block's schema and its DVC stage. Its CLI commands are declared beside it with `@command`.

The declaration imports nothing heavy (the handlers import the study's pipeline and report modules when they
run), so `--help`, a config error and the Snakefile's set-up never wait for torch."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from unlearn_repro.registry import Registry

RULES_DIR = "rules"
DVC_CMD = "snakemake --cores all --profile profiles/default {target}"


@dataclass(frozen=True)
class DvcStage:
    """The study's coarse DVC stage (dvc.yaml is generated from it: `make dvc-yaml`). Paths in `outs`,
    `metrics` and `plots` are relative to results/${profile}/; `deps` and `params` are as DVC writes them."""

    deps: tuple = ()
    params: tuple = ()
    outs: tuple = ()
    metrics: tuple = ()  # JSON folders git tracks (not cached): `dvc metrics show / diff`
    plots: tuple = ()  # folders of images only (`dvc plots show` draws them offline)


@dataclass(frozen=True)
class Study:
    """name      rules/<name>.smk, results/<profile>/<name>/, its params block `<name>:` and its DVC stage
    title     one line: what it reproduces (its DVC stage's comment)
    schema    JSON Schema of its params block (merged into schemas/params.schema.yaml), or None: no block
    required  the block must be in params.yaml
    target    the rule that the default target and the DVC stage ask for (default: the study's name);
              the default target collects that rule's outputs, or its inputs when it has none
    dvc       its DVC stage
    datasets  cfg -> the data sets it reads (what `download` fetches and `check-hub` checks), or None
    default   in the default target (`make reproduce`); False: only when asked for (`snakemake <name>`)"""

    name: str
    title: str
    dvc: DvcStage
    schema: dict | None = None
    required: bool = False
    target: str = ""
    datasets: Callable | None = None
    default: bool = True

    def __post_init__(self):
        if not self.target:
            object.__setattr__(self, "target", self.name)

    @property
    def rule_file(self) -> str:
        return f"{RULES_DIR}/{self.name}.smk"


STUDIES: Registry[Study] = Registry("study")


def register(study: Study) -> Study:
    STUDIES.register(study.name)(study)
    return study


def block_schema(text: str) -> dict:
    """A params block's JSON Schema written as YAML (as in schemas/params.schema.yaml, `$defs` included)."""
    return yaml.safe_load(textwrap.dedent(text))

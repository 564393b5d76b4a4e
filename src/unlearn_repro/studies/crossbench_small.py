"""The cross-paper benchmark in the default target, on a smaller grid (issue 25): the entries, tasks,
selection rule and report of `crossbench`, whose rules rules/crossbench_small.smk reuses, with each entry at
the step factors of `crossbench_small.factors` (default: its task's own step only) and the entries of
`crossbench_small.enabled` (null: crossbench's). The full grid, `make crossbench`, does not fit in `make
reproduce`'s 2 hours (docs/crossbench.md). Outputs: results/<profile>/crossbench_small/."""

from unlearn_repro.frozen import overlay
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register
from unlearn_repro.studies.crossbench import CROSSBENCH, datasets


def small_config(cfg):
    """The config its jobs compute with: the crossbench block with this study's factors and entries (handed to
    them as their resolved config by rules/crossbench_small.smk)."""
    from unlearn_repro.config import ConfigError  # config imports the studies: not at import time

    block = cfg.crossbench_small
    unknown = [n for n in block.enabled or () if n not in cfg.crossbench.entries]
    if unknown:
        raise ConfigError(
            f"params.yaml: crossbench_small.enabled {unknown} are not in crossbench.entries "
            f"({', '.join(cfg.crossbench.entries)})"
        )
    enabled = {"enabled": list(block.enabled)} if block.enabled else {}
    return overlay(cfg, {"crossbench": {"factors": list(block.factors), **enabled}})


def _own(paths: tuple) -> tuple:
    """crossbench's result folders, this study's: crossbench/x -> crossbench_small/x."""
    return tuple(p.replace("crossbench/", "crossbench_small/", 1) for p in paths)


register(
    Study(
        "crossbench_small",
        "cross-paper benchmark on a smaller grid (issue 25), in the default target",
        datasets=datasets,
        schema=block_schema("""
    type: object
    additionalProperties: false
    required: [factors, enabled]
    properties:
      factors: {type: array, items: {$ref: "#/$defs/pos_num"}, minItems: 1, uniqueItems: true}
      enabled: {oneOf: [{type: "null"}, {type: array, items: {type: string}, minItems: 1, uniqueItems: true}]}
"""),
        required=True,
        dvc=DvcStage(  # crossbench's stage (it has none: not in the default target), in its own folder
            deps=(*CROSSBENCH.dvc.deps, "rules/crossbench_small.smk"),
            params=("crossbench_small", *CROSSBENCH.dvc.params),
            outs=_own(CROSSBENCH.dvc.outs),
            metrics=_own(CROSSBENCH.dvc.metrics),
            plots=_own(CROSSBENCH.dvc.plots),
        ),
    )
)

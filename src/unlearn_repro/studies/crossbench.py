"""The cross-paper benchmark (issue 25): every method of the three papers (an entry: a method, its optimizer,
its adapter) on every forget task (the main study's task sets, TOFU, TDEC, memorization), each at the same
step grid, selected by one rule, on one leaderboard per task and one rank table across them
(rules/crossbench.smk, pipeline/ and report/crossbench.py, docs/crossbench.md). Not in the default target:
`make crossbench`; the default target runs it on a smaller grid (studies/crossbench_small.py)."""

from unlearn_repro.commands import command, opt, pairs
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register
from unlearn_repro.studies.tdec import datasets as tdec_datasets


def datasets(cfg) -> list[str]:
    """What its tasks read beyond the main study's data: TOFU, TDEC's and the memorization corpora."""
    return ["tofu", *tdec_datasets(cfg), *cfg.crossbench.memorization.corpora]


CROSSBENCH = register(
    Study(
        "crossbench",
        "cross-paper benchmark (issue 25): every method on every forget task, one tuning rule",
        datasets=datasets,
        default=False,
        schema=block_schema("""
    type: object
    additionalProperties: false
    required: [seeds, factors, enabled, entries, bounds, tasks, memorization]
    properties:
      enabled: {oneOf: [{type: "null"}, {type: array, items: {type: string}, minItems: 1, uniqueItems: true}]}
      seeds: {oneOf: [{type: "null"}, {type: array, items: {type: integer, minimum: 0}, minItems: 1}]}
      factors: {type: array, items: {$ref: "#/$defs/pos_num"}, minItems: 1, uniqueItems: true}
      entries:
        type: object
        minProperties: 1
        additionalProperties:
          type: object
          additionalProperties: false
          required: [method]
          properties:
            method: {$ref: "#/$defs/method"}
            optimizer: {$ref: "#/$defs/optimizer"}
            adapter: {enum: [full, lora, flora]}
      bounds:
        type: object
        additionalProperties: false
        required: [tasks, tofu, tdec]
        properties:
          tasks: {type: number, minimum: 0}
          tofu: {type: number, minimum: 0}
          tdec: {type: number, minimum: 0}
      tasks:
        type: object
        additionalProperties: false
        required: [datasets, models]
        properties:
          datasets: {type: array, items: {$ref: "#/$defs/task"}, minItems: 1, uniqueItems: true}
          models: {oneOf: [{type: "null"}, {type: array, items: {$ref: "#/$defs/model"}, minItems: 1}]}
      memorization:
        type: object
        additionalProperties: false
        required: [corpora, models]
        properties:
          corpora: {type: array, items: {enum: [mtsamples, enron]}, minItems: 1, uniqueItems: true}
          models: {oneOf: [{type: "null"}, {type: array, items: {$ref: "#/$defs/model"}, minItems: 1}]}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "results/${profile}/splits",
                "results/${profile}/eval",
                "results/${profile}/tofu/models",
                "results/${profile}/tdec/models",
                "results/${profile}/memorization/models",
                "rules/crossbench.smk",
                "src/unlearn_repro/pipeline/crossbench.py",
                "src/unlearn_repro/pipeline/crossbench_points.py",
                "src/unlearn_repro/report/crossbench.py",
                "src/unlearn_repro/methods",
                "src/unlearn_repro/optim",
                "src/unlearn_repro/fisher",
                "src/unlearn_repro/lora",
            ),
            params=(
                "crossbench",
                "methods",
                "fisher",
                "unlearn",
                "evaluation",
                "tofu",
                "tdec",
                "memorization",
                "optimizers",
                "seeds",
                "models",
                "data.tasks",
                "profile",
                "profiles",
            ),
            outs=("crossbench/points", "crossbench/tables", "crossbench/figures"),
            metrics=("crossbench/summary",),
            plots=("crossbench/figures",),
        ),
    )
)


@command(
    "crossbench-points",
    "one entry of the cross-paper benchmark at every factor of its step grid, on one task setting and seed",
    "benchmark",
    "entry",
    "seed",
    "out",
    options=[
        opt("--where", nargs="*", default=[], help="the setting: dataset=NAME model=NAME"),
        opt("--inputs", nargs="*", default=[], help="what the task's study made: NAME=PATH ..."),
        opt("--tasks", nargs="*", default=[], help="TDEC: TASK=DIR of each reasoning task's prepared data"),
    ],
    gpu=True,
)
def _crossbench_points(a, cfg, tracker):
    from unlearn_repro.pipeline.crossbench_points import points

    inputs = {**pairs(a.inputs), "tasks": pairs(a.tasks)}
    points(cfg, a.benchmark, a.entry, pairs(a.where), int(a.seed), inputs, a.out, tracker)


@command(
    "crossbench-report",
    "the cross-paper benchmark's leaderboards, Pareto figures, rank table, overview and verdicts",
    "out",
    options=[opt("points", nargs="+", help="points JSON files of the crossbench jobs")],
)
def _crossbench_report(a, cfg, tracker):
    from unlearn_repro.report import crossbench
    from unlearn_repro.tracking import log_report

    crossbench.build_report(cfg, a.points, a.out)
    for b in crossbench.benchmarks_in(a.points):
        tracker.log_run(
            f"crossbench/{b}", {"crossbench": cfg.crossbench.to_dict()}, {}, {"report": f"crossbench/{b}"},
            children={"stage": "crossbench_point", "benchmark": b},
        )  # fmt: skip
    log_report(
        tracker, "crossbench", crossbench.outputs(cfg, a.out), {"crossbench": cfg.crossbench.to_dict()}
    )

"""Ablations that isolate second-order information (issue 21, point 3): each second-order method against
the same method with its curvature removed, over a step-size grid, on a Pareto front of efficacy against
utility (rules/ablations.smk, pipeline/ and report/ablations.py).

  removal     Fisher Removal with the block F^-1, a diagonal F^-1 and F^-1 = I/lambda (main study's setting)
  forgetting  Fisher Forgetting's F^-1/4 noise and isotropic noise of the same norm (main study's setting)
  sophia_<m>  SOUL's Sophia, Sophia with h held constant (sign-momentum) and AdamW, for loss m on TOFU
"""

from unlearn_repro.commands import MAIN_RUN, command, opt
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(
    Study(
        "ablations",
        "second-order ablations (issue 21): curvature against its removal, Pareto fronts",
        datasets=lambda cfg: ["tofu"],
        schema=block_schema("""
    type: object
    additionalProperties: false
    required: [datasets, seeds, newton, sophia]
    properties:
      datasets: {type: array, items: {$ref: "#/$defs/task"}, minItems: 1, uniqueItems: true}
      seeds: {oneOf: [{type: "null"}, {type: array, items: {type: integer, minimum: 0}, minItems: 1}]}
      newton:
        type: object
        propertyNames: {enum: [removal, forgetting]}
        additionalProperties:
          type: object
          additionalProperties: false
          required: [methods, keys, values]
          properties:
            methods: {type: array, items: {$ref: "#/$defs/method"}, minItems: 2, uniqueItems: true}
            keys: {type: array, items: {type: string}, minItems: 1, uniqueItems: true}
            values: {type: array, items: {$ref: "#/$defs/pos_num"}, minItems: 1, uniqueItems: true}
            steps:          # a method's own grid in place of `values` (its steps on another scale)
              type: object
              propertyNames: {$ref: "#/$defs/method"}
              additionalProperties:
                type: array
                items: {$ref: "#/$defs/pos_num"}
                minItems: 1
                uniqueItems: true
      sophia:
        type: object
        additionalProperties: false
        required: [methods, optimizers, lr]
        properties:
          methods: {type: array, items: {$ref: "#/$defs/loss_method"}, minItems: 1, uniqueItems: true}
          optimizers: {type: array, items: {$ref: "#/$defs/optimizer"}, minItems: 2, uniqueItems: true}
          lr: {type: array, items: {$ref: "#/$defs/pos_num"}, minItems: 1, uniqueItems: true}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "results/${profile}/splits",
                "results/${profile}/eval",
                "results/${profile}/metrics",
                "results/${profile}/tofu/models",
                "rules/ablations.smk",
                "src/unlearn_repro/pipeline/ablations.py",
                "src/unlearn_repro/pipeline/main_points.py",
                "src/unlearn_repro/report/ablations.py",
                "src/unlearn_repro/methods",
                "src/unlearn_repro/optim",
                "src/unlearn_repro/fisher",
            ),
            params=(
                "ablations",
                "fisher",
                "unlearn",
                "evaluation",
                "tofu",
                "optimizers",
                "seeds",
                "models",
                "data.tasks",
                "profile",
                "profiles",
            ),
            outs=(
                "ablations/points",
                "ablations/tables",
                "ablations/figures",
            ),
            metrics=("ablations/summary",),
            plots=("ablations/figures",),
        ),
    )
)


NEWTON_ARGS = (
    "comparison",
    "method",
    "dataset",
    "model",
    "seed",
    "finetuned",
    "pretrained",
    "data",
    "reference",
    "split",
    "base",
    "out",
)


@command(
    "ablation-newton",
    "one Newton-type variant at each value of its comparison's grid (cycle 1), evaluated",
    *NEWTON_ARGS,
    gpu=True,
    options=[MAIN_RUN],
)
def _ablation_newton(a, cfg, tracker):
    from unlearn_repro.pipeline.ablations import newton_points

    newton_points(
        cfg,
        comparison=a.comparison,
        method=a.method,
        dataset=a.dataset,
        model_name=a.model,
        seed=int(a.seed),
        finetuned=a.finetuned,
        pretrained=a.pretrained,
        data_dir=a.data,
        reference=a.reference,
        split_file=a.split,
        base_eval=a.base,
        out=a.out,
        tracker=tracker,
        main=a.main,
    )


@command(
    "ablation-sophia",
    "one TOFU loss with one optimizer at each learning rate of the grid",
    "method",
    "optimizer",
    "seed",
    "base",
    "retain",
    "out",
    gpu=True,
)
def _ablation_sophia(a, cfg, tracker):
    from unlearn_repro.pipeline.ablations import sophia_points

    sophia_points(
        cfg,
        method=a.method,
        optimizer=a.optimizer,
        seed=int(a.seed),
        base=a.base,
        retain=a.retain,
        out=a.out,
        tracker=tracker,
    )


@command(
    "ablations-report",
    "the ablations' tables, Pareto figures and verdicts",
    "out",
    options=[opt("points", nargs="+", help="points.json files of the ablation jobs")],
)
def _ablations_report(a, cfg, tracker):
    from unlearn_repro.report import ablations
    from unlearn_repro.tracking import log_report

    ablations.build_report(cfg, a.points, a.out)
    log_report(tracker, "ablations", ablations.outputs(cfg, a.out), {"ablations": cfg.ablations.to_dict()})

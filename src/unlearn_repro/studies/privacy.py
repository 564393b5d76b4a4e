"""The privacy study (paper §7): DP-SGD fine-tuned models and each method at a grid of its coefficient,
audited on the same samples: Figure 3 (rules/privacy.smk, pipeline/ and report/privacy.py)."""

from unlearn_repro.commands import MAIN_RUN, command, opt
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(
    Study(
        "privacy",
        "the privacy study (§7): Figure 3",
        schema=block_schema("""
    type: object
    additionalProperties: false
    properties:
      datasets: {type: array, items: {$ref: "#/$defs/task"}, minItems: 1, uniqueItems: true}
      seeds:
        oneOf:
          - {type: "null"}
          - {type: array, items: {type: integer, minimum: 0}, minItems: 1, uniqueItems: true}
      epsilons: {type: array, items: {$ref: "#/$defs/pos_num"}, minItems: 1, uniqueItems: true}
      delta: {oneOf: [{type: "null"}, {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}]}
      max_grad_norm: {$ref: "#/$defs/pos_num"}
      accountant: {enum: [rdp, prv, gdp]}
      train_token_embeddings: {type: boolean}
      finetune: {$ref: "#/$defs/train_recipe"}
      methods: {type: array, items: {$ref: "#/$defs/method"}, uniqueItems: true}
      grids:
        type: object
        additionalProperties:
          type: object
          additionalProperties: false
          required: [values]
          properties:
            keys: {type: array, items: {type: string}, minItems: 1}  # default: the method's step_key
            values: {type: array, items: {type: number}, minItems: 1}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "results/${profile}/splits",
                "results/${profile}/metrics",
                "rules/privacy.smk",
                "src/unlearn_repro/dp.py",
                "src/unlearn_repro/pipeline/privacy.py",
                "src/unlearn_repro/pipeline/main_points.py",
                "src/unlearn_repro/report/privacy.py",
                "src/unlearn_repro/train.py",
                "src/unlearn_repro/methods",
                "src/unlearn_repro/metrics",
            ),
            params=(
                "privacy",
                "finetune",
                "methods",
                "fisher",
                "optimizers",
                "unlearn",
                "evaluation",
                "seeds",
                "models",
                "data.tasks",
                "profile",
                "profiles",
            ),
            outs=("privacy/dp", "privacy/unlearn", "privacy/tables", "privacy/figures"),
            metrics=("privacy/summary",),
            plots=("privacy/figures",),
        ),
    )
)


PRIVACY_ARGS = ("dataset", "model", "seed", "pretrained", "finetuned", "data", "reference", "split", "out")


def _privacy_inputs(a, tracker) -> dict:
    return dict(
        dataset=a.dataset,
        model_name=a.model,
        seed=int(a.seed),
        pretrained=a.pretrained,
        finetuned=a.finetuned,
        data_dir=a.data,
        reference=a.reference,
        split_file=a.split,
        tracker=tracker,
    )


@command(
    "privacy-dp", "DP-SGD fine-tune at each epsilon and audit the models (§7.1)", *PRIVACY_ARGS, gpu=True
)
def _privacy_dp(a, cfg, tracker):
    from unlearn_repro.pipeline import privacy

    privacy.dp_models(cfg, out_dir=a.out, **_privacy_inputs(a, tracker))


@command(
    "privacy-unlearn",
    "one method at each coefficient of its grid, audited (§7.2)",
    "method",
    *PRIVACY_ARGS,
    gpu=True,
    options=[MAIN_RUN],
)
def _privacy_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline import privacy

    privacy.unlearning_points(cfg, method=a.method, out=a.out, main=a.main, **_privacy_inputs(a, tracker))


@command(
    "privacy-report",
    "the privacy study's tables and Figure 3 (§7)",
    "out",
    options=[opt("points", nargs="+", help="points.json files of the DP models and the unlearning grids")],
)
def _privacy_report(a, cfg, tracker):
    from unlearn_repro.report import privacy
    from unlearn_repro.tracking import log_report

    privacy.build_report(cfg, a.points, a.out)
    log_report(tracker, "privacy", privacy.outputs(a.out), {"privacy": cfg.privacy.to_dict()})

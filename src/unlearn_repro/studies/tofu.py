"""SOUL on TOFU (SOUL paper Table 1, Figure 1): GA / GradDiff / PO / NPO with AdamW (FO) and Sophia (SO)
(rules/tofu.smk, pipeline/ and report/tofu.py)."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(
    Study(
        "tofu",
        "SOUL on TOFU (Table 1, Figure 1): FO vs SO unlearning",
        datasets=lambda cfg: ["tofu"],
        schema=block_schema("""
    type: object
    additionalProperties: false
    properties:
      model: {$ref: "#/$defs/model"}
      forget_split: {enum: [forget01, forget05, forget10]}
      forget_authors: {oneOf: [{type: "null"}, {$ref: "#/$defs/pos_int"}]}
      retain_authors: {oneOf: [{type: "null"}, {$ref: "#/$defs/pos_int"}]}
      eval_rows: {$ref: "#/$defs/pos_int"}
      max_length: {type: integer, minimum: 8}
      finetune: {$ref: "#/$defs/train_recipe"}
      retain: {enum: [released, recipe]}   # a released TOFU checkpoint's retain model: released or trained
      dtype: {enum: [float32, bfloat16]}    # the TOFU models' weights, gradients and optimizer states
      max_memory_gb: {oneOf: [{type: "null"}, {$ref: "#/$defs/pos_num"}]}  # per device, caps the free memory
      methods:
        type: array
        minItems: 1
        uniqueItems: true
        items: {$ref: "#/$defs/loss_method"}
      optimizers:
        type: object
        additionalProperties: false
        required: [FO, SO]
        properties: {FO: {$ref: "#/$defs/optimizer"}, SO: {$ref: "#/$defs/optimizer"}}
      lr:
        type: object
        propertyNames: {$ref: "#/$defs/loss_method"}
        additionalProperties:
          type: object
          additionalProperties: false
          properties: {FO: {$ref: "#/$defs/pos_num"}, SO: {$ref: "#/$defs/pos_num"}}
      epochs: {$ref: "#/$defs/pos_int"}
      batch_size: {$ref: "#/$defs/pos_int"}
      weight_decay: {type: number, minimum: 0}
      gamma: {type: number, minimum: 0}
      npo_beta: {$ref: "#/$defs/pos_num"}
      # overrides of optimizers.sophia for this study (e.g. the embedded re-pick of rho)
      sophia:
        type: object
        additionalProperties: false
        properties:
          rho: {$ref: "#/$defs/pos_num"}
          hessian_every: {$ref: "#/$defs/pos_int"}
          estimator: {enum: [gnb, squared_grad]}
          betas:
            type: array
            items: {type: number, minimum: 0, exclusiveMaximum: 1}
            minItems: 2
            maxItems: 2
          eps: {$ref: "#/$defs/pos_num"}
      min_k: {type: number, exclusiveMinimum: 0, maximum: 1}
      max_new_tokens: {$ref: "#/$defs/pos_int"}
      score_eos: {type: boolean}
      template:
        type: object
        additionalProperties: false
        required: [question_start, question_end, answer_tag]
        properties: {question_start: {type: string}, question_end: {type: string}, answer_tag: {type: string}}
      soul:
        type: object
        additionalProperties: false
        properties:
          embedding_model: {oneOf: [{type: "null"}, {type: string, minLength: 1}]}
          min_k: {type: number, exclusiveMinimum: 0, maximum: 1}
      eval_batch_size: {$ref: "#/$defs/pos_int"}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "rules/tofu.smk",
                "src/unlearn_repro/pipeline/tofu.py",
                "src/unlearn_repro/metrics/tofu.py",
                "src/unlearn_repro/report/tofu.py",
                "src/unlearn_repro/optim",
                "src/unlearn_repro/methods",
                "src/unlearn_repro/train.py",
                "src/unlearn_repro/objectives.py",
            ),
            params=("tofu", "optimizers", "methods", "seeds", "profile", "profiles"),
            outs=("tofu/models", "tofu/runs", "tofu/tables", "tofu/figures"),
            metrics=("tofu/summary",),
            plots=("tofu/figures",),
        ),
    )
)


@command(
    "tofu-model",
    "TOFU base (which=base: fine-tuned on full) or retain model, evaluated",
    "which",
    "pretrained",
    "out",
    gpu=True,
)
def _tofu_model(a, cfg, tracker):
    from unlearn_repro.pipeline.tofu import tofu_model

    tofu_model(cfg, a.which, a.pretrained, a.out, tracker)


@command(
    "tofu-unlearn",
    "SOUL: one method x optimizer kind (FO/SO) x seed on TOFU",
    "method",
    "kind",
    "seed",
    "base",
    "retain",
    "out",
    gpu=True,
)
def _tofu_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline.tofu import tofu_unlearn

    tofu_unlearn(cfg, a.method, a.kind, int(a.seed), a.base, a.retain, a.out, tracker)


@command(
    "tofu-report",
    "SOUL Table 1 and Figure 1 (ours | paper)",
    "out",
    "base",
    "retain",
    options=[opt("runs", nargs="+")],
)
def _tofu_report(a, cfg, tracker):
    from unlearn_repro.report.tofu import build_report, outputs
    from unlearn_repro.tracking import log_report

    build_report(cfg, a.runs, a.base, a.retain, a.out)
    log_report(tracker, "tofu", outputs(a.out), {"tofu": cfg.tofu.to_dict()})

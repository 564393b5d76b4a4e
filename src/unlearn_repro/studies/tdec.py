"""Knowledge unlearning on TDEC (FLoRA paper §4.1-4.2): Table 1, Figures 3 and 4 (rules/tdec.smk,
pipeline/ and report/tdec.py)."""

from pathlib import Path

from unlearn_repro.commands import TASKS, command, opt, pairs
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register


def reasoning_tasks(cfg) -> list[str]:
    """The reasoning tasks TDEC's runs are scored on: tdec.reasoning_tasks that this run prepares."""
    return [t for t in cfg.tdec.reasoning_tasks if t in cfg.data.tasks]


def datasets(cfg) -> list[str]:
    """TDEC, its retain set D_r (WikiText-2 at every scale) and the reasoning tasks of this run."""
    from unlearn_repro.hub import PRETRAIN_CORPUS

    return ["tdec", PRETRAIN_CORPUS, *reasoning_tasks(cfg)]


register(
    Study(
        "tdec",
        "the FLoRA paper's TDEC study (Table 1, Figures 3-4)",
        datasets=datasets,
        schema=block_schema("""
    type: object
    additionalProperties: false
    properties:
      models: {type: array, items: {$ref: "#/$defs/model"}, minItems: 1, uniqueItems: true}
      forget_sets: {$ref: "#/$defs/pos_int"}
      forget_size: {$ref: "#/$defs/pos_int"}
      row_length: {type: integer, minimum: 12}
      heldout_rows: {$ref: "#/$defs/pos_int"}
      ppl_rows: {$ref: "#/$defs/pos_int"}
      retain_rows: {$ref: "#/$defs/pos_int"}
      n: {$ref: "#/$defs/pos_int"}
      max_epochs: {$ref: "#/$defs/pos_int"}
      batch_size: {oneOf: [{const: forget_set}, {$ref: "#/$defs/pos_int"}]}
      threshold:
        type: object
        additionalProperties: false
        required: [source]
        properties:
          source: {enum: [published, heldout, file]}
          file: {oneOf: [{type: "null"}, {type: string, minLength: 1}]}
          published:
            type: object
            propertyNames: {$ref: "#/$defs/model"}
            additionalProperties:
              type: object
              additionalProperties: false
              required: [el, ma, source]
              properties:
                el: {type: number, minimum: 0, maximum: 1}
                ma: {type: number, minimum: 0, maximum: 1}
                source: {type: string, minLength: 1}
      optimizer: {$ref: "#/$defs/optimizer"}
      gamma: {type: number, minimum: 0}
      decode_batch_size: {$ref: "#/$defs/pos_int"}
      el_every_epoch: {type: boolean}
      reasoning_tasks: {type: array, items: {$ref: "#/$defs/task"}, uniqueItems: true}
      memorize:
        type: object
        additionalProperties: false
        properties:
          epochs: {$ref: "#/$defs/pos_int"}
          lr: {$ref: "#/$defs/pos_num"}
          batch_size: {$ref: "#/$defs/pos_int"}
          wikitext_rows: {type: integer, minimum: 0}
      lora:
        type: object
        additionalProperties: false
        properties:
          rank: {$ref: "#/$defs/pos_int"}
          alpha: {$ref: "#/$defs/pos_num"}
          targets: {$ref: "#/$defs/lora_targets"}
          fisher_eps: {$ref: "#/$defs/pos_num"}
          fisher_retain_rows: {$ref: "#/$defs/pos_int"}
      enabled: {type: array, minItems: 1, uniqueItems: true, items: {type: string}}
      configs:
        type: object
        minProperties: 1
        propertyNames: {pattern: "^[a-z0-9_]+$"}
        additionalProperties:
          type: object
          additionalProperties: false
          required: [method, adapter, lr]
          properties:
            method: {$ref: "#/$defs/loss_method"}
            adapter: {enum: [full, lora, flora]}
            lr: {$ref: "#/$defs/pos_num"}
      ablation:
        type: object
        additionalProperties: false
        properties:
          configs:           # names of tdec.configs with a LoRA / FLoRA adapter (config.py checks them)
            type: array
            minItems: 1
            uniqueItems: true
            items: {type: string, pattern: "^[a-z0-9_]+$"}
          targets:
            type: array
            minItems: 1
            uniqueItems: true
            items: {type: string, pattern: "^(q|k|v|o|ffn)+$"}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "rules/tdec.smk",
                "src/unlearn_repro/pipeline/tdec.py",
                "src/unlearn_repro/report/tdec.py",
                "src/unlearn_repro/lora",
                "src/unlearn_repro/fisher/diagonal.py",
                "src/unlearn_repro/metrics/extraction.py",
                "src/unlearn_repro/methods",
            ),
            params=("tdec", "evaluation", "optimizers", "data.tasks", "models", "profile", "profiles"),
            outs=("tdec/models", "tdec/runs", "tdec/tables", "tdec/figures"),
            metrics=("tdec/summary",),
            plots=("tdec/figures",),
        ),
    )
)


@command(
    "tdec-base",
    "TDEC: the base model (tiny: memorize its forget sets), its rows and the premise",
    "model",
    "pretrained",
    "out",
    gpu=True,
    options=[TASKS],
)
def _tdec_base(a, cfg, tracker):
    from unlearn_repro.pipeline.tdec import base

    base(cfg, a.model, a.pretrained, pairs(a.tasks), a.out, tracker)


@command(
    "tdec-run",
    "TDEC: one configuration on every forget set, stopped by the EL10 / MA criterion",
    "model",
    "run",
    "base",
    "out",
    gpu=True,
    options=[TASKS],
)
def _tdec_run(a, cfg, tracker):
    from unlearn_repro.pipeline.tdec import run

    run(cfg, a.model, a.run, a.base, pairs(a.tasks), a.out, tracker)


@command(
    "tdec-report",
    "TDEC: Table 1, Figures 3 and 4 (FLoRA paper)",
    "out",
    options=[
        opt(
            "inputs",
            nargs="+",
            help="base model folders results/<p>/tdec/models/<model> and run files "
            "results/<p>/tdec/runs/<model>/<run>.json",
        )
    ],
)
def _tdec_report(a, cfg, tracker):
    from unlearn_repro.report import tdec
    from unlearn_repro.tracking import log_report

    bases = {Path(x).name: str(Path(x) / "meta.json") for x in a.inputs if not x.endswith(".json")}
    runs = {(Path(x).parent.name, Path(x).stem): x for x in a.inputs if x.endswith(".json")}
    tdec.build_report(cfg, bases, runs, a.out)
    log_report(tracker, "tdec", tdec.outputs(a.out), {"tdec": cfg.tdec.to_dict()})

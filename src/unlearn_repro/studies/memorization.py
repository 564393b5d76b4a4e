"""The memorization case studies (paper §6): MT (mtsamples) and Enron, Tables 8 and 10
(rules/memorization.smk, pipeline/ and report/memorization.py)."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(
    Study(
        "memorization",
        "the memorization case studies (§6): Tables 8 and 10",
        datasets=lambda cfg: list(cfg.memorization.corpora),
        schema=block_schema("""
    type: object
    additionalProperties: false
    properties:
      corpora: {type: array, items: {enum: [mtsamples, enron]}, minItems: 1, uniqueItems: true}
      models:
        oneOf:
          - {type: "null"}
          - {type: array, items: {$ref: "#/$defs/model"}, minItems: 1, uniqueItems: true}
      methods:
        oneOf:
          - {type: "null"}
          - {type: array, items: {$ref: "#/$defs/method"}, minItems: 1, uniqueItems: true}
      max_texts: {oneOf: [{type: "null"}, {$ref: "#/$defs/pos_int"}]}
      max_segments: {oneOf: [{type: "null"}, {$ref: "#/$defs/pos_int"}]}
      segment_words: {$ref: "#/$defs/pos_int"}
      max_length: {type: integer, minimum: 8}
      train: {$ref: "#/$defs/train_recipe"}
      seeds: {type: array, items: {type: integer, minimum: 0}, minItems: 1, uniqueItems: true}
      n_targets: {$ref: "#/$defs/pos_int"}
      min_target_tokens: {$ref: "#/$defs/pos_int"}
      prefix_tokens: {$ref: "#/$defs/pos_int"}
      suffix_tokens: {$ref: "#/$defs/pos_int"}
      top_k: {$ref: "#/$defs/pos_int"}
      samples: {$ref: "#/$defs/pos_int"}
      generate_batch_size: {$ref: "#/$defs/pos_int"}
      ngram: {$ref: "#/$defs/pos_int"}
      examples: {type: integer, minimum: 0}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "rules/memorization.smk",
                "src/unlearn_repro/data",
                "src/unlearn_repro/methods",
                "src/unlearn_repro/fisher",
                "src/unlearn_repro/optim",
                "src/unlearn_repro/train.py",
                "src/unlearn_repro/pipeline",
                "src/unlearn_repro/metrics/verbatim.py",
                "src/unlearn_repro/report/memorization.py",
            ),
            # the study's own block, and every section the methods read (study_config
            # maps memorization.train onto finetune)
            params=(
                "memorization",
                "methods",
                "unlearn.forget_batch_size",
                "fisher",
                "optimizers",
                "seeds",
                "models",
                "data.source",
                "data.mirror_dir",
                "profile",
                "profiles",
            ),
            outs=(
                "memorization/data",
                "memorization/models",
                "memorization/targets",
                "memorization/runs",
                "memorization/tables",
                "memorization/figures",
            ),
            metrics=("memorization/summary",),
            plots=("memorization/figures",),
        ),
    )
)


@command("memorization-data", "a memorization corpus, segmented (§6.1)", "corpus", "out")
def _memorization_data(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization

    memorization.prepare(cfg, a.corpus, a.out)


@command(
    "memorize",
    "continue training the pretrained model on a corpus until it memorizes (§6.2)",
    "model",
    "corpus",
    "pretrained",
    "data",
    "out",
    gpu=True,
)
def _memorize(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization

    memorization.memorize(cfg, a.model, a.corpus, a.pretrained, a.data, a.out, tracker)


@command("memorization-targets", "the seed's long target texts", "corpus", "model-dir", "data", "seed", "out")
def _memorization_targets(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization

    memorization.targets(cfg, a.corpus, a.model_dir, a.data, int(a.seed), a.out)


@command(
    "memorization-base",
    "extraction test of the memorized model (Table 8's No unlearning)",
    "corpus",
    "model",
    "seed",
    "model-dir",
    "data",
    "split",
    "out",
    gpu=True,
)
def _memorization_base(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization

    memorization.base_extraction(
        cfg, a.corpus, a.model, int(a.seed), a.model_dir, a.data, a.split, a.out, tracker
    )


@command(
    "memorization-unlearn",
    "unlearn the targets once with a method, then the extraction test",
    "method",
    "corpus",
    "model",
    "seed",
    "memorized",
    "pretrained",
    "data",
    "split",
    "out",
    gpu=True,
)
def _memorization_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization

    memorization.unlearn_extraction(
        cfg,
        a.method,
        a.corpus,
        a.model,
        int(a.seed),
        a.memorized,
        a.pretrained,
        a.data,
        a.split,
        a.out,
        tracker,
    )


@command(
    "memorization-report",
    "Table 8, Table 10 and the memorization figure",
    "out",
    options=[opt("extractions", nargs="+")],
)
def _memorization_report(a, cfg, tracker):
    from unlearn_repro.report import memorization as report
    from unlearn_repro.tracking import log_report

    report.build_report(cfg, a.extractions, a.out)
    log_report(
        tracker,
        "memorization",
        report.outputs(cfg, a.out),
        {"memorization": cfg.memorization.to_dict(), "methods": list(cfg.methods.enabled)},
    )

"""The discussion studies (paper §9): weight distributions (Figure 4), the onion effect (Figure 6) and
exposure distributions (Figure 7), on the main study's runs (rules/discussions.smk, pipeline/ and
report/discussions.py)."""

from unlearn_repro.commands import command, opt, pairs
from unlearn_repro.studies.base import DvcStage, Study, block_schema, register

register(
    Study(
        "discussions",
        "the discussions (§9): Figures 4, 6, 7",
        required=True,
        schema=block_schema("""
    type: object
    additionalProperties: false
    properties:
      dataset: {$ref: "#/$defs/task"}
      model: {$ref: "#/$defs/model"}
      seed: {type: integer, minimum: 0}
      bins: {type: integer, minimum: 2}
      kl_epsilon: {type: number, minimum: 0}
      onion_threshold: {type: number}
      onion_top_fraction: {oneOf: [{type: "null"}, {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}]}
"""),
        dvc=DvcStage(
            deps=(
                "results/${profile}/models",
                "results/${profile}/splits",
                "rules/discussions.smk",
                "src/unlearn_repro/pipeline/discussions.py",
                "src/unlearn_repro/report/discussions.py",
                "src/unlearn_repro/metrics/weights.py",
            ),
            params=(
                "discussions",
                "evaluation",
                "finetune",
                "methods.enabled",
                "seeds",
                "models",
                "data.tasks",
                "profile",
                "profiles",
            ),
            outs=(
                "discussions/checkpoints",
                "discussions/snapshots",
                "discussions/onion",
                "discussions/onion_control",
                "discussions/tables",
                "discussions/figures",
            ),
            metrics=("discussions/summary",),
            plots=("discussions/figures",),
        ),
    )
)


@command(
    "discussion-snapshot",
    "last-block weights and retained samples' exposures of one model (§9)",
    "model-dir",
    "data",
    "reference",
    "split",
    "out",
    gpu=True,
    options=[opt("--base", action="store_true", help="the fine-tuned model: score every training sample")],
)
def _discussion_snapshot(a, cfg, tracker):
    from unlearn_repro.pipeline.discussions import snapshot

    snapshot(cfg, a.model_dir, a.data, a.reference, a.split, a.out, base=a.base)


@command(
    "onion",
    "remove the most exposed samples, retrain, rescore (§9.3)",
    "base",
    "pretrained",
    "data",
    "reference",
    "dataset",
    "model",
    "out",
    gpu=True,
    options=[
        opt("--control", action="store_true", help="remove a random set of the same size instead"),
        opt("--seed", type=int, default=0, help="the retraining's seed (and the control's draw)"),
    ],
)
def _onion(a, cfg, tracker):
    from unlearn_repro.pipeline.discussions import onion

    onion(
        cfg,
        a.base,
        a.pretrained,
        a.data,
        a.reference,
        a.out,
        tracker,
        dataset=a.dataset,
        model_name=a.model,
        control=a.control,
        seed=a.seed,
    )


@command(
    "discussions-report",
    "the discussion studies' tables and figures (§9)",
    "out",
    options=[
        opt("--base", nargs="+", required=True, help="SEED=PATH: the fine-tuned model's snapshots"),
        opt("--onion", nargs="+", required=True, help="the onion runs, one per seed"),
        opt(
            "--onion-control", nargs="*", default=(), help="their random-removal controls, in the same order"
        ),
        opt("snapshots", nargs="+", help="METHOD@SEED=PATH of each method's cycle-1 snapshots"),
    ],
)
def _discussions_report(a, cfg, tracker):
    from unlearn_repro.report import discussions
    from unlearn_repro.tracking import log_report

    discussions.build_report(
        cfg, pairs(a.snapshots), pairs(a.base), a.onion, a.out, control_files=a.onion_control
    )
    log_report(tracker, "discussions", discussions.outputs(a.out), {"discussions": cfg.discussions.to_dict()})

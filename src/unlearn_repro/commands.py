"""The CLI's commands, one declaration each: its help, its arguments, whether it takes a GPU, and a handler
that calls one pipeline or report function.

Handlers import their module when they run, so `--help` and a config error never wait for torch. A rule with
a `gpu` resource runs a command declared `gpu=True` (tests/workflow/test_gpu_commands.py keeps the two in step).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unlearn_repro.registry import Registry


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Callable            # (args, cfg, tracker) -> None
    required: tuple = ()         # --options every call gives
    options: tuple = ()          # further argparse arguments: ((flags...), kwargs)
    gpu: bool = False            # puts a model on the configured device: each job pins its own GPU (gpus.py)
    tracked: bool = True         # logs to MLflow (gets a tracker)


COMMANDS: Registry[Command] = Registry("command")


def command(name: str, help_: str, *required: str, gpu: bool = False, tracked: bool = True, options=()):
    """Declare a command: the decorated function is its handler."""
    def deco(fn):
        COMMANDS.register(name)(Command(name, help_, fn, required, tuple(options), gpu, tracked))
        return fn
    return deco


def opt(*flags: str, **kwargs) -> tuple:
    return flags, kwargs


def pairs(items) -> dict:
    """KEY=PATH arguments as a mapping."""
    return dict(x.split("=", 1) for x in items)


OUT_JSON = opt("--out", default=None, help="also write the per-item report as JSON here")
TASKS = opt("tasks", nargs="*", help="TASK=DIR of each reasoning task's prepared data")


# --- the config and the hub -------------------------------------------------------------------------------
@command("check-config", "validate the config layers and print the resolved config", tracked=False)
def _check_config(a, cfg, tracker):
    import yaml
    try:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), flush=True)
    except BrokenPipeError:  # `check-config | head`: the reader has gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _hub(a, cfg, run, title: str) -> None:
    from unlearn_repro import hub
    results = run(cfg)
    print(hub.report(results, title), flush=True)
    if a.out:
        from unlearn_repro.io import write_json
        write_json(a.out, [{"item": i, "ok": ok, "detail": d} for i, ok, d in results])
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


@command("download", "fetch every hub model and data set the profile needs into the cache ($HF_HOME); on a "
         "cluster whose compute nodes are offline, run it on a login node", tracked=False, options=[OUT_JSON])
def _download(a, cfg, tracker):
    from unlearn_repro.hub import download
    _hub(a, cfg, download, "download")


@command("check-hub", "check that every file a job will load is there: ok / failing, and why", tracked=False,
         options=[OUT_JSON])
def _check_hub(a, cfg, tracker):
    from unlearn_repro.hub import check_hub
    _hub(a, cfg, check_hub, "check-hub")


# --- data, base models, the main study ----------------------------------------------------------------------
@command("prepare-data", "normalize one data set into processed jsonl", "dataset", "out", tracked=False)
def _prepare_data(a, cfg, tracker):
    from unlearn_repro.data.splits import prepare
    prepare(a.dataset, cfg, a.out)


@command("tokenizer", "train the tiny models' BPE on the pretraining corpus", "corpus", "out", tracked=False)
def _tokenizer(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import make_tokenizer
    make_tokenizer(cfg, a.corpus, a.out)


@command("base-model", "pretrained base model (tiny: pretrain here; hub: download)", "model", "corpus",
         "tokenizer", "out", gpu=True)
def _base_model(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import base_model
    base_model(cfg, a.model, a.corpus, a.tokenizer, a.out, tracker)


@command("finetune", "fine-tune a base model on a task's full training set", "model", "dataset", "pretrained",
         "data", "out", gpu=True)
def _finetune(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import finetune
    finetune(cfg, a.model, a.dataset, a.pretrained, a.data, a.out, tracker)


@command("splits", "seeded disjoint forget cycles for one task", "dataset", "data", "seed", "out")
def _splits(a, cfg, tracker):
    from unlearn_repro.data.splits import write_forget_cycles
    write_forget_cycles(cfg, a.dataset, a.data, int(a.seed), a.out)


@command("unlearn", "run one method over the unlearning cycles", "method", "dataset", "model", "seed", "finetuned",
         "pretrained", "data", "split", "out", gpu=True)
def _unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline.unlearning import run
    run(cfg, dataset=a.dataset, model_name=a.model, method=a.method, seed=int(a.seed), finetuned=a.finetuned,
        pretrained=a.pretrained, data_dir=a.data, split_file=a.split, out_dir=a.out, tracker=tracker)


@command("evaluate-base", "accuracy and exposure of a fine-tuned base model", "dataset", "model", "seed",
         "finetuned", "data", "reference", "split", "out", gpu=True)
def _evaluate_base(a, cfg, tracker):
    from unlearn_repro.pipeline.evaluation import evaluate_base
    evaluate_base(cfg, a.finetuned, a.data, a.reference, a.split, a.out, tracker, dataset=a.dataset,
                  model_name=a.model, seed=int(a.seed))


@command("evaluate", "Δacc / Δexp of every cycle of an unlearning run", "run", "base", "data", "reference", "split",
         "out", gpu=True)
def _evaluate(a, cfg, tracker):
    from unlearn_repro.pipeline.evaluation import evaluate_run
    evaluate_run(cfg, a.run, a.base, a.data, a.reference, a.split, a.out, tracker)


@command("collect", "gather per-run metrics.json files into one CSV", "out", options=[opt("metrics", nargs="+")])
def _collect(a, cfg, tracker):
    from unlearn_repro.report.tables import collect
    collect(a.metrics, a.out)


@command("main-report", "the main study's tables (CSV + Markdown) and figures", "out",
         options=[opt("collected", nargs="+")])
def _main_report(a, cfg, tracker):
    from unlearn_repro.report.main import build_report, outputs
    from unlearn_repro.tracking import log_report
    build_report(cfg, a.collected, a.out)
    log_report(tracker, "main", {**outputs(cfg, a.out), "metrics": a.collected},
               {"table_cycles": list(cfg.unlearn.table_cycles), "methods": list(cfg.methods.enabled),
                "models": list(cfg.models), "tasks": list(cfg.data.tasks)})


# --- §9 discussions and the verdicts ------------------------------------------------------------------------
@command("discussion-snapshot", "last-block weights and retained samples' exposures of one model (§9)",
         "model-dir", "data", "reference", "split", "out", gpu=True,
         options=[opt("--base", action="store_true", help="the fine-tuned model: score every training sample")])
def _discussion_snapshot(a, cfg, tracker):
    from unlearn_repro.pipeline.discussions import snapshot
    snapshot(cfg, a.model_dir, a.data, a.reference, a.split, a.out, base=a.base)


@command("onion", "remove the most exposed samples, retrain, rescore (§9.3)", "base", "pretrained", "data",
         "reference", "dataset", "model", "out", gpu=True,
         options=[opt("--control", action="store_true", help="remove a random set of the same size instead"),
                  opt("--seed", type=int, default=0, help="the retraining's seed (and the control's draw)")])
def _onion(a, cfg, tracker):
    from unlearn_repro.pipeline.discussions import onion
    onion(cfg, a.base, a.pretrained, a.data, a.reference, a.out, tracker, dataset=a.dataset,
          model_name=a.model, control=a.control, seed=a.seed)


@command("discussions-report", "the discussion studies' tables and figures (§9)", "out",
         options=[opt("--base", nargs="+", required=True, help="SEED=PATH: the fine-tuned model's snapshots"),
                  opt("--onion", nargs="+", required=True, help="the onion runs, one per seed"),
                  opt("--onion-control", nargs="*", default=(),
                      help="their random-removal controls, in the same order"),
                  opt("snapshots", nargs="+", help="METHOD@SEED=PATH of each method's cycle-1 snapshots")])
def _discussions_report(a, cfg, tracker):
    from unlearn_repro.report import discussions
    from unlearn_repro.tracking import log_report
    discussions.build_report(cfg, pairs(a.snapshots), pairs(a.base), a.onion, a.out,
                             control_files=a.onion_control)
    log_report(tracker, "discussions", discussions.outputs(a.out), {"discussions": cfg.discussions.to_dict()})


@command("verdicts", "a verdict for every claim of the paper, from the studies' outputs", "out", "curves", "kl",
         "onion", "shift", options=[
             opt("--memorization", default=None, help="the memorization study's counts.csv (Table 8)"),
             opt("--privacy", default=None, help="the privacy study's points table (CSV), when it ran"),
             opt("collected", nargs="+")])
def _verdicts(a, cfg, tracker):
    from unlearn_repro.report.verdicts import build_verdicts
    from unlearn_repro.tracking import log_report
    build_verdicts(cfg, a.collected, a.curves, a.kl, a.onion, a.shift, a.out, memorization_file=a.memorization,
                   privacy_file=a.privacy)
    log_report(tracker, "verdicts", {"": [f"{a.out}.csv", f"{a.out}.md"]}, {"profile": cfg.profile})


# --- TDEC (FLoRA paper) ---------------------------------------------------------------------------------------
@command("tdec-base", "TDEC: the base model (tiny: memorize its forget sets), its rows and the premise", "model",
         "pretrained", "out", gpu=True, options=[TASKS])
def _tdec_base(a, cfg, tracker):
    from unlearn_repro.pipeline.tdec import base
    base(cfg, a.model, a.pretrained, pairs(a.tasks), a.out, tracker)


@command("tdec-run", "TDEC: one configuration on every forget set, stopped by the EL10 / MA criterion", "model",
         "run", "base", "out", gpu=True, options=[TASKS])
def _tdec_run(a, cfg, tracker):
    from unlearn_repro.pipeline.tdec import run
    run(cfg, a.model, a.run, a.base, pairs(a.tasks), a.out, tracker)


@command("tdec-report", "TDEC: Table 1, Figures 3 and 4 (FLoRA paper)", "out", options=[
    opt("inputs", nargs="+", help="base model folders results/<p>/tdec/models/<model> and run files "
        "results/<p>/tdec/runs/<model>/<run>.json")])
def _tdec_report(a, cfg, tracker):
    from unlearn_repro.report import tdec
    from unlearn_repro.tracking import log_report
    bases = {Path(x).name: str(Path(x) / "meta.json") for x in a.inputs if not x.endswith(".json")}
    runs = {(Path(x).parent.name, Path(x).stem): x for x in a.inputs if x.endswith(".json")}
    tdec.build_report(cfg, bases, runs, a.out)
    log_report(tracker, "tdec", tdec.outputs(a.out), {"tdec": cfg.tdec.to_dict()})


# --- §6 memorization --------------------------------------------------------------------------------------------
@command("memorization-data", "a memorization corpus, segmented (§6.1)", "corpus", "out")
def _memorization_data(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization
    memorization.prepare(cfg, a.corpus, a.out)


@command("memorize", "continue training the pretrained model on a corpus until it memorizes (§6.2)", "model",
         "corpus", "pretrained", "data", "out", gpu=True)
def _memorize(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization
    memorization.memorize(cfg, a.model, a.corpus, a.pretrained, a.data, a.out, tracker)


@command("memorization-targets", "the seed's long target texts", "corpus", "model-dir", "data", "seed", "out")
def _memorization_targets(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization
    memorization.targets(cfg, a.corpus, a.model_dir, a.data, int(a.seed), a.out)


@command("memorization-base", "extraction test of the memorized model (Table 8's No unlearning)", "corpus",
         "model", "seed", "model-dir", "data", "split", "out", gpu=True)
def _memorization_base(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization
    memorization.base_extraction(cfg, a.corpus, a.model, int(a.seed), a.model_dir, a.data, a.split, a.out, tracker)


@command("memorization-unlearn", "unlearn the targets once with a method, then the extraction test", "method",
         "corpus", "model", "seed", "memorized", "pretrained", "data", "split", "out", gpu=True)
def _memorization_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline import memorization
    memorization.unlearn_extraction(cfg, a.method, a.corpus, a.model, int(a.seed), a.memorized, a.pretrained,
                                    a.data, a.split, a.out, tracker)


@command("memorization-report", "Table 8, Table 10 and the memorization figure", "out",
         options=[opt("extractions", nargs="+")])
def _memorization_report(a, cfg, tracker):
    from unlearn_repro.report import memorization as report
    from unlearn_repro.tracking import log_report
    report.build_report(cfg, a.extractions, a.out)
    log_report(tracker, "memorization", report.outputs(cfg, a.out), {"memorization": cfg.memorization.to_dict(),
                                                                    "methods": list(cfg.methods.enabled)})


# --- §7 privacy -------------------------------------------------------------------------------------------------
PRIVACY_ARGS = ("dataset", "model", "pretrained", "finetuned", "data", "reference", "split", "out")


def _privacy_inputs(a, tracker) -> dict:
    return dict(dataset=a.dataset, model_name=a.model, pretrained=a.pretrained, finetuned=a.finetuned,
                data_dir=a.data, reference=a.reference, split_file=a.split, tracker=tracker)


@command("privacy-dp", "DP-SGD fine-tune at each epsilon and audit the models (§7.1)", *PRIVACY_ARGS, gpu=True)
def _privacy_dp(a, cfg, tracker):
    from unlearn_repro.pipeline import privacy
    privacy.dp_models(cfg, out_dir=a.out, **_privacy_inputs(a, tracker))


@command("privacy-unlearn", "one method at each coefficient of its grid, audited (§7.2)", "method", *PRIVACY_ARGS,
         gpu=True)
def _privacy_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline import privacy
    privacy.unlearning_points(cfg, method=a.method, out=a.out, **_privacy_inputs(a, tracker))


@command("privacy-report", "the privacy study's tables and Figure 3 (§7)", "out",
         options=[opt("points", nargs="+", help="points.json files of the DP models and the unlearning grids")])
def _privacy_report(a, cfg, tracker):
    from unlearn_repro.report import privacy
    from unlearn_repro.tracking import log_report
    privacy.build_report(cfg, a.points, a.out)
    log_report(tracker, "privacy", privacy.outputs(a.out), {"privacy": cfg.privacy.to_dict()})


# --- TOFU (SOUL paper) -----------------------------------------------------------------------------------------
@command("tofu-model", "TOFU base (which=base: fine-tuned on full) or retain model, evaluated", "which",
         "pretrained", "out", gpu=True)
def _tofu_model(a, cfg, tracker):
    from unlearn_repro.pipeline.tofu import tofu_model
    tofu_model(cfg, a.which, a.pretrained, a.out, tracker)


@command("tofu-unlearn", "SOUL: one method x optimizer kind (FO/SO) x seed on TOFU", "method", "kind", "seed",
         "base", "retain", "out", gpu=True)
def _tofu_unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline.tofu import tofu_unlearn
    tofu_unlearn(cfg, a.method, a.kind, int(a.seed), a.base, a.retain, a.out, tracker)


@command("tofu-report", "SOUL Table 1 and Figure 1 (ours | paper)", "out", "base", "retain",
         options=[opt("runs", nargs="+")])
def _tofu_report(a, cfg, tracker):
    from unlearn_repro.report.tofu import build_report, outputs
    from unlearn_repro.tracking import log_report
    build_report(cfg, a.runs, a.base, a.retain, a.out)
    log_report(tracker, "tofu", outputs(a.out), {"tofu": cfg.tofu.to_dict()})


GPU_COMMANDS = frozenset(name for name in COMMANDS.names() if COMMANDS.get(name).gpu)

"""The CLI's commands, one declaration each: its help, its arguments, whether it takes a GPU, and a handler
that calls one pipeline or report function. Here the shared steps' commands; each study declares its own in
its file in studies/ (the CLI imports that package, which registers them).

Handlers import their module when they run, so `--help` and a config error never wait for torch. A rule with a
`gpu` resource runs a command declared `gpu=True` (tests/workflow/test_gpu_commands.py keeps the two in step).
A command declared `torch=False` (data and bookkeeping steps) never imports torch: its job skips torch's
set-up, and the CLI fails it if it imports torch after all (tests/unit/test_import_graph.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from unlearn_repro.registry import Registry


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Callable  # (args, cfg, tracker) -> None
    required: tuple = ()  # --options every call gives
    options: tuple = ()  # further argparse arguments: ((flags...), kwargs)
    gpu: bool = False  # puts a model on the configured device: each job pins its own GPU (gpus.py)
    tracked: bool = True  # logs to MLflow (gets a tracker)
    torch: bool = True  # computes with torch: the job sets its threads and deterministic kernels first;
    # False: a data or bookkeeping step that never imports torch (~2 s of a job that runs on its own)


COMMANDS: Registry[Command] = Registry("command")


def command(
    name: str,
    help_: str,
    *required: str,
    gpu: bool = False,
    tracked: bool = True,
    torch: bool = True,
    options=(),
):
    """Declare a command: the decorated function is its handler."""

    def deco(fn):
        COMMANDS.register(name)(Command(name, help_, fn, required, tuple(options), gpu, tracked, torch))
        return fn

    return deco


def opt(*flags: str, **kwargs) -> tuple:
    return flags, kwargs


def pairs(items) -> dict:
    """KEY=PATH arguments as a mapping."""
    return dict(x.split("=", 1) for x in items)


OUT_JSON = opt("--out", default=None, help="also write the per-item report as JSON here")
TASKS = opt("tasks", nargs="*", help="TASK=DIR of each reasoning task's prepared data")
MAIN_RUN = opt(
    "--main",
    default=None,
    help="the main study's metrics.json of this method, task, model and seed: the grid value that is its own "
    "setting is read from its cycle 1 (pipeline/main_points.py)",
)


# --- the config and the hub -------------------------------------------------------------------------------
@command(
    "check-config", "validate the config layers and print the resolved config", tracked=False, torch=False
)
def _check_config(a, cfg, tracker):
    import yaml

    try:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), flush=True)
    except BrokenPipeError:  # `check-config | head`: the reader has gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _hub(a, cfg, run, title: str) -> None:
    from unlearn_repro import hub_check

    results = run(cfg)
    print(hub_check.report(results, title), flush=True)
    if a.out:
        from unlearn_repro.io import write_json

        write_json(a.out, [{"item": i, "ok": ok, "detail": d} for i, ok, d in results])
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


@command(
    "download",
    "fetch every hub model and data set the profile needs into the cache ($HF_HOME); on a "
    "cluster whose compute nodes are offline, run it on a login node",
    tracked=False,
    options=[OUT_JSON],
)
def _download(a, cfg, tracker):
    from unlearn_repro.hub_check import download

    _hub(a, cfg, download, "download")


@command(
    "check-hub",
    "check that every file a job will load is there: ok / failing, and why",
    tracked=False,
    options=[OUT_JSON],
)
def _check_hub(a, cfg, tracker):
    from unlearn_repro.hub_check import check_hub

    _hub(a, cfg, check_hub, "check-hub")


# --- data, base models, unlearning, evaluation: the steps the studies share (theirs: studies/) ------------
@command(
    "prepare-data",
    "normalize one data set into processed jsonl",
    "dataset",
    "out",
    tracked=False,
    torch=False,
)
def _prepare_data(a, cfg, tracker):
    from unlearn_repro.data.splits import prepare

    prepare(a.dataset, cfg, a.out)


@command("tokenizer", "train the tiny models' BPE on the pretraining corpus", "corpus", "out", tracked=False)
def _tokenizer(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import make_tokenizer

    make_tokenizer(cfg, a.corpus, a.out)


@command(
    "base-model",
    "pretrained base model (tiny: pretrain here; hub: download)",
    "model",
    "corpus",
    "tokenizer",
    "out",
    gpu=True,
)
def _base_model(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import base_model

    base_model(cfg, a.model, a.corpus, a.tokenizer, a.out, tracker)


@command(
    "finetune",
    "fine-tune a base model on a task's full training set",
    "model",
    "dataset",
    "pretrained",
    "data",
    "out",
    gpu=True,
)
def _finetune(a, cfg, tracker):
    from unlearn_repro.pipeline.base_models import finetune

    finetune(cfg, a.model, a.dataset, a.pretrained, a.data, a.out, tracker)


@command(
    "splits", "seeded disjoint forget cycles for one task", "dataset", "data", "seed", "out", torch=False
)
def _splits(a, cfg, tracker):
    from unlearn_repro.data.splits import write_forget_cycles

    write_forget_cycles(cfg, a.dataset, a.data, int(a.seed), a.out)


@command(
    "unlearn",
    "run one method over the unlearning cycles",
    "method",
    "dataset",
    "model",
    "seed",
    "finetuned",
    "pretrained",
    "data",
    "split",
    "out",
    gpu=True,
)
def _unlearn(a, cfg, tracker):
    from unlearn_repro.pipeline.unlearning import run

    run(
        cfg,
        dataset=a.dataset,
        model_name=a.model,
        method=a.method,
        seed=int(a.seed),
        finetuned=a.finetuned,
        pretrained=a.pretrained,
        data_dir=a.data,
        split_file=a.split,
        out_dir=a.out,
        tracker=tracker,
    )


@command(
    "evaluate-base",
    "accuracy and exposure of a fine-tuned base model",
    "dataset",
    "model",
    "seed",
    "finetuned",
    "data",
    "reference",
    "split",
    "out",
    gpu=True,
)
def _evaluate_base(a, cfg, tracker):
    from unlearn_repro.pipeline.evaluation import evaluate_base

    evaluate_base(
        cfg,
        a.finetuned,
        a.data,
        a.reference,
        a.split,
        a.out,
        tracker,
        dataset=a.dataset,
        model_name=a.model,
        seed=int(a.seed),
    )


@command(
    "evaluate",
    "Δacc / Δexp of every cycle of an unlearning run",
    "run",
    "base",
    "data",
    "reference",
    "split",
    "out",
    gpu=True,
)
def _evaluate(a, cfg, tracker):
    from unlearn_repro.pipeline.evaluation import evaluate_run

    evaluate_run(cfg, a.run, a.base, a.data, a.reference, a.split, a.out, tracker)

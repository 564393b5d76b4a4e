"""`python -m unlearn_repro <command>`: parse, load + validate params, call one pipeline step.

The config: under Snakemake, the resolved config the Snakefile wrote (env UNLEARN_CONFIG), unless a config
option is given; else the same layers as the Snakefile resolves (config.resolve_layers): --params (default
params.yaml) < its --profile block < each --configfile < --config.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The config options (as Snakemake's), accepted before or after the command."""
    default = None if top else argparse.SUPPRESS
    p.add_argument("--params", default=default,
                   help="params file (default: $UNLEARN_CONFIG under Snakemake, else params.yaml)")
    p.add_argument("--profile", default=default,
                   help="profile of params.yaml to apply (default: the last layer's `profile`)")
    p.add_argument("--configfile", "--configfiles", nargs="+", action="extend", default=default,
                   metavar="FILE", help="your params files over params.yaml and its profile, in order")
    p.add_argument("--config", nargs="+", action="extend", default=default, metavar="KEY=VALUE",
                   help="values over everything else (YAML: fisher='{chunk: 4}')")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="unlearn_repro", description=__doc__)
    _common(ap, top=True)
    sub = ap.add_subparsers(dest="command", required=True)

    def cmd(name, help_, *args):
        p = sub.add_parser(name, help=help_)
        _common(p)
        for a in args:
            p.add_argument(f"--{a}", required=True)
        return p

    cmd("check-config", "validate params.yaml and print the resolved config")
    p = cmd("download", "fetch every hub model and data set the profile needs into the cache ($HF_HOME); on a "
            "cluster whose compute nodes are offline, run it on a login node")
    p.add_argument("--out", default=None, help="also write the per-item report as JSON here")
    p = cmd("check-hub", "load one row of each needed data set and each model's config: ok / failing, and why")
    p.add_argument("--out", default=None, help="also write the per-item report as JSON here")
    cmd("prepare-data", "normalize one data set into processed jsonl", "dataset", "out")
    cmd("tokenizer", "train the tiny models' BPE on the pretraining corpus", "corpus", "out")
    cmd("base-model", "pretrained base model (tiny: pretrain here; hub: download)", "model", "corpus", "tokenizer", "out")
    cmd("finetune", "fine-tune a base model on a task's full training set", "model", "dataset", "pretrained",
        "data", "out")
    cmd("splits", "seeded disjoint forget cycles for one task", "dataset", "data", "seed", "out")
    cmd("unlearn", "run one method over the unlearning cycles", "method", "dataset", "model", "seed", "finetuned",
        "pretrained", "data", "split", "out")
    cmd("evaluate-base", "accuracy and exposure of a fine-tuned base model", "dataset", "model", "seed",
        "finetuned", "data", "reference", "split", "out")
    cmd("evaluate", "Δacc / Δexp of every cycle of an unlearning run", "run", "base", "data", "reference", "split", "out")
    p = cmd("collect", "gather per-run metrics.json files into one CSV", "out")
    p.add_argument("metrics", nargs="+")
    p = cmd("discussion-snapshot", "last-block weights and retained samples' exposures of one model (§9)",
            "model-dir", "data", "reference", "split", "out")
    p.add_argument("--base", action="store_true", help="the fine-tuned model: score every training sample")
    cmd("onion", "remove the most exposed samples, retrain, rescore (§9.3)", "base", "pretrained", "data",
        "reference", "dataset", "model", "out")
    p = cmd("discussions-report", "the discussion studies' tables and figures (§9)", "out", "base", "onion")
    p.add_argument("snapshots", nargs="+", help="METHOD=PATH of each method's cycle-1 snapshot")
    p = cmd("verdicts", "a verdict for every claim of the paper, from the studies' outputs", "out", "curves", "kl",
            "onion", "shift")
    p.add_argument("--memorization", default=None, help="the memorization study's counts.csv (Table 8)")
    p.add_argument("--privacy", default=None, help="the privacy study's points table (CSV), when it ran")
    p.add_argument("collected", nargs="+")
    p = cmd("tdec-base", "TDEC: the base model (tiny: memorize its forget sets), its rows and the premise", "model",
            "pretrained", "out")
    p.add_argument("tasks", nargs="*", help="TASK=DIR of each reasoning task's prepared data")
    p = cmd("tdec-run", "TDEC: one configuration on every forget set, stopped by the EL10 / MA criterion", "model",
            "run", "base", "out")
    p.add_argument("tasks", nargs="*", help="TASK=DIR of each reasoning task's prepared data")
    p = cmd("tdec-report", "TDEC: Table 1, Figures 3 and 4 (FLoRA paper)", "out")
    p.add_argument("inputs", nargs="+", help="base model folders results/<p>/tdec/models/<model> and run files "
                   "results/<p>/tdec/runs/<model>/<run>.json")
    p = cmd("main-report", "the main study's tables (CSV + Markdown) and figures", "out")
    p.add_argument("collected", nargs="+")
    cmd("memorization-data", "a memorization corpus, segmented (§6.1)", "corpus", "out")
    cmd("memorize", "continue training the pretrained model on a corpus until it memorizes (§6.2)", "model",
        "corpus", "pretrained", "data", "out")
    cmd("memorization-targets", "the seed's long target texts", "corpus", "model-dir", "data", "seed", "out")
    cmd("memorization-base", "extraction test of the memorized model (Table 8's No unlearning)", "corpus", "model",
        "seed", "model-dir", "data", "split", "out")
    cmd("memorization-unlearn", "unlearn the targets once with a method, then the extraction test", "method",
        "corpus", "model", "seed", "memorized", "pretrained", "data", "split", "out")
    p = cmd("memorization-report", "Table 8, Table 10 and the memorization figure", "out")
    p.add_argument("extractions", nargs="+")
    cmd("privacy-dp", "DP-SGD fine-tune at each epsilon and audit the models (§7.1)", "dataset", "model", "pretrained",
        "finetuned", "data", "reference", "split", "out")
    cmd("privacy-unlearn", "one method at each coefficient of its grid, audited (§7.2)", "method", "dataset", "model",
        "pretrained", "finetuned", "data", "reference", "split", "out")
    p = cmd("privacy-report", "the privacy study's tables and Figure 3 (§7)", "out")
    p.add_argument("points", nargs="+", help="points.json files of the DP models and the unlearning grids")
    cmd("tofu-model", "TOFU base (which=base: fine-tuned on full) or retain model, evaluated", "which", "pretrained",
        "out")
    cmd("tofu-unlearn", "SOUL: one method x optimizer kind (FO/SO) x seed on TOFU", "method", "kind", "seed", "base",
        "retain", "out")
    p = cmd("tofu-report", "SOUL Table 1 and Figure 1 (ours | paper)", "out", "base", "retain")
    p.add_argument("runs", nargs="+")
    return ap


def main(argv: list[str] | None = None) -> None:
    started = time.time()  # the job's start: its MLflow run's start time
    args = build_parser().parse_args(argv)
    cfg, source = _load_config(args)
    print(f"[config] {source}, profile {cfg.profile}", file=sys.stderr, flush=True)
    if args.command in GPU_COMMANDS and cfg.device != "cpu":  # before torch touches CUDA
        from unlearn_repro.gpus import pin_gpu
        slot = pin_gpu()
        if slot is not None:
            print(f"[gpu] this job runs on GPU {slot} (CUDA_VISIBLE_DEVICES={slot})", file=sys.stderr, flush=True)
    import torch

    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        _dispatch(args, cfg, started)
    except (FileNotFoundError, KeyError, ValueError, MemoryError) as e:
        sys.exit(f"error ({args.command}): {e}")
    except RuntimeError as e:
        from unlearn_repro.hub import HubError
        from unlearn_repro.models.build import DeviceError
        if not isinstance(e, (HubError, DeviceError)):
            raise
        sys.exit(f"error ({args.command}): {e}")
    except (ConnectionError, OSError) as e:  # the network, a missing cache entry: one line, not a traceback
        from unlearn_repro.hub import cache_dir, one_line
        sys.exit(f"error ({args.command}): {one_line(e)} (network or Hugging Face cache {cache_dir()}; "
                 "fetch first with `python -m unlearn_repro download`)")


def _load_config(args):
    """The resolved config (Snakemake's, or the layers named by the options) and where it came from."""
    from unlearn_repro import config

    resolved = os.environ.get("UNLEARN_CONFIG")
    given = [args.params, args.profile, args.configfile, args.config]
    try:
        if resolved and all(x is None for x in given):
            return config.load_resolved(resolved), f"{resolved} (resolved by Snakemake)"
        layered = config.resolve_layers(args.params or "params.yaml", args.configfile or (),
                                        config.parse_config_args(args.config), args.profile)
    except config.ConfigError as e:
        sys.exit(f"error: {e}")
    for warning in layered.warnings:
        print(f"[config] warning: {warning}", file=sys.stderr, flush=True)
    files = [args.params or "params.yaml", *(args.configfile or ())] + (["--config"] if args.config else [])
    return layered.cfg, " < ".join(files)


# commands that put a model on the configured device: each gets its own GPU on a multi-GPU machine (gpus.py)
# the commands of rules with a `gpu` resource (tests/workflow/test_gpu_commands.py keeps the two in step)
GPU_COMMANDS = {"base-model", "finetune", "unlearn", "evaluate-base", "evaluate", "discussion-snapshot", "onion",
                "memorize", "memorization-base", "memorization-unlearn", "privacy-dp", "privacy-unlearn",
                "tdec-base", "tdec-run", "tofu-model", "tofu-unlearn"}


def _dispatch(a, cfg, started: float | None = None) -> None:
    from unlearn_repro.tracking import log_report, make_tracker

    c = a.command
    if c == "check-config":
        import yaml
        try:
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), flush=True)
        except BrokenPipeError:  # `check-config | head`: the reader has gone, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if c in ("download", "check-hub"):
        from unlearn_repro import hub
        results = (hub.download if c == "download" else hub.check_hub)(cfg)
        print(hub.report(results, c), flush=True)
        if a.out:
            from unlearn_repro.io import write_json
            write_json(a.out, [{"item": i, "ok": ok, "detail": d} for i, ok, d in results])
        if not all(ok for _, ok, _ in results):
            sys.exit(1)
        return
    if c == "prepare-data":
        from unlearn_repro.data.splits import prepare
        prepare(a.dataset, cfg, a.out)
        return
    if c == "tokenizer":
        from unlearn_repro.pipeline.base_models import make_tokenizer
        make_tokenizer(cfg, a.corpus, a.out)
        return
    tracker = make_tracker(cfg, start_time=started)
    if c == "base-model":
        from unlearn_repro.pipeline.base_models import base_model
        base_model(cfg, a.model, a.corpus, a.tokenizer, a.out, tracker)
    elif c == "finetune":
        from unlearn_repro.pipeline.base_models import finetune
        finetune(cfg, a.model, a.dataset, a.pretrained, a.data, a.out, tracker)
    elif c == "splits":
        from unlearn_repro.data.splits import forget_cycles
        from unlearn_repro.io import read_json, write_json
        n = read_json(Path(a.data) / "meta.json")["rows"]["train"]
        u = cfg.unlearn
        print(f"[splits] cycle_size {u.cycle_size}, max_cycles {u.max_cycles}", flush=True)
        write_json(a.out, {"dataset": a.dataset, "seed": int(a.seed), "n_train": n, "cycle_size": u.cycle_size,
                           "cycles": forget_cycles(n, u.cycle_size, u.max_cycles, int(a.seed))})
    elif c == "unlearn":
        from unlearn_repro.pipeline.unlearning import run
        run(cfg, dataset=a.dataset, model_name=a.model, method=a.method, seed=int(a.seed), finetuned=a.finetuned,
            pretrained=a.pretrained, data_dir=a.data, split_file=a.split, out_dir=a.out, tracker=tracker)
    elif c == "evaluate-base":
        from unlearn_repro.pipeline.evaluation import evaluate_base
        evaluate_base(cfg, a.finetuned, a.data, a.reference, a.split, a.out, tracker, dataset=a.dataset,
                      model_name=a.model, seed=int(a.seed))
    elif c == "evaluate":
        from unlearn_repro.pipeline.evaluation import evaluate_run
        evaluate_run(cfg, a.run, a.base, a.data, a.reference, a.split, a.out, tracker)
    elif c == "collect":
        from unlearn_repro.report.tables import collect
        collect(a.metrics, a.out)
    elif c == "discussion-snapshot":
        from unlearn_repro.pipeline.discussions import snapshot
        snapshot(cfg, a.model_dir, a.data, a.reference, a.split, a.out, base=a.base)
    elif c == "onion":
        from unlearn_repro.pipeline.discussions import onion
        onion(cfg, a.base, a.pretrained, a.data, a.reference, a.out, tracker, dataset=a.dataset, model_name=a.model)
    elif c == "discussions-report":
        from unlearn_repro.report import discussions
        discussions.build_report(cfg, dict(x.split("=", 1) for x in a.snapshots), a.base, a.onion, a.out)
        log_report(tracker, "discussions", discussions.outputs(a.out), {"discussions": cfg.discussions.to_dict()})
    elif c == "verdicts":
        from unlearn_repro.report.verdicts import build_verdicts
        build_verdicts(cfg, a.collected, a.curves, a.kl, a.onion, a.shift, a.out,
                       memorization_file=a.memorization, privacy_file=a.privacy)
        log_report(tracker, "verdicts", {"": [f"{a.out}.csv", f"{a.out}.md"]}, {"profile": cfg.profile})
    elif c.startswith("memoriz"):
        _memorization(a, cfg, tracker)
    elif c in ("privacy-dp", "privacy-unlearn"):
        from unlearn_repro.pipeline import privacy
        common = dict(dataset=a.dataset, model_name=a.model, pretrained=a.pretrained, finetuned=a.finetuned,
                      data_dir=a.data, reference=a.reference, split_file=a.split, tracker=tracker)
        if c == "privacy-dp":
            privacy.dp_models(cfg, out_dir=a.out, **common)
        else:
            privacy.unlearning_points(cfg, method=a.method, out=a.out, **common)
    elif c == "privacy-report":
        from unlearn_repro.report import privacy as privacy_report
        privacy_report.build_report(cfg, a.points, a.out)
        log_report(tracker, "privacy", privacy_report.outputs(a.out), {"privacy": cfg.privacy.to_dict()})
    elif c == "tofu-model":
        from unlearn_repro.pipeline.tofu import tofu_model
        tofu_model(cfg, a.which, a.pretrained, a.out, tracker)
    elif c == "tofu-unlearn":
        from unlearn_repro.pipeline.tofu import tofu_unlearn
        tofu_unlearn(cfg, a.method, a.kind, int(a.seed), a.base, a.retain, a.out, tracker)
    elif c == "tofu-report":
        from unlearn_repro.report.tofu import build_report, outputs
        build_report(cfg, a.runs, a.base, a.retain, a.out)
        log_report(tracker, "tofu", outputs(a.out), {"tofu": cfg.tofu.to_dict()})
    elif c == "tdec-base":
        from unlearn_repro.pipeline.tdec import base
        base(cfg, a.model, a.pretrained, dict(x.split("=", 1) for x in a.tasks), a.out, tracker)
    elif c == "tdec-run":
        from unlearn_repro.pipeline.tdec import run
        run(cfg, a.model, a.run, a.base, dict(x.split("=", 1) for x in a.tasks), a.out, tracker)
    elif c == "tdec-report":
        from unlearn_repro.report import tdec
        bases = {Path(x).name: str(Path(x) / "meta.json") for x in a.inputs if not x.endswith(".json")}
        runs = {(Path(x).parent.name, Path(x).stem): x for x in a.inputs if x.endswith(".json")}
        tdec.build_report(cfg, bases, runs, a.out)
        log_report(tracker, "tdec", tdec.outputs(a.out), {"tdec": cfg.tdec.to_dict()})
    elif c == "main-report":
        from unlearn_repro.report.main import build_report, outputs
        build_report(cfg, a.collected, a.out)
        log_report(tracker, "main", {**outputs(cfg, a.out), "metrics": a.collected},
                   {"table_cycles": list(cfg.unlearn.table_cycles), "methods": list(cfg.methods.enabled),
                    "models": list(cfg.models), "tasks": list(cfg.data.tasks)})


def _memorization(a, cfg, tracker) -> None:
    from unlearn_repro.pipeline import memorization as mem

    c = a.command
    if c == "memorization-data":
        mem.prepare(cfg, a.corpus, a.out)
    elif c == "memorize":
        mem.memorize(cfg, a.model, a.corpus, a.pretrained, a.data, a.out, tracker)
    elif c == "memorization-targets":
        mem.targets(cfg, a.corpus, a.model_dir, a.data, int(a.seed), a.out)
    elif c == "memorization-base":
        mem.base_extraction(cfg, a.corpus, a.model, int(a.seed), a.model_dir, a.data, a.split, a.out, tracker)
    elif c == "memorization-unlearn":
        mem.unlearn_extraction(cfg, a.method, a.corpus, a.model, int(a.seed), a.memorized, a.pretrained, a.data,
                               a.split, a.out, tracker)
    elif c == "memorization-report":
        from unlearn_repro.report import memorization as report
        from unlearn_repro.tracking import log_report
        report.build_report(cfg, a.extractions, a.out)
        log_report(tracker, "memorization", report.outputs(cfg, a.out), {"memorization": cfg.memorization.to_dict(),
                                                                    "methods": list(cfg.methods.enabled)})

"""`python -m unlearn_repro <command>`: parse, load + validate params, call one pipeline step.

The config: under Snakemake, the resolved config the Snakefile wrote (env UNLEARN_CONFIG), unless a config
option is given; else the same layers as the Snakefile resolves (config.resolve_layers): --params (default
params.yaml) < its --profile block < each --configfile < --config.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import time

from unlearn_repro import (
    config,
    studies,  # noqa: F401  (registers every study's commands)
)
from unlearn_repro.allocator import keep_freed_memory
from unlearn_repro.commands import COMMANDS
from unlearn_repro.errors import DeviceError, HubError, one_line
from unlearn_repro.gpus import pin_gpu
from unlearn_repro.hub import cache_dir
from unlearn_repro.tracking import make_tracker

GPU_COMMANDS = frozenset(
    name for name in COMMANDS.names() if COMMANDS.get(name).gpu
)  # the rules' tests read it


def _common(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The config options (as Snakemake's), accepted before or after the command."""
    default = None if top else argparse.SUPPRESS
    p.add_argument(
        "--params",
        default=default,
        help="params file (default: $UNLEARN_CONFIG under Snakemake, else params.yaml)",
    )
    p.add_argument(
        "--profile",
        default=default,
        help="profile of params.yaml to apply (default: the last layer's `profile`)",
    )
    p.add_argument(
        "--configfile",
        "--configfiles",
        nargs="+",
        action="extend",
        default=default,
        metavar="FILE",
        help="your params files over params.yaml and its profile, in order",
    )
    p.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=default,
        metavar="KEY=VALUE",
        help="values over everything else (YAML: fisher='{chunk: 4}')",
    )


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per declared command (commands.py)."""
    ap = argparse.ArgumentParser(prog="unlearn_repro", description=__doc__)
    _common(ap, top=True)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in COMMANDS.names():
        c = COMMANDS.get(name)
        p = sub.add_parser(name, help=c.help)
        _common(p)
        for arg in c.required:
            p.add_argument(f"--{arg}", required=True)
        for flags, kwargs in c.options:
            p.add_argument(*flags, **kwargs)
    return ap


def _drop_unheard_exit_hooks() -> None:
    """torch._dynamo's exit hook formats a table of compile times for a log line at INFO that nothing hears
    unless TORCH_LOGS asks; tabulate's isinstance checks then walk every ABC subclass the job created: 0.8 s
    of CPU at the end of a scoring job (py-spy). Dropped where its logger would not emit INFO."""
    utils = sys.modules.get("torch._dynamo.utils")
    if utils is not None and not utils.log.isEnabledFor(logging.INFO):
        atexit.unregister(utils.dump_compile_times)


def main(argv: list[str] | None = None) -> None:
    started = time.time()  # the job's start: its MLflow run's start time
    args = build_parser().parse_args(argv)
    command = COMMANDS.get(args.command)
    cfg, source = _load_config(args)
    print(f"[config] {source}, profile {cfg.profile}", file=sys.stderr, flush=True)
    if command.gpu and cfg.device != "cpu":  # before torch touches CUDA
        slot = pin_gpu()
        if slot is not None:
            print(
                f"[gpu] this job runs on GPU {slot} (CUDA_VISIBLE_DEVICES={slot})",
                file=sys.stderr,
                flush=True,
            )
    keep_freed_memory()  # before the first tensor: no page faults on every batch's activations (allocator.py)
    torch_before = "torch" in sys.modules  # a job forked from the job server has it preloaded
    if command.torch:
        _set_up_torch(cfg.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        tracker = None
        if command.tracked:
            tracker = make_tracker(cfg, start_time=started)
        command.handler(args, cfg, tracker)
        if not command.torch and not torch_before and "torch" in sys.modules:
            sys.exit(
                f"error ({args.command}): it imported torch, but commands.py declares it torch=False, so its "
                "thread count and deterministic kernels were never set; declare it torch=True"
            )
    except (FileNotFoundError, KeyError, ValueError, MemoryError) as e:
        sys.exit(f"error ({args.command}): {e}")
    except RuntimeError as e:
        if not isinstance(e, (HubError, DeviceError)):
            raise
        sys.exit(f"error ({args.command}): {e}")
    except (ConnectionError, OSError) as e:  # the network, a missing cache entry: one line, not a traceback
        sys.exit(
            f"error ({args.command}): {one_line(e)} (network or Hugging Face cache {cache_dir()}; "
            "fetch first with `python -m unlearn_repro download`)"
        )


def _set_up_torch(threads: int) -> None:
    """The job's thread count and deterministic kernels, before its first tensor. torch is heavy: imported
    after the parse and the config, so `--help` and a config error never wait for it."""
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    _drop_unheard_exit_hooks()  # use_deterministic_algorithms imported torch._dynamo, which registered it


def _load_config(args):
    """The resolved config (Snakemake's, or the layers named by the options) and where it came from."""
    resolved = os.environ.get("UNLEARN_CONFIG")
    given = [args.params, args.profile, args.configfile, args.config]
    try:
        if resolved and all(x is None for x in given):
            return config.load_resolved(resolved), f"{resolved} (resolved by Snakemake)"
        layered = config.resolve_layers(
            args.params or "params.yaml",
            args.configfile or (),
            config.parse_config_args(args.config),
            args.profile,
        )
    except config.ConfigError as e:
        sys.exit(f"error: {e}")
    for warning in layered.warnings:
        print(f"[config] warning: {warning}", file=sys.stderr, flush=True)
    files = [args.params or "params.yaml", *(args.configfile or ())] + (["--config"] if args.config else [])
    return layered.cfg, " < ".join(files)

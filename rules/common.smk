# Shared helpers: the resolved config, wildcard constraints, target lists, src inputs.
import os
import time
import uuid
from pathlib import Path

from unlearn_repro import config as params_config
from unlearn_repro import hub, hub_check
from unlearn_repro.data.registry import check_mirror
from unlearn_repro.methods import METHODS
from unlearn_repro.models.registry import MODELS, tofu_models
from unlearn_repro.report import discussions as discussions_report
from unlearn_repro.report import main as main_report

PROFILE = CFG.profile
# One config route: the jobs compute with exactly what Snakemake resolved (params.yaml, the profile,
# --configfile and --config). The resolved values go to a content-addressed file that every job reads
# through UNLEARN_CONFIG; the rerun triggers are the same values, declared as each rule's params.
os.environ.update(UNLEARN_CONFIG=str(params_config.write_resolved(CFG, ".snakemake/unlearn_config")))
# every job: forked by the run's job server when there is one (torch imported once), else its own process
CLI = "python -m unlearn_repro.job"
# one id for all runs of this invocation: MLflow groups them by the `pipeline_run` tag
os.environ.setdefault("UNLEARN_PIPELINE_RUN", time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
# CPU numerics pinned to the AVX2 code path for every job of a CPU profile (the same bits on any x86 CPU;
# GPU profiles run native; UNLEARN_NUMERICS=native turns it off): docs/determinism.md
from unlearn_repro import numerics

os.environ.update(numerics.job_env(CFG.device, os.environ))

TASKS = list(CFG.data.tasks)
MODEL_NAMES = list(CFG.models)
METHOD_NAMES = list(CFG.methods.enabled)
SEEDS = list(CFG.seeds)
# Each profile has its own output roots (and MLflow experiment): a ci smoke run never makes an
# embedded run's outputs stale, and the other way round.
PROCESSED = f"{CFG.data.processed_dir}/{PROFILE}"


def R(path):
    """A result path under this profile's root: results/<profile>/<path>."""
    return f"results/{PROFILE}/{path}"


def L(path):
    """A log path under this profile's root: logs/<profile>/<path>."""
    return f"logs/{PROFILE}/{path}"


REFERENCE = CFG.data.reference_corpus
PRETRAIN_CORPUS = hub.PRETRAIN_CORPUS
# the text corpora this profile prepares: the exposure reference, and WikiText-2 only for tiny models (hub
# models come pretrained); the same list `download` and `check-hub` fetch and check
CORPORA = sorted(set(hub.needed_datasets(CFG)) - set(TASKS))
if CFG.data.source == "mirror":  # fail before any job runs (and before any prepared data is touched)
    check_mirror(CFG.data.mirror_dir, TASKS + CORPORA)
ENV_FILE = "../environment.yml"  # the pinned environment every rule runs in (`--sdm conda` builds it)
# the exposure reference: a prepared corpus folder, or `heldout` (each task's rows never trained on)
REFERENCE_ARG = "heldout" if REFERENCE == "heldout" else f"{PROCESSED}/{REFERENCE}"
REFERENCE_INPUT = [] if REFERENCE == "heldout" else [f"{PROCESSED}/{REFERENCE}/test.jsonl"]


wildcard_constraints:
    dataset="|".join(sorted(set(TASKS) | set(CORPORA))),
    model="|".join(dict.fromkeys(MODEL_NAMES + tofu_models(CFG))),  # + a released TOFU checkpoint (tofu.smk)
    method="|".join(METHOD_NAMES),
    seed=r"\d+",


def src(*parts):
    """Source files a rule runs (Snakemake does not track imported code by itself)."""
    root = Path("src/unlearn_repro")
    files = []
    for p in parts:
        files += sorted(str(f) for f in (root / p).rglob("*.py")) if (root / p).is_dir() else [str(root / p)]
    return files


CORE_SRC = src("config.py", "frozen.py", "io.py", "cli.py", "tracking.py", "registry.py", "progress.py", "hub.py", "gpus.py")


def needs_tokenizer(model):
    return MODELS.get(model).is_tiny and CFG.tokenizer.kind == "trained"


def task_dirs(tasks):
    """TASK=DIR of each task's prepared data: a command's `tasks` argument (commands.TASKS)."""
    return " ".join(f"{t}={PROCESSED}/{t}" for t in tasks)


def data_files(dataset):
    """A prepared data set: train, test, heldout (rows never trained on) and meta.json."""
    return multiext(f"{PROCESSED}/{dataset}/", "train.jsonl", "test.jsonl", "heldout.jsonl", "meta.json")


def gpu_resources(wildcards):
    return 1 if PROFILE == "paper" else 0


# Host memory (MB) and time (minutes) of the CPU-only jobs, by kind, at paper scale: what SLURM is asked for
# (profiles/slurm puts these jobs on its CPU partition and the model jobs on its GPU one; locally they bound
# jobs only under `--resources mem_mb=N`). data: the largest hub corpora (ECtHR, Enron) read and normalized;
# weights: the discussions' report reads one weight snapshot per method.
CPU_JOBS = {"small": (2000, 15), "report": (4000, 30), "data": (16000, 120), "weights": (16000, 60)}


def cpu_mem_mb(kind):
    """`mem_mb` of a CPU-only rule of this kind (CPU_JOBS)."""
    return CPU_JOBS[kind][0]


def cpu_runtime(kind):
    """`runtime` (minutes) of a CPU-only rule of this kind (CPU_JOBS)."""
    return CPU_JOBS[kind][1]


# the torch CPU threads of a job that runs a model (params `threads`; the paper profile's GPU jobs use 8 for
# Fisher Forgetting's CPU eigendecompositions): Snakemake reserves them locally, SLURM as cpus-per-task
MODEL_THREADS = CFG.threads


# Local multi-GPU runs: `--resources gpu=N` lets N GPU jobs run at once; each takes its own device (a slot
# lock, then CUDA_VISIBLE_DEVICES; src/unlearn_repro/gpus.py). SLURM jobs get theirs from the scheduler.
_GPUS = workflow.global_resources.get("gpu")
os.environ.update(UNLEARN_GPU_SLOTS=str(int(getattr(_GPUS, "value", _GPUS) or 0)))
os.environ.setdefault("UNLEARN_GPU_LOCKS", str(Path(".snakemake/gpu_slots").resolve()))


def method_params(method):
    """What defines a method's runs, as its file declares it: a change here reruns exactly its jobs."""
    return METHODS.get(method).params(CFG)

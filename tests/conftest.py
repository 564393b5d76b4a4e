import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MIRROR = (ROOT / PARAMS["data"]["mirror_dir"]).resolve()
BIN = Path(sys.executable).parent  # snakemake, dvc of this environment
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def pipeline_workspace(tmp: Path, mirror: Path, copy_src: bool = False) -> Path:
    """A copy of the pipeline (Snakefile, rules, schemas, profiles, ...) in `tmp` running the `ci` profile on
    `mirror`; src/ is linked, or copied where a test adds a file to it."""
    for name in ("Snakefile", "rules", "schemas", "profiles", "environment.yml", "report_captions"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp / name)
    if copy_src:
        shutil.copytree(ROOT / "src", tmp / "src", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        (tmp / "src").symlink_to(ROOT / "src")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "ci"
    params["data"]["mirror_dir"] = str(mirror)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


LONG_FIRST = ("integration", "drills", "workflow")  # tests/<folder>: files running Snakemake DAGs


def pytest_collection_modifyitems(config, items):
    """The files that run Snakemake DAGs first, the integration DAG first of all: under `make test` (xdist,
    --dist loadfile --no-loadscope-reorder) a worker takes the next file when it is free, so a long file
    handed out last ran alone on one worker while the other idled (10.2 min against 7.3)."""

    def rank(item) -> int:
        folder = Path(str(item.path)).relative_to(ROOT / "tests").parts[0]
        return LONG_FIRST.index(folder) if folder in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: collection order within a folder


def pytest_configure(config):
    """Under pytest-xdist (`make test`: one worker per core) each worker computes on one torch thread, so the
    workers do not oversubscribe the cores (tiny models run several times slower on contended threads). Tests
    that need a thread count set it themselves; subprocesses and Snakemake jobs set theirs as before."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _torch_threads():
    """Every test starts with the thread count the run set: one that runs the CLI in-process (which sets its
    job's count: 8 under the paper profile) leaves torch's as it found it, not 8 threads on a 2-core machine
    for the tests after it."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    yield
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.skip(f"offline data mirror {MIRROR} not found (data.mirror_dir)")
    return MIRROR


@pytest.fixture
def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from unlearn_repro.models.tokenizers import train_bpe

    texts = ["the quick brown fox jumps over the lazy dog"] * 50 + [
        "unlearning removes data from models"
    ] * 50
    return train_bpe(texts, 300)


@pytest.fixture
def tiny_model_and_batches(tiny_tokenizer):
    """A 4-layer tiny GPT-Neo (random init) and a few short token batches."""
    import torch

    from unlearn_repro.models.build import build_model
    from unlearn_repro.models.tokenizers import encode

    torch.manual_seed(0)
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
    seqs = [
        encode(tiny_tokenizer, t)
        for t in [
            "the quick brown fox",
            "unlearning removes data",
            "the lazy dog jumps",
            "models forget data",
            "brown dog",
        ]
    ]
    return model, [[s] for s in seqs], tiny_tokenizer.pad_token_id

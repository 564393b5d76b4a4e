import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MIRROR = (ROOT / PARAMS["data"]["mirror_dir"]).resolve()

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
    texts = ["the quick brown fox jumps over the lazy dog"] * 50 + ["unlearning removes data from models"] * 50
    return train_bpe(texts, 300)


@pytest.fixture
def tiny_model_and_batches(tiny_tokenizer):
    """A 4-layer tiny GPT-Neo (random init) and a few short token batches."""
    import torch
    from unlearn_repro.models.build import build_model
    from unlearn_repro.models.tokenizers import encode
    torch.manual_seed(0)
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=0)
    seqs = [encode(tiny_tokenizer, t) for t in ["the quick brown fox", "unlearning removes data",
                                                "the lazy dog jumps", "models forget data", "brown dog"]]
    return model, [[s] for s in seqs], tiny_tokenizer.pad_token_id

"""One builder for tiny and hub models; the hub path is exercised on a local folder in the hub's format."""

import dataclasses

import torch

from unlearn_repro.models import checkpoint
from unlearn_repro.models.build import build_model, n_params
from unlearn_repro.models.registry import MODELS
from unlearn_repro.models.tokenizers import from_hub


def test_tiny_models_are_small_and_seeded(tiny_tokenizer):
    for name in ("tiny-gpt-neo", "tiny-opt"):
        a, b = build_model(name, tiny_tokenizer, seed=3), build_model(name, tiny_tokenizer, seed=3)
        assert n_params(a) < 1_000_000
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
        assert a.config.vocab_size == len(tiny_tokenizer)


def test_hub_path_loads_a_checkpoint_in_the_hubs_format(tiny_tokenizer, tmp_path, monkeypatch):
    tiny = build_model("tiny-opt", tiny_tokenizer, seed=0)
    tiny.save_pretrained(tmp_path / "hub-model")  # what the hub serves: config + safetensors
    tiny_tokenizer.save_pretrained(tmp_path / "hub-model")
    spec = dataclasses.replace(MODELS.get("opt-125m"), hub_id=str(tmp_path / "hub-model"))
    monkeypatch.setitem(MODELS._items, "opt-125m", spec)
    tok = from_hub(spec.hub_id, spec.family)
    model = build_model("opt-125m", tok)
    assert tok._unlearn_add_bos and torch.equal(
        model.model.decoder.embed_tokens.weight, tiny.model.decoder.embed_tokens.weight
    )


def test_checkpoint_round_trip_with_provenance(tiny_tokenizer, tmp_path):
    model = build_model("tiny-gpt-neo", tiny_tokenizer, seed=1)
    tiny_tokenizer._unlearn_add_bos = False
    checkpoint.save(model, tiny_tokenizer, tmp_path / "ckpt", {"stage": "test", "params": {"lr": 1}})
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    loaded, tok, meta = checkpoint.load(tmp_path / "ckpt")
    assert meta["stage"] == "test" and meta["git_commit"] and not meta["add_bos"]
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind

"""Tokenizer, pretrained base model (tiny: pretrain on WikiText-2; hub: download) and the fine-tuned
base model per task data set (the model trained on the full D, which unlearning starts from)."""

from __future__ import annotations

import time
from pathlib import Path

from unlearn_repro.data.encoding import split_sequences
from unlearn_repro.hub import model_source
from unlearn_repro.io import atomic_dir, file_hash, read_jsonl
from unlearn_repro.models import checkpoint, tokenizers
from unlearn_repro.models.build import build_model, n_params, pick_device
from unlearn_repro.models.registry import MODELS
from unlearn_repro.pipeline import open_checkpoint
from unlearn_repro.train import Recipe, train


def make_tokenizer(cfg, corpus_dir: str | Path, out: str | Path) -> None:
    """Fit the byte-level BPE of the tiny models on the pretraining corpus and save it."""
    texts = [r["text"] for r in read_jsonl(Path(corpus_dir) / "train.jsonl")]
    tok = tokenizers.train_bpe(texts, cfg.tokenizer.vocab_size)
    with atomic_dir(out) as tmp:
        tok.save_pretrained(tmp)


def load_tokenizer(cfg, model_name: str, tokenizer_dir: str | Path | None):
    spec = MODELS.get(model_name)
    if spec.is_tiny:
        if cfg.tokenizer.kind == "trained":
            import transformers  # here, not at the top: the DAG build imports this module (report/tdec.py)

            return transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
        folder = Path(cfg.data.mirror_dir) / "tokenizers" / ("opt" if spec.family == "opt" else "gpt2")
        return tokenizers.from_vocab_files(folder, spec.family)
    src = model_source(cfg, model_name)
    return tokenizers.from_hub(src.path, spec.family, src.revision)


def base_model(cfg, model_name: str, corpus_dir: str | Path, tokenizer_dir, out: str | Path, tracker) -> dict:
    """The pre-fine-tuning model: tiny ones pretrained here on WikiText-2, hub ones as published (no corpus:
    `corpus_dir` is then unused)."""
    spec = MODELS.get(model_name)
    device = pick_device(cfg.device)
    tok = load_tokenizer(cfg, model_name, tokenizer_dir)
    source = None if spec.is_tiny else model_source(cfg, model_name)
    model = build_model(model_name, tok, seed=0, source=source).to(device)
    stats: dict = {"wall_time_s": 0.0}
    meta = {
        "model": model_name,
        "hub_id": spec.hub_id,
        "source": str(source) if source else None,
        "n_params": n_params(model),
        "stage": "pretrained",
    }
    if spec.is_tiny:
        train_file = Path(corpus_dir) / "train.jsonl"
        seqs = _chunk_corpus(tok, [r["text"] for r in read_jsonl(train_file)], cfg.data.max_length)
        if cfg.pretrain.max_sequences is not None:
            seqs = seqs[: cfg.pretrain.max_sequences]
        stats = train(
            model,
            seqs,
            Recipe.from_config(cfg.pretrain, cfg, seed=0),
            pad_id=tok.pad_token_id,
            device=device,
            resume_dir=Path(str(out) + ".resume"),
            desc=f"pretrain {model_name}",
        )
        meta.update(
            params={"pretrain": cfg.pretrain.to_dict(), "tokenizer": cfg.tokenizer.to_dict()},
            data_hashes={str(train_file): file_hash(train_file)},
            train_stats=stats,
        )
    checkpoint.save(model, tok, out, meta)
    tracker.log_run(
        f"pretrain/{model_name}",
        meta.get("params", {}),
        {
            "wall_time_s": stats["wall_time_s"],
            "final_loss": stats.get("final_loss", float("nan")),
            "n_params": meta["n_params"],
        },
        {"stage": "pretrain", "model": model_name, "seed": "0"},
        {"epoch_loss": stats.get("epoch_losses", [])},
        artifacts=[Path(out) / "meta.json"],
    )
    return meta


def _chunk_corpus(tok, texts: list[str], length: int) -> list[list[int]]:
    """The corpus as one token stream cut into sequences of `length` tokens (bos first where used)."""
    stream = []
    for t in texts:
        stream.extend(tok(t, add_special_tokens=False)["input_ids"])
        stream.append(tok.eos_token_id)
    bos = tokenizers.bos_ids(tok)
    width = length - len(bos)
    return [bos + stream[i : i + width] for i in range(0, len(stream) - width + 1, width)]


def finetune(
    cfg, model_name: str, dataset: str, pretrained: str | Path, data_dir: str | Path, out: str | Path, tracker
) -> dict:
    """Fine-tune the pretrained model on the full training set D of one task."""
    model, tok, _, device = open_checkpoint(cfg, pretrained)
    data_dir = Path(data_dir)
    seqs = split_sequences(tok, data_dir, "train", cfg.data.max_length)
    start = time.perf_counter()
    stats = train(
        model,
        seqs,
        Recipe.from_config(cfg.finetune, cfg, seed=0),
        pad_id=tok.pad_token_id,
        device=device,
        resume_dir=Path(str(out) + ".resume"),
        desc=f"finetune {model_name} on {dataset}",
    )
    meta = {
        "model": model_name,
        "dataset": dataset,
        "stage": "finetuned",
        "train_stats": stats,
        "params": {"finetune": cfg.finetune.to_dict(), "max_length": cfg.data.max_length},
        "data_hashes": {str(data_dir / "train.jsonl"): file_hash(data_dir / "train.jsonl")},
        "n_train": len(seqs),
        "wall_time_s": time.perf_counter() - start,
    }
    checkpoint.save(model, tok, out, meta)
    tracker.log_run(
        f"finetune/{dataset}/{model_name}",
        meta["params"],
        {"wall_time_s": stats["wall_time_s"], "final_loss": stats["final_loss"]},
        {"stage": "finetune", "dataset": dataset, "model": model_name, "seed": "0"},
        {"epoch_loss": stats["epoch_losses"]},
        artifacts=[Path(out) / "meta.json"],
    )
    return meta

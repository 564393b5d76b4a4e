"""Unintended memorization (paper §6): continue training the pretrained model on a corpus (MT, Enron)
until it memorizes, pick long training texts as targets, unlearn them once with every enabled method
(D+ = the rest of the corpus, through pipeline.unlearning.run) and count how many targets each model
still reproduces from a 10-token prefix (Table 8). The study's settings live in params `memorization`;
`study_config` maps them onto the keys the shared code reads (training recipe, sequence length, one
cycle: the targets split, which records its own size), so the methods run unchanged."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from unlearn_repro.data.encoding import split_sequences
from unlearn_repro.data.segments import prepare_segmented
from unlearn_repro.frozen import Frozen, overlay
from unlearn_repro.io import file_hash, read_json, read_jsonl, write_json
from unlearn_repro.methods import METHODS
from unlearn_repro.metrics.verbatim import score_samples, shared_ngram_counts
from unlearn_repro.models import checkpoint
from unlearn_repro.models.checkpoint import tokenizer_of
from unlearn_repro.models.tokenizers import encode
from unlearn_repro.pipeline import open_checkpoint
from unlearn_repro.pipeline.unlearning import run
from unlearn_repro.progress import progress
from unlearn_repro.tracking import StudyTracker
from unlearn_repro.train import Recipe, train

NO_UNLEARNING = "none"  # the method name of the memorized model's own row (Table 8: "No unlearning")


def study_config(cfg) -> Frozen:
    """The params the shared code sees in this study: the memorization recipe is the base model's recipe
    (a method that repeats the base model's training, retraining, takes its epochs; the finetuning baseline
    uses its rate), sequences are `max_length` tokens, and unlearning is one cycle (no extended cycles) of
    the targets split (targets), which records how many targets it holds."""
    m = cfg.memorization
    repeats = {
        name: {METHODS.get(name).base_epochs_key: m.train.epochs}
        for name in METHODS.names()
        if METHODS.get(name).base_epochs_key
    }
    one_cycle = {"table_cycles": [1], "max_cycles": 1, "extended_datasets": [], "extended_models": []}
    return overlay(
        cfg,
        {
            "data": {"max_length": m.max_length},
            "finetune": m.train.to_dict(),
            "methods": repeats,
            "unlearn": one_cycle,
        },
    )


def prepare(cfg, corpus: str, out: str | Path) -> dict:
    m = cfg.memorization
    return prepare_segmented(corpus, cfg, m.max_texts, m.segment_words, out, m.max_segments)


def _sequences(scfg, tok, data_dir):
    return split_sequences(tok, data_dir, "train", scfg.data.max_length)


def memorize(
    cfg, model_name: str, corpus: str, pretrained: str | Path, data_dir: str | Path, out: str | Path, tracker
) -> dict:
    """The memorizing base model: the pretrained model trained `memorization.train.epochs` more epochs on
    every segment of the corpus (paper: 15 extra epochs)."""
    scfg = study_config(cfg)
    model, tok, _, device = open_checkpoint(scfg, pretrained)
    seqs = _sequences(scfg, tok, data_dir)
    stats = train(
        model,
        seqs,
        Recipe.from_config(scfg.finetune, scfg, seed=0),
        pad_id=tok.pad_token_id,
        device=device,
        resume_dir=Path(str(out) + ".resume"),
        desc=f"memorize {corpus} {model_name}",
    )
    train_file = Path(data_dir) / "train.jsonl"
    meta = {
        "model": model_name,
        "dataset": corpus,
        "stage": "memorized",
        "train_stats": stats,
        "params": {"train": cfg.memorization.train.to_dict(), "max_length": scfg.data.max_length},
        "data_hashes": {str(train_file): file_hash(train_file)},
        "n_train": len(seqs),
    }
    checkpoint.save(model, tok, out, meta)
    tracker.log_run(
        f"memorize/{corpus}/{model_name}",
        meta["params"],
        {"wall_time_s": stats["wall_time_s"], "final_loss": stats["final_loss"], "n_train": len(seqs)},
        {"stage": "memorize", "dataset": corpus, "model": model_name, "seed": "0"},
        {"epoch_loss": stats["epoch_losses"]},
        artifacts=[Path(out) / "meta.json"],
    )
    return meta


def choose_targets(lengths, n: int, min_tokens: int, seed: int) -> list[int]:
    """`n` seeded indices among the sequences longer than `min_tokens` tokens (paper: 128 texts with more
    than 200 tokens); fewer when fewer are that long."""
    eligible = np.flatnonzero(np.asarray(lengths) > min_tokens)
    pick = np.random.default_rng(seed).permutation(eligible)[:n]
    return sorted(int(i) for i in pick)


def targets(
    cfg, corpus: str, model_dir: str | Path, data_dir: str | Path, seed: int, out: str | Path
) -> dict:
    """The seed's target texts as a one-cycle split file (pipeline.unlearning reads `cycles`)."""
    m = cfg.memorization
    scfg = study_config(cfg)
    tok, _ = tokenizer_of(model_dir)
    seqs = _sequences(scfg, tok, data_dir)
    need = m.prefix_tokens + m.suffix_tokens
    if m.min_target_tokens < need:
        raise ValueError(
            f"memorization.min_target_tokens = {m.min_target_tokens} is shorter than prefix_tokens + "
            f"suffix_tokens = {need}: a target must hold its prefix and its L tokens"
        )
    chosen = choose_targets([len(s) for s in seqs], m.n_targets, m.min_target_tokens, seed)
    if not chosen:
        raise ValueError(
            f"{data_dir}: no segment is longer than memorization.min_target_tokens = "
            f"{m.min_target_tokens} tokens (max_length {scfg.data.max_length})"
        )
    if len(chosen) < m.n_targets:
        print(
            f"[targets] only {len(chosen)} segments are longer than {m.min_target_tokens} tokens "
            f"(asked for {m.n_targets})",
            flush=True,
        )

    # segments over the input limit lose their start (data.encoding keeps a row's end): say how many
    truncated = sum(
        len(encode(tok, r["text"])) > scfg.data.max_length for r in read_jsonl(Path(data_dir) / "train.jsonl")
    )
    if truncated:
        print(
            f"[targets] {truncated} of {len(seqs)} segments exceed max_length {scfg.data.max_length} tokens "
            "(lower memorization.segment_words to keep every segment whole)",
            flush=True,
        )
    split = {
        "dataset": corpus,
        "seed": seed,
        "n_train": len(seqs),
        "cycle_size": len(chosen),
        "min_target_tokens": m.min_target_tokens,
        "truncated_segments": truncated,
        "cycles": [chosen],
    }
    write_json(out, split)
    return split


def extract(model, tok, seqs, target_ids: list[int], m, seed: int, device) -> list[dict]:
    """The extraction test: each target's first `prefix_tokens` tokens, `samples` top-k samples of
    `suffix_tokens` tokens each, scored against the true continuation. One `generate` call per batch of
    prefixes (every prefix has the same length: no padding), seeded."""
    p, L = m.prefix_tokens, m.suffix_tokens
    torch.manual_seed(seed)
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = []
    batches = [
        target_ids[i : i + m.generate_batch_size] for i in range(0, len(target_ids), m.generate_batch_size)
    ]
    for batch in progress(batches, total=len(batches), desc="extraction"):
        prefixes = torch.tensor([seqs[i][:p] for i in batch], dtype=torch.long, device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=prefixes,
                attention_mask=torch.ones_like(prefixes),
                do_sample=True,
                top_k=m.top_k,
                num_return_sequences=m.samples,
                max_new_tokens=L,
                min_new_tokens=L,
                pad_token_id=pad,
            )
        gen = out[:, p:].reshape(len(batch), m.samples, -1).cpu().numpy()
        for j, i in enumerate(batch):
            rows.append({"index": i, **score_samples(gen[j], seqs[i][p : p + L], L)})
    return rows


def _summary(rows: list[dict]) -> dict:
    return {
        "n_targets": len(rows),
        "memorized": int(sum(r["memorized"] for r in rows)),
        "mean_match_length": float(np.mean([r["match_length"] for r in rows])),
        "mean_overlap": float(np.mean([r["overlap"] for r in rows])),
    }


def _open(cfg, model_dir, data_dir):
    """(model, tokenizer, device, encoded segments) of a checkpoint and the corpus."""
    scfg = study_config(cfg)
    model, tok, _, device = open_checkpoint(scfg, model_dir)
    return model, tok, device, _sequences(scfg, tok, data_dir)


def _extract_and_write(
    cfg, opened, split_file, out, seed: int, info: dict, tracker, runtime_s=None, extra=None
) -> dict:
    """The extraction test of the split's targets on an opened model; `extra(tok, seqs, rows)` returns the
    result's `targets` with more columns (and any other keys) before the one write."""
    m = cfg.memorization
    model, tok, device, seqs = opened
    target_ids = read_json(split_file)["cycles"][0]
    start = time.perf_counter()
    rows = extract(model, tok, seqs, target_ids, m, seed, device)
    summary = {
        **info,
        "seed": seed,
        **_summary(rows),
        "runtime_s": runtime_s,
        "extraction_s": time.perf_counter() - start,
        "settings": {
            k: m[k] for k in ("prefix_tokens", "suffix_tokens", "top_k", "samples", "min_target_tokens")
        },
    }
    result = {**summary, "targets": rows} if extra is None else {**summary, **extra(tok, seqs, rows)}
    write_json(out, result)
    metrics = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tracker.log_run(
        f"memorization/{info['method']}/{info['dataset']}/{info['model']}/seed{seed}",
        summary["settings"],
        metrics,
        {
            "stage": "memorization",
            "dataset": info["dataset"],
            "model": info["model"],
            "method": info["method"],
            "seed": str(seed),
        },
        {"match_length": [r["match_length"] for r in rows]},
        artifacts=[out],
    )
    print(
        f"[memorization] {info['method']} {info['dataset']} {info['model']} seed {seed}: "
        f"{summary['memorized']}/{len(rows)} memorized",
        flush=True,
    )
    return result


def near_duplicates(cfg, tok, seqs, target_ids: list[int], source_of: list[str]) -> list[dict]:
    """§6.4: for each target's extracted window (prefix + L tokens), how many other segments share an
    n-gram of `memorization.ngram` tokens with it (other texts' segments, and all), and its closest other
    segment (most shared n-grams) as text, for Table 10."""
    m = cfg.memorization
    windows = [seqs[i][: m.prefix_tokens + m.suffix_tokens] for i in target_ids]
    counts = shared_ngram_counts(windows, seqs, m.ngram)
    rows = []
    for t, i in enumerate(target_ids):
        c = counts[t].copy()
        c[i] = 0  # itself
        other_text = np.array([s != source_of[i] for s in source_of])
        closest = int(np.argmax(c))
        rows.append(
            {
                "index": i,
                "near_duplicates": int((c > 0).sum()),
                "near_duplicates_other_texts": int(((c > 0) & other_text).sum()),
                "closest": closest,
                "closest_shared_ngrams": int(c[closest]),
                "window_ngrams": max(len(windows[t]) - m.ngram + 1, 0),
                "text": tok.decode(windows[t], skip_special_tokens=True),
                "closest_text": tok.decode(seqs[closest], skip_special_tokens=True) if c[closest] else "",
            }
        )
    return rows


def base_extraction(
    cfg, corpus: str, model_name: str, seed: int, model_dir, data_dir, split_file, out, tracker
) -> dict:
    """Table 8's "No unlearning" row: the memorized model itself (the premise), with each target's
    near-duplicates in the corpus (Table 10)."""
    sources = [r.get("source", r["id"]) for r in read_jsonl(Path(data_dir) / "train.jsonl")]

    def with_duplicates(tok, seqs, rows):
        dups = near_duplicates(cfg, tok, seqs, [r["index"] for r in rows], sources)
        return {"targets": [{**r, **d} for r, d in zip(rows, dups)], "ngram": cfg.memorization.ngram}

    return _extract_and_write(
        cfg,
        _open(cfg, model_dir, data_dir),
        split_file,
        out,
        seed,
        {"dataset": corpus, "model": model_name, "method": NO_UNLEARNING, "label": "No Unlearning"},
        tracker,
        extra=with_duplicates,
    )


def unlearn_extraction(
    cfg,
    method: str,
    corpus: str,
    model_name: str,
    seed: int,
    memorized,
    pretrained,
    data_dir,
    split_file,
    out_dir,
    tracker,
    *,
    hooks=(),
    wrappers=(),
) -> dict:
    """Unlearn the targets once with `method` (D+ = every other segment), then the extraction test.
    `hooks` / `wrappers`: a caller's train hooks and model wrappers (pipeline.unlearning.run)."""
    out_dir = Path(out_dir)
    summary = run(
        study_config(cfg),
        dataset=corpus,
        model_name=model_name,
        method=method,
        seed=seed,
        finetuned=memorized,
        pretrained=pretrained,
        data_dir=data_dir,
        split_file=split_file,
        out_dir=out_dir,
        tracker=StudyTracker(tracker, "memorization", _unlearn_tags),
        hooks=hooks,
        wrappers=wrappers,
    )
    runtime = summary["cycles"][0]["runtime_s"]
    result = _extract_and_write(
        cfg,
        _open(cfg, out_dir / "checkpoints" / "cycle1", data_dir),
        split_file,
        out_dir / "extraction.json",
        seed,
        {
            "dataset": corpus,
            "model": model_name,
            "method": method,
            "label": summary["label"],
            "diverged": bool(summary["cycles"][0].get("diverged")),
        },
        tracker,
        runtime_s=runtime,
    )
    shutil.rmtree(
        out_dir / "checkpoints", ignore_errors=True
    )  # models are not kept: the counts are the result
    return result


def _unlearn_tags(tags: dict) -> dict:
    """The unlearning run's MLflow tags as this study's (stage `memorization_unlearn`), so the main study's
    runs (stage `unlearn`) stay exactly the main study's."""
    return {**tags, "stage": "memorization_unlearn"}

"""Extraction likelihood EL_n and memorization accuracy MA (FLoRA paper Appendix B, Jang et al. 2023).

Pure functions on token arrays (`el_n`, `memorization_accuracy`, `ngram_overlap`) and the batched model
passes that feed them: one teacher-forced forward gives every greedy next-token prediction (MA); EL_n needs
a greedy continuation from every prefix length, which `greedy_continuations` decodes for many (row, prefix)
pairs at once, left-padded, with the KV cache (no per-prefix `generate` loop)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unlearn_repro.batches import collate, pad_left


def ngrams(seq: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def ngram_overlap(generated: Sequence[int], truth: Sequence[int], n: int) -> float:
    """OVERLAP_n(a, b) (Eq. 6): the share of a's n-grams that occur among b's n-grams (0 when a has none)."""
    grams = ngrams(list(generated), n)
    if not grams:
        return 0.0
    truth_grams = set(ngrams(list(truth), n))
    return sum(g in truth_grams for g in grams) / len(grams)


def prefix_lengths(length: int, n: int) -> range:
    """The prefix lengths EL_n averages over: 1 .. T-n, so every true suffix has at least n tokens."""
    return range(1, length - n + 1)


def el_n(row: Sequence[int], continuations: Sequence[Sequence[int]], n: int) -> float:
    """EL_n(x) (Eq. 7): mean over prefix lengths t = 1..T-n of OVERLAP_n(f(x_<=t), x_>t), where
    continuations[t-1] is the model's greedy continuation of the first t tokens, as long as the true rest."""
    row = list(row)
    ts = prefix_lengths(len(row), n)
    if len(continuations) != len(ts):
        raise ValueError(
            f"el_n: {len(continuations)} continuations for a row of {len(row)} tokens (need {len(ts)})"
        )
    if not len(ts):
        return 0.0
    return float(np.mean([ngram_overlap(c, row[t:], n) for t, c in zip(ts, continuations)]))


def memorization_accuracy(row: Sequence[int], predictions: Sequence[int]) -> float:
    """MA(x) (Eq. 8): share of positions 2..T whose greedy next-token prediction from x_<t is x_t;
    predictions[i] is the argmax after the first i+1 tokens (T-1 of them)."""
    row = list(row)
    if len(predictions) != len(row) - 1:
        raise ValueError(
            f"memorization_accuracy: {len(predictions)} predictions for a row of {len(row)} tokens"
        )
    return float(np.mean([p == x for p, x in zip(predictions, row[1:])])) if len(row) > 1 else 0.0


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def greedy_predictions(
    model, rows: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> list[list[int]]:
    """Teacher-forced argmax next tokens of every row: out[i][j] follows
    rows[i][:j+1] (right-padded batches)."""
    was_training, out, dev = model.training, [], _device(model)
    model.eval()
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        batch = collate([list(r) for r in chunk], pad_id, dev)
        pred = (
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            .logits.argmax(-1)
            .cpu()
        )
        out += [pred[i, : len(r) - 1].tolist() for i, r in enumerate(chunk)]
    model.train(was_training)
    return out


@torch.no_grad()
def greedy_continuations(
    model, prompts: Sequence[Sequence[int]], lengths: Sequence[int], pad_id: int, batch_size: int = 256
) -> list[list[int]]:
    """Greedy continuation of each prompt, lengths[i] tokens long. Prompts are left-padded with position ids
    counted from each prompt's first real token and decoded together with the KV cache; they are batched
    in order of their continuation length so a batch decodes no more steps than its longest member."""
    was_training, dev = model.training, _device(model)
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    out: list[list[int]] = [[] for _ in prompts]
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        steps = max(lengths[i] for i in idx)
        ids, mask = pad_left([prompts[i] for i in idx], pad_id, dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        generated = []
        for step in range(steps):
            nxt = res.logits[:, -1].argmax(-1)
            generated.append(nxt)
            if step + 1 == steps:
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            res = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=pos,
                past_key_values=res.past_key_values,
                use_cache=True,
            )
        gen = torch.stack(generated, dim=1).cpu()
        for j, i in enumerate(idx):
            out[i] = gen[j, : lengths[i]].tolist()
    model.train(was_training)
    return out


def extraction_scores(
    model, rows: Sequence[Sequence[int]], pad_id: int, n: int = 10, batch_size: int = 256, el: bool = True
) -> dict:
    """Mean EL_n and MA over `rows` (and per row): every prefix of every row continued in one batched decode
    (el=False: MA only, one forward pass)."""
    ma = [memorization_accuracy(row, p) for row, p in zip(rows, greedy_predictions(model, rows, pad_id))]
    if not el:
        return {"ma": float(np.mean(ma)), "ma_rows": ma}
    prompts, lengths, owner = [], [], []
    for r, row in enumerate(rows):
        for t in prefix_lengths(len(row), n):
            prompts.append(list(row[:t]))
            lengths.append(len(row) - t)
            owner.append(r)
    conts = greedy_continuations(model, prompts, lengths, pad_id, batch_size) if prompts else []
    per_row: list[list] = [[] for _ in rows]
    for r, c in zip(owner, conts):
        per_row[r].append(c)
    el = [el_n(row, per_row[r], n) for r, row in enumerate(rows)]
    return {f"el{n}": float(np.mean(el)), "ma": float(np.mean(ma)), f"el{n}_rows": el, "ma_rows": ma}


def forgotten(scores: dict, threshold: dict, n: int = 10) -> bool:
    """The forgetting criterion (§4.1): both EL_n and MA of the forget set at or below the held-out rows'
    values on the model before unlearning. `<=`, not `<`: a small model's held-out EL_n is often exactly 0."""
    return scores[f"el{n}"] <= threshold[f"el{n}"] and scores["ma"] <= threshold["ma"]

"""Collectors: run a model over token sequences in padded batches (no per-token generate loop)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unlearn_repro.batches import collate
from unlearn_repro.metrics import accuracy
from unlearn_repro.metrics.exposure import exposures_by_length
from unlearn_repro.models.tokenizers import encode
from unlearn_repro.progress import progress


@torch.no_grad()
def token_logprobs(
    model,
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    device,
    batch_size: int = 16,
    with_greedy: bool = False,
    last: Sequence[int] | None = None,
):
    """Per sequence: log p(token_t | tokens_<t) for t = 1..len-1 (and the greedy predictions); with `last`,
    only the last `last[i]` of them (an answer after its prompt)."""
    model.eval()
    order = np.argsort([-len(s) for s in seqs], kind="stable")  # similar lengths share a batch
    out, greedy = [None] * len(seqs), [None] * len(seqs)
    starts = range(0, len(seqs), batch_size)
    for start in progress(starts, total=len(starts), desc="score", every_s=60):
        idx = order[start : start + batch_size]
        batch = collate([seqs[i] for i in idx], pad_id, device)
        n = [len(seqs[i]) - 1 for i in idx]
        spans = [(k - (k if last is None else min(last[i], k)), k) for k, i in zip(n, idx)]
        lps, preds = _span_logprobs(model, batch, spans, with_greedy)
        for row, i in enumerate(idx):
            out[i], greedy[i] = lps[row], preds[row]
    return (out, greedy) if with_greedy else out


MIN_GEMM_ROWS = 4  # fewer rows take another kernel (a GEMV) whose sums round differently (test_metrics.py)


def _span_logprobs(model, batch, spans, with_greedy: bool) -> tuple[list, list]:
    """Log-probabilities of the next tokens at positions [a, b) of each row (and the argmax there). Only
    those positions go through the output layer and the normalization over the vocabulary (each as costly
    as a small model's forward): not the padding, not an unread prompt. transformers' `logits_to_keep`, as
    a boolean mask, hands the output layer exactly those rows, in this row-major order. A position's values
    are bit for bit those of the whole padded batch (tests/unit/test_metrics.py): each position is
    normalized on its own, and its logits come from the same GEMM kernel from MIN_GEMM_ROWS rows on (below
    that the whole batch goes through the output layer, as it always did)."""
    ids = batch["input_ids"]
    at, cut = span_positions(spans, ids.shape[1])
    at = torch.from_numpy(at).to(ids.device)
    if len(at) < MIN_GEMM_ROWS:
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
        picked = logits.reshape(-1, logits.shape[-1]).index_select(0, at)
    else:
        keep = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
        keep[at] = True
        picked = model(
            input_ids=ids, attention_mask=batch["attention_mask"], logits_to_keep=keep.view_as(ids)
        ).logits
    return next_token_logprobs(picked.float(), ids, at, cut, with_greedy)  # (positions, vocabulary)


def span_positions(spans, row_len: int) -> tuple[np.ndarray, list[slice]]:
    """The flat (row, position) indices of positions [a, b) of each row of a (rows, row_len) batch, row by
    row, and each row's slice of them."""
    first, width = np.array([a for a, _ in spans]), np.array([b - a for a, b in spans])
    ends = np.concatenate([[0], np.cumsum(width)])
    rows = np.repeat(np.arange(len(spans)), width)
    cols = np.arange(ends[-1]) - np.repeat(ends[:-1] - first, width)  # a, a+1, ..., b-1 for each row
    return rows * row_len + cols, [slice(ends[r], ends[r + 1]) for r in range(len(spans))]


def next_token_logprobs(picked, ids, at, cut, with_greedy: bool) -> tuple[list, list]:
    """Per row (its slice of `cut`): log p of the next token from the logits `picked` at the flat positions
    `at` of the batch `ids`, and the argmax there."""
    target = ids.reshape(-1).index_select(0, at + 1)  # the next token
    lp = torch.log_softmax(picked, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().numpy()
    pred = picked.argmax(-1).cpu().numpy() if with_greedy else None
    return [lp[c] for c in cut], [pred[c] if with_greedy else None for c in cut]


def sequence_nll(model, seqs, pad_id, device, batch_size=16) -> tuple[np.ndarray, np.ndarray]:
    """Total NLL of each sequence and the number of tokens it predicts."""
    lps = token_logprobs(model, seqs, pad_id, device, batch_size)
    return np.array([-lp.sum() for lp in lps]), np.array([len(lp) for lp in lps])


def reference_sequences(
    tokenizer, texts: Sequence[str], n: int, max_length: int, seed: int
) -> list[list[int]]:
    """The sampled set S: `n` texts of the reference corpus drawn without replacement (all if fewer),
    each from its start (like the samples), at most `max_length` tokens."""
    if not texts:
        raise ValueError("the reference corpus is empty")
    pick = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [encode(tokenizer, texts[i], max_length) for i in sorted(pick)]


def exposures(model, tokenizer, sample_seqs, reference_seqs, device, batch_size=16) -> np.ndarray:
    """Exposure of each sample against the reference windows cut to its length."""
    pad = tokenizer.pad_token_id
    nll, lengths = sequence_nll(model, sample_seqs, pad, device, batch_size)
    ref_lp = token_logprobs(model, reference_seqs, pad, device, batch_size)
    cum = np.full((len(ref_lp), max(len(x) for x in ref_lp)), np.nan)
    for j, lp in enumerate(ref_lp):
        cum[j, : len(lp)] = np.cumsum(-lp)
    return exposures_by_length(nll, lengths, cum, [len(lp) for lp in ref_lp])


def mean_token_nll(model, seqs, pad_id, device, batch_size=16) -> float:
    """Mean per-token NLL over all sequences (test-set utility, finer-grained than accuracy)."""
    lps = token_logprobs(model, seqs, pad_id, device, batch_size)
    return float(-np.concatenate(lps).mean())


def task_accuracy(
    model, tokenizer, rows: list[dict], kind: str, max_length: int, device, batch_size=16
) -> float:
    """Multiple choice: length-normalized log-likelihood of each choice; cloze: greedy last word."""
    pad = tokenizer.pad_token_id
    if kind == "multiple_choice":
        seqs, spans = [], []
        for r in rows:
            for c in r["choices"]:
                cont = tokenizer(c, add_special_tokens=False)["input_ids"][: max_length - 2]
                ctx = encode(tokenizer, r["query"], max_length - len(cont), keep="right")
                seqs.append(ctx + cont)
                spans.append(len(cont))
        lps = token_logprobs(model, seqs, pad, device, batch_size, last=spans)
        per_q, k = [], 0
        for r in rows:
            per_q.append([lps[k + j] for j in range(len(r["choices"]))])
            k += len(r["choices"])
        return accuracy.multiple_choice_accuracy(per_q, [r["gold"] for r in rows])
    if kind == "cloze":
        seqs, targets = [], []
        for r in rows:
            target = tokenizer(" " + r["continuation"], add_special_tokens=False)["input_ids"][
                : max_length - 2
            ]
            ctx = encode(tokenizer, r["context"], max_length - len(target), keep="right")
            seqs.append(ctx + target)
            targets.append(target)
        _, greedy = token_logprobs(
            model, seqs, pad, device, batch_size, with_greedy=True, last=[len(t) for t in targets]
        )
        return float(np.mean([accuracy.last_word_correct(g, t) for g, t in zip(greedy, targets)]))
    raise ValueError(f"no accuracy for rows of kind {kind!r}")

"""Metrics on hand-computed values, and the collectors against a direct computation on a tiny model."""

import itertools
import math

import numpy as np
import pytest
import torch

from unlearn_repro.metrics import accuracy
from unlearn_repro.metrics.collect import exposures, task_accuracy, token_logprobs
from unlearn_repro.metrics.exposure import delta_exposure, exposure, exposures_by_length, rank


def test_exposure_hand_computed():
    refs = np.array([5.0, 7.0, 9.0])  # |S| = 3, so |Q| = 4
    assert rank(6.0, refs) == 2  # one reference (5.0) is more likely
    assert exposure(6.0, refs) == pytest.approx(math.log2(4) - math.log2(2))  # = 1
    assert exposure(1.0, refs) == pytest.approx(2.0)  # most likely: log2 4
    assert exposure(10.0, refs) == pytest.approx(0.0)  # least likely
    assert rank(7.0, refs) == 2  # ties favour the sample


def test_exposures_use_references_of_the_same_length():
    cum = np.array([[1.0, 2.0, 3.0], [0.5, 4.0, 4.5], [2.0, 2.5, 9.0]])  # 3 refs, lengths 1..3
    got = exposures_by_length(np.array([1.5, 3.0]), np.array([1, 3]), cum)
    assert got[0] == pytest.approx(2 - math.log2(3))  # length 1: refs 1.0, 0.5, 2.0 -> 2 lower, rank 3
    assert got[1] == pytest.approx(2 - math.log2(1))  # length 3: refs 3.0, 4.5, 9.0 -> 0 lower
    with pytest.raises(ValueError, match="predicts 4 tokens"):
        exposures_by_length(np.array([1.0]), np.array([4]), cum)
    assert delta_exposure(np.array([3.0, 1.0]), np.array([1.0, 1.0])) == -1.0
    # a reference shorter than the sample is left out: only 2 references reach length 3
    ragged = np.array([[1.0, 2.0, 3.0], [0.5, 4.0, np.nan], [2.0, 2.5, 1.0]])
    assert exposures_by_length(np.array([2.0]), np.array([3]), ragged)[0] == pytest.approx(
        math.log2(3) - math.log2(2)
    )


def test_accuracy_functions():
    lp = [[np.array([-1.0, -1.0]), np.array([-0.5, -3.0, -0.1])], [np.array([-2.0]), np.array([-1.0])]]
    # q1: means -1.0 vs -1.2 -> choice 0; q2: -2 vs -1 -> choice 1
    assert accuracy.choose(lp[0]) == 0
    assert accuracy.multiple_choice_accuracy(lp, [0, 0]) == 0.5
    assert accuracy.last_word_correct([4, 5], [4, 5]) and not accuracy.last_word_correct([4, 6], [4, 5])
    assert accuracy.delta_accuracy(0.50, 0.25) == -25.0


def test_token_logprobs_match_a_direct_forward(tiny_model_and_batches):
    model, batches, pad = tiny_model_and_batches
    seqs = [b[0] for b in batches]
    got = token_logprobs(model, seqs, pad, "cpu", batch_size=2)
    for s, lp in zip(seqs, got):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([s])).logits[0, :-1]
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(s[1:]).unsqueeze(-1)).squeeze(-1)
        assert np.allclose(lp, ref.numpy(), atol=1e-5)


def _whole_batch_logprobs(model, seqs, pad, batch_size):
    """The scorer as it was before positions were gathered: log_softmax over the whole padded batch, then
    each sequence's first len-1 values (the published runs' numbers come from this)."""
    from unlearn_repro.batches import collate

    order = np.argsort([-len(s) for s in seqs], kind="stable")
    out, greedy = [None] * len(seqs), [None] * len(seqs)
    for start in range(0, len(seqs), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([seqs[i] for i in idx], pad, "cpu")
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(idx):
            out[i] = lp[row, : len(seqs[i]) - 1].numpy()
            greedy[i] = logits.argmax(-1)[row, : len(seqs[i]) - 1].numpy()
    return out, greedy


def test_gathered_positions_are_bit_identical_to_the_whole_batch(tiny_model_and_batches):
    """Normalizing only the read positions (no padding, no unread prompt) changes no bit of any value: the
    published numbers stay what they were. Ragged lengths (much padding) and answers of several lengths."""
    model, _, pad = tiny_model_and_batches
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    seqs = [rng.integers(2, vocab, size=int(n)).tolist() for n in rng.integers(2, 60, size=23)]
    last = [int(rng.integers(1, len(s) + 2)) for s in seqs]  # some longer than the sequence: all of it
    for bs in (1, 4, 16):
        ref, ref_greedy = _whole_batch_logprobs(model, seqs, pad, bs)
        full, full_greedy = token_logprobs(model, seqs, pad, "cpu", batch_size=bs, with_greedy=True)
        tail, tail_greedy = token_logprobs(
            model, seqs, pad, "cpu", batch_size=bs, with_greedy=True, last=last
        )
        for i, k in enumerate(last):
            k = min(k, len(seqs[i]) - 1)
            assert full[i].dtype == ref[i].dtype and np.array_equal(full[i], ref[i])  # bit for bit
            assert np.array_equal(full_greedy[i], ref_greedy[i])
            assert np.array_equal(tail[i], ref[i][len(ref[i]) - k :])
            assert np.array_equal(tail_greedy[i], ref_greedy[i][len(ref[i]) - k :])


def _direct_logprobs(model, ids):
    """log p(ids[t] | ids[:t]) for t = 1..len-1 and the greedy argmax at each position, from one
    unbatched, unpadded forward pass of the single sequence."""
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
    return lp.numpy().astype(np.float64), logits.argmax(-1).tolist()


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def _context_plus(tok, context, cont_ids, max_length, keep_end=True):
    """The sequence task_accuracy scores: the context (the tiny tokenizer adds no bos) cut from the left
    to leave room for the continuation, then the continuation (keep_end=False: the wrong cut)."""
    ctx = _ids(tok, context)
    room = max_length - len(cont_ids)
    if len(ctx) > room:
        ctx = ctx[-room:] if keep_end else ctx[:room]
    return ctx + cont_ids


def _choice_scores(model, tok, query, choices, max_length, keep_end=True, reduce=np.mean, extra=0):
    """Per choice: the length-normalized log-likelihood of the choice's tokens given the query, from a
    direct forward pass (the defaults); the other arguments give wrong variants: another reduction,
    the query's start kept by the cut, `extra` context tokens scored with the choice."""
    out = []
    for c in choices:
        cont = _ids(tok, c)[: max_length - 2]
        lp, _ = _direct_logprobs(model, _context_plus(tok, query, cont, max_length, keep_end))
        out.append(float(reduce(lp[len(lp) - len(cont) - extra :])))
    return out


def _best(values, margin=1e-4):
    """argmax, asserting a clear winner so batched-vs-direct float noise cannot flip it."""
    top = np.sort(values)[::-1]
    assert top[0] - top[1] > margin, values
    return int(np.argmax(values))


def _decisive(model, tok, queries, pool, n_choices, max_length, **wrong):
    """The first question (query, choices from pool) whose right pick differs from the pick under the
    wrong scoring, both with a clear margin, with the right pick as gold."""
    for query in queries:
        for choices in itertools.combinations(pool, n_choices):
            right = _choice_scores(model, tok, query, list(choices), max_length)
            other = _choice_scores(model, tok, query, list(choices), max_length, **wrong)
            if min(np.sort(v)[-1] - np.sort(v)[-2] for v in (right, other)) > 1e-3 and np.argmax(
                right
            ) != np.argmax(other):
                return {"query": query, "choices": list(choices), "gold": int(np.argmax(right))}
    raise AssertionError(f"no question on which the scoring {wrong} picks otherwise")


def test_multiple_choice_accuracy_matches_a_direct_forward(tiny_model_and_batches, tiny_tokenizer):
    model, _, _ = tiny_model_and_batches
    tok, L = tiny_tokenizer, 32

    def pick(query, choices, max_length=L):
        return _best(_choice_scores(model, tok, query, choices, max_length))

    right = {"query": "the quick brown", "choices": [" fox", " data"]}
    right["gold"] = pick(right["query"], right["choices"])  # the model's pick: right
    wrong = {"query": "unlearning removes", "choices": [" data", " dog"]}
    wrong["gold"] = 1 - pick(wrong["query"], wrong["choices"])  # the other one: wrong
    three = {"query": "models forget", "choices": [" data", " the", " lazy dog"]}
    three["gold"] = pick(three["query"], three["choices"])  # right, among three
    pool = [
        " fox",
        " data",
        " dog",
        " lazy dog",
        " models",
        " the",
        " removes data",
        " jumps",
        " over the lazy dog",
        " quick brown fox",
    ]
    queries = ["the lazy", "models forget", "jumps over the", "the quick brown"]
    # questions the model gets right only with the length normalization, and only with the choice's own
    # tokens scored (one context token more or less picks otherwise)
    norm = _decisive(model, tok, queries, pool, 2, L, reduce=np.sum)
    span = _decisive(model, tok, queries, pool, 2, L, extra=1)
    multi_token = [c for c in pool if len(_ids(tok, c)) > 1]
    span_short = _decisive(model, tok, queries, multi_token, 2, L, extra=-1)

    for row, want in [
        (right, 1.0),
        (wrong, 0.0),
        (three, 1.0),
        (norm, 1.0),
        (span, 1.0),
        (span_short, 1.0),
        (dict(norm, gold=1 - norm["gold"]), 0.0),
    ]:
        assert task_accuracy(model, tok, [row], "multiple_choice", L, "cpu") == want, row
    assert task_accuracy(model, tok, [right, wrong, norm, three], "multiple_choice", L, "cpu") == 0.75
    assert task_accuracy(model, tok, [right, wrong], "multiple_choice", L, "cpu") == 0.5

    # a short max_length cuts the query from the left (it keeps its end, next to the choice): a question
    # whose pick differs from the one with the query's start kept instead
    long_queries = [
        "the quick brown fox jumps over the lazy",
        "the lazy dog jumps over the quick brown",
        "models forget data from the lazy dog",
    ]
    assert all(len(_ids(tok, q)) > 8 for q in long_queries)  # the cut does happen
    short = _decisive(model, tok, long_queries, pool[:8], 3, 8, keep_end=False)
    assert task_accuracy(model, tok, [short], "multiple_choice", 8, "cpu") == 1.0
    short_wrong = dict(short, gold=(short["gold"] + 1) % 3)
    assert task_accuracy(model, tok, [short, short_wrong], "multiple_choice", 8, "cpu") == 0.5


def test_cloze_accuracy_matches_the_greedy_argmax(tiny_model_and_batches, tiny_tokenizer):
    model, _, _ = tiny_model_and_batches
    tok, L = tiny_tokenizer, 32

    def direct_correct(context, continuation, max_length=L, keep_end=True):
        target = _ids(tok, " " + continuation)[: max_length - 2]
        _, greedy = _direct_logprobs(model, _context_plus(tok, context, target, max_length, keep_end))
        return greedy[-len(target) :] == target

    # a continuation the model predicts greedily: the first context (in a fixed order) whose greedy next
    # token is a word start that round-trips through " " + continuation
    words = "the quick brown fox jumps over lazy dog unlearning removes data from models".split()
    hit = None
    for n in (1, 2, 3):
        for combo in itertools.product(words, repeat=n):
            context = " ".join(combo)
            _, greedy = _direct_logprobs(model, _ids(tok, context) + [0])
            text = tok.decode([greedy[-1]])
            if text.startswith(" ") and len(text) > 1 and _ids(tok, text) == [greedy[-1]]:
                hit = (context, text[1:], greedy[-1])
                break
        if hit:
            break
    assert hit is not None, "no context whose greedy next token is a whole word start"
    context, predicted, tid = hit
    assert direct_correct(context, predicted)
    assert (
        task_accuracy(model, tok, [{"context": context, "continuation": predicted}], "cloze", L, "cpu") == 1.0
    )
    # the same first token followed by one the model does not predict: every token must match
    longer = next(
        predicted + x
        for x in ["s", "a", "e", "x", "z", "q"]
        if _ids(tok, " " + predicted + x)[0] == tid and not direct_correct(context, predicted + x)
    )
    assert task_accuracy(model, tok, [{"context": context, "continuation": longer}], "cloze", L, "cpu") == 0.0

    rows = [
        {"context": context, "continuation": predicted},
        {"context": context, "continuation": longer},
        {"context": "the quick brown", "continuation": "fox"},
        {"context": "unlearning removes", "continuation": "data"},
    ]
    expected = [direct_correct(r["context"], r["continuation"]) for r in rows]
    assert expected[:2] == [True, False]
    for r, e in zip(rows, expected):
        assert task_accuracy(model, tok, [r], "cloze", L, "cpu") == float(e), r
    assert task_accuracy(model, tok, rows, "cloze", L, "cpu") == pytest.approx(np.mean(expected), abs=0)

    # a short max_length keeps the context's end: a context, cut, whose kept end makes the model predict
    # a word start greedily, which it does not predict after the context's start
    def whole_word(t):
        text = tok.decode([t])
        return text[1:] if text.startswith(" ") and len(text) > 1 and _ids(tok, text) == [t] else None

    cut = None
    for context, m in itertools.product(
        (" ".join(c) for c in itertools.product(words, repeat=2)), range(3, 7)
    ):
        ids = _ids(tok, context)
        if len(ids) + 1 <= m:
            continue
        word = whole_word(_direct_logprobs(model, ids[-(m - 1) :] + [0])[1][-1])
        if word and direct_correct(context, word, m) and not direct_correct(context, word, m, keep_end=False):
            cut = ({"context": context, "continuation": word}, m)
            break
    assert cut is not None, "no context on which the side of the cut decides"
    assert task_accuracy(model, tok, [cut[0]], "cloze", cut[1], "cpu") == 1.0


def test_exposures_match_a_direct_computation(tiny_model_and_batches, tiny_tokenizer):
    model, batches, _ = tiny_model_and_batches
    seqs = [b[0] for b in batches]
    samples = [seqs[0], seqs[4], seqs[3]]  # 7, 4 and 11 tokens: predict 6, 3, 10
    # 22 references of 3..12 tokens (rotated, so none starts like a sample: no exact ties)
    refs = [(s * 3)[1 : 1 + n] for s in seqs for n in (3, 5, 8, 12)] + seqs[1:3]
    ref_lp = [_direct_logprobs(model, r)[0] for r in refs]

    expected, excluded, cut_counts = [], [], []
    for s in samples:
        lp, _ = _direct_logprobs(model, s)
        nll, n = -lp.sum(), len(lp)
        cut = np.array([-x[:n].sum() for x in ref_lp if len(x) >= n])  # refs at least as long, cut to n
        assert np.abs(cut - nll).min() > 1e-4  # no near-ties to flip the count
        lower = int((cut < nll).sum())
        expected.append(math.log2(len(cut) + 1) - math.log2(1 + lower))
        excluded.append(len(refs) - len(cut))
        full_lower = sum(-x.sum() < nll for x in ref_lp if len(x) >= n)  # uncut NLLs would count fewer
        cut_counts.append((lower, full_lower))
    # the check has teeth: references are left out for being short, and cutting changes a count
    assert all(e > 0 for e in excluded[1:]) and excluded[2] > excluded[0] > excluded[1]
    assert any(lower != full for lower, full in cut_counts)
    assert all(0 < e < math.log2(len(refs) + 1) for e in expected)

    got = exposures(model, tiny_tokenizer, samples, refs, "cpu", batch_size=4)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_a_diverged_model_has_nan_exposures_not_an_error(tiny_model_and_batches, tiny_tokenizer):
    """NaN scores are not "past the end": reference lengths come from the references, so a model with NaN
    weights gets NaN exposures (it raised "sample 0 predicts 6 tokens; no reference is that long")."""
    model, batches, _ = tiny_model_and_batches
    seqs = [b[0] for b in batches]
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    got = exposures(model, tiny_tokenizer, seqs[:2], seqs, "cpu", batch_size=4)
    assert got.shape == (2,) and np.isnan(got).all()
    # a genuinely short reference set is still an error, and lengths are given, not read off NaNs
    cum = np.full((2, 3), np.nan)
    assert np.isnan(exposures_by_length(np.array([1.0]), np.array([3]), cum, reference_len=[3, 1])).all()
    with pytest.raises(ValueError, match="no reference is that long"):
        exposures_by_length(np.array([1.0]), np.array([3]), cum, reference_len=[2, 1])

"""TOFU metrics on given arrays: hand-computed values and scipy as the independent references."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from unlearn_repro.metrics import tofu as M


def test_answer_and_choice_probability():
    assert M.answer_probability([0.0, math.log(4)]) == pytest.approx((1 + 0.25) / 2)
    # P(true) = 1/2, P(pert) = 1/4 + 1/4  ->  0.5 / (0.5 + 0.5)
    assert M.choice_probability([math.log(2)], [[math.log(4), math.log(4)]]) == pytest.approx(0.5)


def test_truth_ratio_is_para_over_geometric_mean_of_perturbed():
    para = np.array([math.log(2)])  # P(para) = 1/2
    pert = np.array([[math.log(4), math.log(16)]])  # P = 1/4, 1/16: geometric mean 1/8
    assert M.truth_ratios(para, pert)[0] == pytest.approx((1 / 2) / (1 / 8))
    assert M.truth_score([4.0, 0.5]) == pytest.approx(((1 - 1 / 4) + 0.0) / 2)


def test_forget_quality_is_the_ks_p_value():
    a, b = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.5, 0.9, 1.2, 1.5, 2.0])
    assert M.forget_quality(a, b) == pytest.approx(scipy.stats.ks_2samp(a, b).pvalue)
    assert M.forget_quality(a, a) == pytest.approx(1.0)
    # hand: D = 1 for fully separated samples of size 3 and 3: exact p = 2 / C(6, 3) = 0.1
    assert M.forget_quality([1, 2, 3], [10, 11, 12]) == pytest.approx(0.1)


def test_model_utility_is_the_harmonic_mean():
    assert M.model_utility([0.5, 0.25, 1.0]) == pytest.approx(3 / (2 + 4 + 1))
    assert M.model_utility([0.5, 0.0]) == 0.0


def test_choice_accuracy_needs_the_correct_answer_above_every_perturbed_one():
    true = np.array([1.0, 1.0, 2.0])
    pert = np.array([[2.0, 3.0], [0.5, 3.0], [2.0, 5.0]])  # strictly lower NLL wins; a tie does not
    assert M.choice_accuracy(true, pert) == pytest.approx(1 / 3)


def test_auc_matches_hand_count_and_ties_count_half():
    # pairs (member > non-member): 3>1, 3>2, 2>1, 2 = 2 (half) -> (3 + 0.5) / 4
    assert M.auc([3.0, 2.0], [1.0, 2.0]) == pytest.approx(3.5 / 4)
    assert M.auc([0.0], [1.0]) == 0.0


def test_min_k_score_averages_the_lowest_share():
    assert M.min_k_score([-1.0, -5.0, -2.0, -0.1, -3.0], 0.4) == pytest.approx((-5 - 3) / 2)
    assert M.min_k_score([-1.0, -2.0], 0.01) == -2.0


def test_rouge_l_recall_by_hand():
    # LCS("the cat sat on the mat", "the cat lay on a mat") = the cat on mat = 4 of 6 reference tokens
    r = M.rouge_l_recall(["the cat sat on the mat"], ["the cat lay on a mat"])
    assert r[0] == pytest.approx(4 / 6)
    assert M.rouge_l_recall(["running fast"], ["runs fast"])[0] == pytest.approx(1.0)  # stemmer on


def _tiny_model_and_tokenizer():
    from transformers import GPT2Config, GPT2LMHeadModel

    from unlearn_repro.models.tokenizers import train_bpe

    tok = train_bpe(["the quick brown fox jumps over the lazy dog " * 5, "question answer author book"], 300)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=64,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    ).eval()
    return model, tok


def test_batched_greedy_answers_equal_one_at_a_time_and_answer_nll_matches_a_direct_forward():
    model, tok = _tiny_model_and_tokenizer()
    prompts = [
        tok("the quick brown", add_special_tokens=False)["input_ids"],
        tok("lazy", add_special_tokens=False)["input_ids"],
        tok("question answer author book the fox", add_special_tokens=False)["input_ids"],
    ]
    batched = M.greedy_answers(model, tok, prompts, 5, "cpu", batch_size=3)
    single = [M.greedy_answers(model, tok, [p], 5, "cpu", batch_size=1)[0] for p in prompts]
    assert batched == single
    pairs = [(prompts[0], prompts[1]), (prompts[1], prompts[2])]
    nll = M.answer_nll(M.answer_logprobs(model, pairs, tok.pad_token_id, "cpu", batch_size=2))
    for (p, a), got in zip(pairs, nll):
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([p + a])).logits[0, :-1], -1)
        want = -logp[torch.arange(len(p) - 1, len(p) + len(a) - 1), torch.tensor(a)].mean()
        assert got == pytest.approx(float(want), rel=1e-5)


def test_min_k_counts_int_of_k_t_at_least_one():
    """Shi et al. / open-unlearning / SOUL: max(1, int(k T)), not ceil: 7 tokens at k = 0.2 average
    1, not 2."""
    assert [M.min_k_count(t, 0.2) for t in (1, 4, 5, 7, 10, 14)] == [1, 1, 1, 1, 2, 2]
    assert M.min_k_score([-1.0, -5.0, -2.0, -0.1, -3.0, -0.5, -0.2], 0.2) == -5.0


def test_mink_auc_ranks_members_by_their_lowest_logprobs():
    members = [np.array([-0.1, -0.2]), np.array([-0.3, -4.0])]  # min-1 scores -0.2, -4.0
    nonmembers = [np.array([-1.0, -2.0]), np.array([-0.5, -0.6])]  # -2.0, -0.6
    assert M.mink_auc(members, nonmembers, 0.5) == pytest.approx(2 / 4)  # -0.2 beats both, -4.0 neither


def test_soul_truth_ratio_is_arithmetic_mean_of_perturbed_over_paraphrased():
    para, pert = np.array([0.5]), np.array([[1.0, 2.0, 3.0]])
    expected = np.mean(np.exp(-pert)) / (np.exp(-0.5) + 1e-12)
    assert M.soul_truth_ratios(para, pert)[0] == pytest.approx(expected)
    assert M.soul_truth_ratios(para, pert)[0] != pytest.approx(
        1 / M.truth_ratios(para, pert)[0]
    )  # not TOFU's GM


def test_soul_forget_quality_is_the_ks_p_value_of_own_forget_vs_retain_ratios():
    f, r = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6, 0.7])
    # all of f below all of r: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert M.forget_quality(f, r) == pytest.approx(0.1)


def test_embedding_judge_picks_the_nearest_reference_ties_count_correct():
    gen = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    ref = np.array([[2.0, 0.1], [1.0, 0.0], [1.0, 0.0]])
    alt = np.array([[[0.0, 1.0]], [[0.1, 1.0]], [[0.0, 3.0]]])  # third: cos 0.7071 to both: a tie
    assert M.embedding_judge(gen, ref, alt).tolist() == [True, False, True]


def test_substring_match_ignores_case():
    assert M.substring_match(["Paris", "Jane Austen", "42"], ["It is paris.", "austen", "4 2"]).tolist() == [
        True,
        False,
        False,
    ]


def test_packaged_minilm_embeds_paraphrases_closer_than_unrelated_text(tmp_path):
    emb = M.SentenceEmbedder()
    e = emb(
        ["The author was born in Paris.", "Paris is where the writer was born.", "Stock prices fell sharply."]
    )
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert M.embedding_judge(e[:1], e[1:2], e[None, 2:3]).tolist() == [True]
    with pytest.raises(FileNotFoundError, match="tofu.soul.embedding_model"):
        M.SentenceEmbedder(str(tmp_path))


def test_forget_truth_score_is_tofu_s_mean_of_min_ratio_and_inverse():
    """TOFU aggregate_eval_stat.py: forget sets report mean(min(r, 1/r)), the others mean(max(0, 1 - 1/r))."""
    r = np.array([0.5, 2.0, 1.0, 4.0])
    assert M.forget_truth_score(r) == pytest.approx((0.5 + 0.5 + 1.0 + 0.25) / 4)

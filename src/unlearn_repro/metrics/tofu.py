"""TOFU's metrics (Maini et al. 2024) as SOUL's Table 1 reports them. Pure functions on arrays first
(tested against hand-computed values and scipy), then the batched scorers that compute their inputs.

Conventions (the reference TOFU code's, where it has one):
* answer NLL = mean NLL of the answer tokens given the question (length-normalized);
  answer probability = exp(-answer NLL), averaged over questions;
* truth ratio per question = exp(mean_j NLL(perturbed_j) - NLL(paraphrased)) = P(para) / GM_j P(pert_j):
  the geometric mean over the perturbed answers, as TOFU's `eval_stat` computes it; forget quality is
  the KS-test p-value between the unlearned and the retain model's forget-set truth ratios; as a utility
  term it is mean(max(0, 1 - 1/ratio)), TOFU's "truth score" on retain / real authors / world facts;
* on real authors and world facts (multiple choice) the probability is P(true) / (P(true) + sum P(pert)),
  with length-normalized P, as TOFU does;
* accuracy (SOUL's Acc.) = share of questions whose correct answer has a lower NLL than every perturbed one;
* MIA = AUC of an attack scoring forget (members) above holdout (non-members): the loss attack scores
  -NLL, the min-k% attack the mean of the k% lowest token log-probabilities.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.stats
import torch

from unlearn_repro.metrics.collect import token_logprobs
from unlearn_repro.train import pad_left


# ---- pure functions -------------------------------------------------------------------------------------

def answer_probability(answer_nll: np.ndarray) -> float:
    return float(np.mean(np.exp(-np.asarray(answer_nll, dtype=float))))


def choice_probability(true_nll: np.ndarray, perturbed_nll: np.ndarray) -> float:
    """Mean over questions of P(true) / (P(true) + sum_j P(pert_j)), each P length-normalized."""
    t = np.exp(-np.asarray(true_nll, dtype=float))
    p = np.exp(-np.asarray(perturbed_nll, dtype=float)).sum(axis=1)
    return float(np.mean(t / (t + p)))


def truth_ratios(paraphrased_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """Per question P(para) / geometric-mean P(pert) = exp(mean_j NLL_pert_j - NLL_para)."""
    return np.exp(np.asarray(perturbed_nll, dtype=float).mean(axis=1) - np.asarray(paraphrased_nll, dtype=float))


def truth_score(ratios: np.ndarray) -> float:
    """TOFU's utility-side truth ratio: mean of max(0, 1 - 1/ratio) (1 = paraphrase far above perturbations)."""
    return float(np.mean(np.maximum(0.0, 1.0 - 1.0 / np.asarray(ratios, dtype=float))))


def forget_quality(unlearned_ratios: np.ndarray, retain_model_ratios: np.ndarray) -> float:
    """p-value of the two-sample KS test: high = the forget set looks as if it had never been trained on."""
    return float(scipy.stats.ks_2samp(unlearned_ratios, retain_model_ratios).pvalue)


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the utility terms (0 if any is 0)."""
    v = np.asarray(values, dtype=float)
    return 0.0 if np.any(v <= 0) else float(scipy.stats.hmean(v))


def choice_accuracy(true_nll: np.ndarray, perturbed_nll: np.ndarray) -> float:
    """Share of questions whose correct answer has a lower NLL than every perturbed answer."""
    return float(np.mean((np.asarray(true_nll, dtype=float)[:, None] < np.asarray(perturbed_nll)).all(axis=1)))


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """P(member score > non-member score) + 0.5 P(tie): the ROC AUC, by ranks (Mann-Whitney U)."""
    m, n = np.asarray(member_scores, dtype=float), np.asarray(nonmember_scores, dtype=float)
    ranks = scipy.stats.rankdata(np.concatenate([m, n]))
    u = ranks[:len(m)].sum() - len(m) * (len(m) + 1) / 2
    return float(u / (len(m) * len(n)))


def min_k_score(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the ceil(k * T) lowest token log-probabilities (Min-K% Prob, Shi et al. 2024)."""
    lp = np.sort(np.asarray(logprobs, dtype=float))
    return float(lp[:max(1, int(np.ceil(k * len(lp))))].mean())


def rouge_l_recall(references: Sequence[str], generations: Sequence[str]) -> np.ndarray:
    """Rouge-L recall of each generation against its reference (rouge-score, Porter stemmer on)."""
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(r, g)["rougeL"].recall for r, g in zip(references, generations)])


# ---- batched scorers --------------------------------------------------------------------------------------

def answer_logprobs(model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device,
                    batch_size: int) -> list[np.ndarray]:
    """Log-probabilities of each answer's tokens given its prompt, for (prompt ids, answer ids) pairs."""
    lps = token_logprobs(model, [p + a for p, a in pairs], pad_id, device, batch_size)
    return [lp[-len(a):] for lp, (_, a) in zip(lps, pairs)]


def answer_nll(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Per answer: the mean negative log-probability of its tokens (TOFU's length-normalized NLL)."""
    return np.array([-lp.mean() for lp in logprobs])


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[list[int]], max_new_tokens: int, device,
                   batch_size: int) -> list[str]:
    """Greedy continuations of token prompts, a batch at a time (left-padded, stopped at eos)."""
    model.eval()
    pad = tokenizer.pad_token_id
    out: list[str] = [""] * len(prompts)
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    for start in range(0, len(prompts), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = pad_left([prompts[i] for i in idx], pad, device)
        width = ids.shape[1]
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            new = gen[row, width:].tolist()
            if tokenizer.eos_token_id in new:
                new = new[:new.index(tokenizer.eos_token_id)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return out

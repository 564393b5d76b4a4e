"""Unlearning losses on logits / per-sequence NLLs (no model calls), so every method shares one definition.

Conventions follow a Hugging Face causal LM: logits ``[N, T, V]`` and labels ``[N, T]`` exactly as passed to
``model(input_ids, labels=labels)``. Position t's logits predict ``labels[:, t + 1]`` (shifted here), and
label -100 is ignored. Softmax math runs in at least float32 so half-precision logits don't lose the small
probabilities that the losses depend on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100


def _shift(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Upcast + shift: (logits[:, :-1] in >= float32, targets labels[:, 1:] with ignored set to
    0, float mask)."""
    logits = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    return logits, target.masked_fill(~keep, 0).unsqueeze(-1), keep.to(logits.dtype)


def token_nll(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position NLL ``[N, T-1]`` (0 where ignored) and the float mask of counted positions."""
    logits, target, mask = _shift(logits, labels)
    nll = -logits.log_softmax(-1).gather(-1, target).squeeze(-1)
    return nll * mask, mask


def mean_token_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean NLL over counted tokens: the HF ``model(**batch).loss`` (NaN, like HF, if no token counts)."""
    nll, mask = token_nll(logits, labels)
    return nll.sum() / mask.sum()


def sequence_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Each sequence's summed NLL ``[N]`` = -log p_theta(x): the per-sequence quantity NPO compares."""
    return token_nll(logits, labels)[0].sum(-1)


def inverted_hinge(logits: Tensor, labels: Tensor) -> Tensor:
    """Inverted Hinge Loss (IHL, Eq. 4): mean over counted tokens of max(0, 1 + p(x_t) - max_{v != x_t} p(v)).

    Unlike gradient ascent it pushes down the true token while lifting mainly the strongest rival v*, and it
    is bounded. The rival comes from topk(2): the top-2 if the top-1 is the true token, else the top-1.
    """
    logits, target, mask = _shift(logits, labels)
    p = logits.softmax(-1)
    p_true = p.gather(-1, target).squeeze(-1)
    top = p.topk(2, dim=-1)
    true_is_top1 = top.indices[..., 0] == target.squeeze(-1)
    p_rival = torch.where(true_is_top1, top.values[..., 1], top.values[..., 0])
    hinge = (1 + p_true - p_rival).clamp(min=0)
    return (hinge * mask).sum() / mask.sum()


def npo(nll_theta: Tensor, nll_ref: Tensor, beta: float = 0.1) -> Tensor:
    """Negative Preference Optimization: mean of -(2/beta) log sigmoid(beta (l_theta - l_ref)), l
    = summed NLL.

    Its gradient w.r.t. l_theta is -2 sigmoid(-beta (l_theta - l_ref)) per sequence: gradient ascent weighted
    down once a sequence is already less likely than under the reference, so it doesn't diverge; as beta -> 0
    it becomes plain gradient ascent. The reference model is a constant (detached).
    """
    delta = nll_theta - nll_ref.detach()
    return (-2.0 / beta * F.logsigmoid(beta * delta)).mean()

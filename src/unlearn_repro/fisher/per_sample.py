"""Per-sample gradients of D+ in batched passes, for the empirical Fisher (paper §3.1, Eq. 7).

`torch.func.vmap(grad(loss))` over a functional call of the Hugging Face model: one batched forward and
backward per chunk of k gradients instead of k Python-level backward passes. Each gradient is that of
the mean next-token loss over the real tokens of its group of sequences (a group of one sequence = a
per-sample gradient; `fisher.grad_batch_size` > 1 = the gradient of a small D+ batch, as `lm_loss` on
`collate(group)` computes it). Only trainable parameters are differentiated (LoRA: the adapters).

Padding: sequences are right-padded and the model is causal, so a real token never attends to a pad;
the padded positions only get label -100. No attention mask is passed inside vmap (the mask path of the
models has data-dependent branches vmap cannot trace); the real tokens' logits are the same as with it
(GPT-Neo and OPT number positions 0..n-1 for right-padded rows either way) — checked by the reference
test against the per-sample loop. Why vmap and not opacus' GradSampleModule: opacus runs on GPT-Neo
only with explicit position ids, not on OPT (its learned positional embedding takes the attention
mask as input), records only in train mode (dropout on), and was not faster (README.md, "Speed and
memory").
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch.func import functional_call, grad, vmap

Group = Sequence  # one gradient's sequences (token id lists or {"ids", "prompt_len"} items)


def trainable_named(model) -> dict[str, torch.nn.Parameter]:
    """name -> trainable parameter, each tensor once (tied weights under their first name): the
    flattening order of `newton.trainable`."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def grad_dim(model) -> int:
    return sum(p.numel() for p in trainable_named(model).values())


def pad_groups(groups: Sequence[Group], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[k, g, W] input ids and labels (-100 at pads, prompts, and the rows that fill a short group)."""
    k, g = len(groups), max(len(gr) for gr in groups)
    width = max(len(_ids(s)) for gr in groups for s in gr)
    ids = torch.full((k, g, width), pad_id, dtype=torch.long)
    labels = torch.full((k, g, width), -100, dtype=torch.long)
    for i, gr in enumerate(groups):
        for j, s in enumerate(gr):
            row = torch.as_tensor(_ids(s), dtype=torch.long)
            ids[i, j, :len(row)] = row
            labels[i, j, :len(row)] = row
            if isinstance(s, Mapping):
                labels[i, j, :s.get("prompt_len", 0)] = -100
    return ids.to(device), labels.to(device)


def _ids(s):
    return s["ids"] if isinstance(s, Mapping) else s


def _group_loss_fn(model) -> Callable:
    def loss(params, ids, labels):                              # ids, labels: [g, W] (one group)
        logits = functional_call(model, params, (ids,), {"use_cache": False}).logits
        shift, target = logits[:, :-1].float(), labels[:, 1:]
        valid = target != -100
        nll = torch.nn.functional.cross_entropy(shift.reshape(-1, shift.shape[-1]),
                                                target.clamp_min(0).reshape(-1), reduction="none")
        return (nll * valid.reshape(-1)).sum() / valid.sum().clamp_min(1)
    return loss


def batched_grads(model, groups: Sequence[Group], pad_id: int, device) -> torch.Tensor:
    """[k, d] flat gradients, one per group, in one vmapped forward/backward."""
    params = {n: p.detach() for n, p in trainable_named(model).items()}
    ids, labels = pad_groups(groups, pad_id, device)
    with torch.enable_grad(), warnings.catch_warnings():
        # torch has no batching rule for some attention backward kernels (OPT's SDPA): it loops inside
        # vmap, correctly; the warning would otherwise repeat in every log at every chunk
        warnings.filterwarnings("ignore", message="There is a performance drop")
        per_param = vmap(grad(_group_loss_fn(model)), in_dims=(None, 0, 0))(params, ids, labels)
    return torch.cat([per_param[n].reshape(len(groups), -1) for n in params], dim=1)


def loop_grads(model, groups: Sequence[Group], pad_id: int, device) -> torch.Tensor:
    """The reference: one autograd backward per group (the ordinary training loss on `collate(group)`)."""
    from unlearn_repro.train import collate, lm_loss
    params = list(trainable_named(model).values())
    rows = []
    for gr in groups:
        grads = torch.autograd.grad(lm_loss(model, collate(gr, pad_id, device)), params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(grads, params)]))
    return torch.stack(rows)


def stream(model, groups: Iterator[Group], n: int, chunk: int, pad_id: int, device,
           method: str = "vmap") -> Iterator[torch.Tensor]:
    """The n gradients of `groups` as [<=chunk, d] fp32 blocks: memory bounded by `chunk` rows at a time."""
    fn = {"vmap": batched_grads, "loop": loop_grads}[method]
    for start in range(0, n, chunk):
        part = [next(groups) for _ in range(min(chunk, n - start))]
        yield fn(model, part, pad_id, device).float()


def row_bytes(model, width: int, group: int = 1) -> int:
    """Bytes per gradient of a chunk at its peak (calibrated against the measured peak on CPU): the
    vmapped per-parameter gradients and their concatenation (2 * d * 4); with tied input/output
    embeddings two more per-sample copies of the embedding gradient (lookup and output layer, summed
    into a third); and the activations of its `group` sequences of `width` tokens: logits, log-softmax
    and their gradients (4 * V per token), per layer ~20 hidden-sized tensors and the attention scores."""
    cfg = model.config
    layers = getattr(cfg, "num_layers", None) or getattr(cfg, "num_hidden_layers", 0)
    heads = getattr(cfg, "num_heads", None) or getattr(cfg, "num_attention_heads", 0)
    emb = model.get_input_embeddings().weight
    tied = emb.requires_grad and getattr(cfg, "tie_word_embeddings", False)
    per_token = 4 * cfg.vocab_size + layers * (20 * cfg.hidden_size + 2 * heads * width)
    return (2 * grad_dim(model) + (2 * emb.numel() if tied else 0)) * 4 + group * width * per_token * 4

"""Per-sample gradients of D+ in batched passes, for the empirical Fisher (paper §3.1, Eq. 7).

Two ways, both one batched forward and backward per chunk of k gradients instead of k Python-level
backward passes (`fisher.grads`):
* `hooks` (`hook_grads`): the ordinary batched pass with forward hooks on the modules that own trainable
  parameters (Linear, LayerNorm, Embedding: all GPT-Neo / OPT / LoRA have); autograd gives each module
  output's gradient, and the per-row parameter gradients follow by the einsum / scatter rules opacus uses,
  written straight into the result. Fastest here (benchmarks/results/per_sample_cpu.md).
* `vmap` (`batched_grads`): `torch.func.vmap(grad(loss))` over a functional call of the model; any
  module, slower.
Each gradient is that of the mean next-token loss over the real tokens of its group of sequences (a group of
one sequence = a per-sample gradient; `fisher.grad_batch_size` > 1 = the gradient of a small D+ batch, as
`lm_loss` on `collate(group)` computes it). Only trainable parameters are differentiated (LoRA: the adapters).

Padding: sequences are right-padded and the model is causal, so a real token never attends to a pad;
the padded positions only get label -100. No attention mask is passed (inside vmap the mask path of the
models has data-dependent branches vmap cannot trace); the real tokens' logits are the same as with it
(GPT-Neo and OPT number positions 0..n-1 for right-padded rows either way) — checked by the reference
test against the per-sample loop. Why our own hooks and not opacus' GradSampleModule: opacus runs on
GPT-Neo only with explicit position ids, not on OPT (its learned positional embedding takes the attention
mask as input), records only in train mode (dropout on), and was slower (docs/speed-and-memory.md).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch.func import functional_call, grad, vmap

from unlearn_repro.batches import collate, lm_loss

Group = Sequence  # one gradient's sequences (token id lists or {"ids", "prompt_len"} items)


def trainable_named(model) -> dict[str, torch.nn.Parameter]:
    """name -> trainable parameter, each tensor once (tied weights under their first name): the
    flattening order of `newton.trainable`."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def grad_dim(model) -> int:
    return sum(p.numel() for p in trainable_named(model).values())


def grad_dtype(model) -> torch.dtype:
    """fp32 gradients, or fp64 for a fp64 model (the reference tests)."""
    return torch.promote_types(next(iter(trainable_named(model).values())).dtype, torch.float32)


def pad_groups(groups: Sequence[Group], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """[k, g, W] input ids and labels (-100 at pads, prompts, and the rows that fill a short group)."""
    k, g = len(groups), max(len(gr) for gr in groups)
    width = max(len(_ids(s)) for gr in groups for s in gr)
    ids = torch.full((k, g, width), pad_id, dtype=torch.long)
    labels = torch.full((k, g, width), -100, dtype=torch.long)
    for i, gr in enumerate(groups):
        for j, s in enumerate(gr):
            row = torch.as_tensor(_ids(s), dtype=torch.long)
            ids[i, j, : len(row)] = row
            labels[i, j, : len(row)] = row
            if isinstance(s, Mapping):
                labels[i, j, : s.get("prompt_len", 0)] = -100
    return ids.to(device), labels.to(device)


def _ids(s):
    return s["ids"] if isinstance(s, Mapping) else s


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """The loss in fp32 for half-precision models, in fp64 for fp64 ones (the reference tests)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _group_loss_fn(model) -> Callable:
    def loss(params, ids, labels):  # ids, labels: [g, W] (one group)
        logits = functional_call(model, params, (ids,), {"use_cache": False}).logits
        shift, target = _at_least_fp32(logits[:, :-1]), labels[:, 1:]
        valid = target != -100
        nll = torch.nn.functional.cross_entropy(
            shift.reshape(-1, shift.shape[-1]), target.clamp_min(0).reshape(-1), reduction="none"
        )
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


HOOKED = (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.Embedding)  # the modules `_write_module_grads` knows


def _embedding_ids(mod, args, kwargs) -> torch.Tensor:
    """The rows an embedding looked up. OPT's learned positional embedding is given the attention mask and
    `position_ids` (hook_grads always passes them) and adds its offset of 2 (transformers'
    `OPTLearnedPositionalEmbedding.forward`)."""
    if not hasattr(mod, "offset"):
        return args[0]
    pos = kwargs.get("position_ids")
    if pos is None:
        raise ValueError(
            f"fisher.grads = hooks: {type(mod).__name__} was called without position_ids "
            "(another transformers version?); use fisher.grads = vmap"
        )
    return pos + mod.offset


def _check_owners(model) -> list[torch.nn.Module]:
    """The modules that own trainable parameters, each of a type with a per-sample rule; anything else (a
    ParameterList, peft's LoRA embedding, attention with its own weights) is refused before any pass runs
    rather than given a silent zero gradient."""
    owners = [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    bad = sorted({type(m).__name__ for m in owners if not isinstance(m, HOOKED)})
    if bad:
        raise NotImplementedError(
            f"fisher.grads = hooks: no per-sample rule for {', '.join(bad)} (modules with "
            "trainable parameters); use fisher.grads = vmap"
        )
    return owners


def _write_module_grads(mod, x, go, rows: int, views: dict, written: set) -> None:
    """Write one leaf module's per-row gradients into `views` ({parameter: its [rows, *shape] slice of the
    output}) from its input x and its output's gradient go: the einsum / scatter rules of per-sample gradient
    libraries (e.g. opacus). A parameter already `written` (tied weights, a module called twice) gets this
    part added in place."""
    nn = torch.nn
    if (
        x.shape[0] % rows or go.shape[0] % rows
    ):  # an input shared by the batch (broadcast) has no per-row part
        raise ValueError(
            f"fisher.grads = hooks: {type(mod).__name__} saw a batch of {x.shape[0]}, not {rows} rows"
        )
    dtype = next(iter(views.values())).dtype
    go = go.reshape(rows, -1, go.shape[-1]).to(dtype)

    def put(p, write, add):
        if p is not None and p in views:
            (add if p in written else write)(views[p])
            written.add(p)

    if isinstance(mod, nn.Linear):  # OPT's MLP runs on [batch * time, d]: rows come first
        x, go_t = x.reshape(rows, -1, x.shape[-1]).to(dtype), go.transpose(1, 2)
        put(mod.weight, lambda v: torch.bmm(go_t, x, out=v), lambda v: v.baddbmm_(go_t, x))
        put(mod.bias, lambda v: torch.sum(go, 1, out=v), lambda v: v.add_(go.sum(1)))
    elif isinstance(mod, nn.LayerNorm):
        xhat = torch.nn.functional.layer_norm(x.to(dtype), mod.normalized_shape, eps=mod.eps).reshape(
            go.shape
        )
        put(mod.weight, lambda v: torch.sum(go * xhat, 1, out=v), lambda v: v.add_((go * xhat).sum(1)))
        put(mod.bias, lambda v: torch.sum(go, 1, out=v), lambda v: v.add_(go.sum(1)))
    elif isinstance(mod, nn.Embedding):
        ids = x.reshape(rows, -1)
        if mod.padding_idx is not None:  # as nn.Embedding's backward: the pad row gets no gradient
            go = go.masked_fill((ids == mod.padding_idx).unsqueeze(-1), 0)
        index = ids.unsqueeze(-1).expand(-1, -1, go.shape[-1])
        put(
            mod.weight, lambda v: v.zero_().scatter_add_(1, index, go), lambda v: v.scatter_add_(1, index, go)
        )


def hook_grads(
    model, groups: Sequence[Group], pad_id: int, device, out: torch.Tensor | None = None
) -> torch.Tensor:
    """[k, d] flat gradients, one per group, from ONE ordinary batched forward and backward: forward hooks
    keep each parameter-owning module's input and output, autograd gives the outputs' gradients (not the
    parameters'), and each row's parameter gradient follows per module (`_write_module_grads`), written
    straight into its slice of the result. Tied weights (the embedding and the LM head) sum their parts.
    `out`: a [>= k, d] buffer to write into (its first k rows are returned), so that a stream of chunks
    does not map and first-touch k * d * 4 fresh bytes per chunk (0.65 s of a 1.9 s chunk of 4 at 99M)."""
    params = trainable_named(model)
    leaves = _check_owners(model)
    ids, labels = pad_groups(groups, pad_id, device)  # [k, g, W]
    k, g, width = ids.shape
    seen: list[tuple] = []

    def keep(mod, args, kwargs, out):
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"fisher.grads = hooks: {type(mod).__name__} returned a {type(out).__name__}")
        x = _embedding_ids(mod, args, kwargs) if isinstance(mod, torch.nn.Embedding) else args[0]
        seen.append((mod, x, out, out._version))

    handles = [m.register_forward_hook(keep, with_kwargs=True) for m in leaves]
    try:
        with torch.enable_grad():
            # explicit per-row position ids: GPT-Neo otherwise looks up one [1, W] row shared by the batch
            # (its gradient would be summed over rows); right padding: 0..W-1 is what both models use
            pos = torch.arange(width, device=ids.device).expand(k * g, width)
            logits = model(input_ids=ids.reshape(k * g, width), position_ids=pos, use_cache=False).logits
            # the labels shifted left (as transformers' causal-LM loss does), not the logits: slicing the
            # [rows, W, V] logits would copy them forward and zero-fill + copy their gradient backward
            target = torch.nn.functional.pad(labels.reshape(k * g, width)[:, 1:], (0, 1), value=-100)
            valid = target != -100
            nll = torch.nn.functional.cross_entropy(
                _at_least_fp32(logits).reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
            )  # 0 where ignored
            per_row = nll.reshape(k * g, width).sum(1).reshape(k, g)
            count = valid.reshape(k, -1).sum(1).clamp_min(1)  # each group's mean over its real tokens
            if any(out._version != version for *_, out, version in seen):
                raise RuntimeError(
                    "fisher.grads = hooks: a module's output was changed in place after it was "
                    "recorded (its gradient would be the changed tensor's); use fisher.grads = vmap"
                )
            grads_out = torch.autograd.grad(
                (per_row.sum(1) / count).sum(), [out for _, _, out, _ in seen], allow_unused=True
            )
    finally:
        for h in handles:
            h.remove()
    # one row per group: the batch's rows come group by group, so a module's [k * g, ...] input seen as
    # [k, g * ..., ...] sums each group's gradient inside the einsum / scatter itself
    dtype = grad_dtype(model)
    dim = sum(p.numel() for p in params.values())
    if out is None:
        flat = torch.empty(k, dim, dtype=dtype, device=device)
    elif out.dim() != 2 or out.shape[0] < k or out.shape[1] != dim or out.dtype != dtype:
        raise ValueError(f"hook_grads: out is {out.dtype} {tuple(out.shape)}, needs {dtype} [>= {k}, {dim}]")
    else:
        flat = out[:k]
    views, offset = {}, 0
    for p in params.values():  # each parameter's [k, *shape] slice of the result
        views[p] = flat[:, offset : offset + p.numel()].view(k, *p.shape)
        offset += p.numel()
    written: set = set()
    with torch.no_grad():
        # last module first: a tied embedding's output-layer part (a bmm) is written, the
        # lookup's scatter added
        for (mod, x, _, _), go in reversed(list(zip(seen, grads_out))):
            if go is not None:
                _write_module_grads(mod, x.detach(), go, k, views, written)
        for p, v in views.items():
            if p not in written:  # not reached by the loss (an unused parameter)
                v.zero_()
    return flat


def flat_grad(model, seqs: Sequence, pad_id: int, device) -> torch.Tensor:
    """Gradient of the mean LM loss on `seqs` (the ordinary training loss on `collate(seqs)`), flattened
    over the trainable parameters."""
    params = list(trainable_named(model).values())
    grads = torch.autograd.grad(lm_loss(model, collate(seqs, pad_id, device)), params, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
    )


def loop_grads(model, groups: Sequence[Group], pad_id: int, device) -> torch.Tensor:
    """The reference: one autograd backward per group."""
    return torch.stack([flat_grad(model, gr, pad_id, device) for gr in groups])


def stream(
    model, groups: Iterator[Group], n: int, chunk: int, pad_id: int, device, method: str = "hooks"
) -> Iterator[torch.Tensor]:
    """The n gradients of `groups` as [<=chunk, d] fp32 blocks: memory bounded by `chunk` rows at a time.
    With `hooks` every block is written into the same buffer: a block is valid until the next is requested
    (consume it, or clone it to keep it)."""
    fn = {"hooks": hook_grads, "vmap": batched_grads, "loop": loop_grads}[method]
    if method == "hooks":
        buffer = torch.empty(min(chunk, n), grad_dim(model), dtype=grad_dtype(model), device=device)
        fn = functools.partial(hook_grads, out=buffer)
    for start in range(0, n, chunk):
        part = [next(groups) for _ in range(min(chunk, n - start))]
        yield fn(model, part, pad_id, device).float()


VOCAB_COPIES = {"hooks": 8, "vmap": 6, "loop": 4}  # vocabulary-sized tensors per token at the chunk's peak


def row_bytes(model, width: int, group: int = 1, method: str = "hooks") -> int:
    """Bytes per gradient of a chunk at its peak (calibrated against the measured peak on CPU,
    tests/reference/test_memory_plan.py): the gradient rows (`hooks`: d * 4, one reused buffer; `vmap`:
    three d-sized copies, the batched per-parameter gradients, their concatenation and torch.func's
    transients, -1 % to +16 % of the measured peak; `loop`: two, the list of flat gradients and their
    stack); with tied input/output embeddings two more embedding-sized terms (vmap: the per-sample lookup
    and output-layer parts; hooks writes both in place, but the term stays as margin: the one CUDA
    measurement, docs/speed-and-memory.md, predates the reused hooks buffer); and the activations of its
    `group` sequences of `width` tokens: per layer ~20 hidden-sized tensors and the attention scores, and
    vocabulary-sized tensors per token: logits, log-softmax and their gradients (4 * V), with `hooks` also
    the kept output-layer gradient and its transposed copy in the bmm, with `vmap` torch.func's
    transients. The V counts (`VOCAB_COPIES`) are fitted to the measured growth of the peak per row
    (chunks of 4 to 64 on CPU: hooks 11.3 MiB, vmap 13.4 MiB per row of 48 tokens at V = 4096)."""
    cfg = model.config
    layers = getattr(cfg, "num_layers", None) or getattr(cfg, "num_hidden_layers", 0)
    heads = getattr(cfg, "num_heads", None) or getattr(cfg, "num_attention_heads", 0)
    emb = model.get_input_embeddings().weight
    tied = emb.requires_grad and getattr(cfg, "tie_word_embeddings", False)
    per_token = VOCAB_COPIES[method] * cfg.vocab_size + layers * (20 * cfg.hidden_size + 2 * heads * width)
    copies = {"hooks": 1, "loop": 2, "vmap": 3}[method] * grad_dim(model) + (2 * emb.numel() if tied else 0)
    return copies * 4 + group * width * per_token * 4

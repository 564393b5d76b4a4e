"""Batched per-sample gradients (torch.func vmap, and hooks on one batched pass) against the per-sample loop
of ordinary autograd backward passes: both families, padded chunks of different lengths, groups, full and
LoRA models."""

import pytest
import torch

from unlearn_repro.fisher import per_sample
from unlearn_repro.models.build import build_model


def _seqs(tok, n, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.randint(3, len(tok), (k,), generator=g).tolist() for k in lens]


FAST = {"vmap": per_sample.batched_grads, "hooks": per_sample.hook_grads}


@pytest.mark.parametrize("method", sorted(FAST))
@pytest.mark.parametrize("family", ["tiny-gpt-neo", "tiny-opt"])
def test_batched_equals_the_per_sample_loop(family, method, tiny_tokenizer):
    model = build_model(family, tiny_tokenizer).eval()
    seqs = _seqs(tiny_tokenizer, 6, 3, 20, 0)  # lengths 3..20: every chunk is padded
    assert len({len(s) for s in seqs}) > 2
    groups = [[s] for s in seqs]
    pad = tiny_tokenizer.pad_token_id
    fast = FAST[method](model, groups, pad, "cpu")
    ref = per_sample.loop_grads(model, groups, pad, "cpu")
    assert fast.shape == ref.shape == (6, sum(p.numel() for p in model.parameters()))
    assert (ref.norm(dim=1) > 1e-3).all()
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0)
    # groups of 2 (fisher.grad_batch_size = 2), one group short: the mean loss of collate(group)
    grouped = [seqs[0:2], seqs[2:4], seqs[4:5]]
    assert torch.allclose(
        FAST[method](model, grouped, pad, "cpu"),
        per_sample.loop_grads(model, grouped, pad, "cpu"),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("method", sorted(FAST))
def test_prompt_tokens_are_masked(method, tiny_tokenizer):
    model = build_model("tiny-gpt-neo", tiny_tokenizer).eval()
    items = [{"ids": s, "prompt_len": 4} for s in _seqs(tiny_tokenizer, 3, 8, 14, 1)]
    pad = tiny_tokenizer.pad_token_id
    assert torch.allclose(
        FAST[method](model, [[i] for i in items], pad, "cpu"),
        per_sample.loop_grads(model, [[i] for i in items], pad, "cpu"),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("method", sorted(FAST))
@pytest.mark.parametrize("family", ["tiny-gpt-neo", "tiny-opt"])
def test_lora_model_gives_only_the_adapter_gradients(family, method, tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    base = build_model(family, tiny_tokenizer)
    targets = ["q_proj", "v_proj"]
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0)
    ).eval()
    with torch.no_grad():  # B = 0 at init would make A's gradient 0: perturb it
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < n_lora < sum(p.numel() for p in model.parameters()) / 10
    groups = [[s] for s in _seqs(tiny_tokenizer, 4, 4, 16, 2)]
    pad = tiny_tokenizer.pad_token_id
    fast = FAST[method](model, groups, pad, "cpu")
    ref = per_sample.loop_grads(model, groups, pad, "cpu")
    assert fast.shape == (4, n_lora) and per_sample.grad_dim(model) == n_lora
    assert (ref.abs().sum(dim=1) > 0).all()
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0)


def test_stream_bounds_chunks_and_keeps_the_order(tiny_tokenizer):
    model = build_model("tiny-opt", tiny_tokenizer).eval()
    groups = [[s] for s in _seqs(tiny_tokenizer, 7, 3, 12, 3)]
    pad = tiny_tokenizer.pad_token_id
    blocks = [
        (p, p.clone()) for p in per_sample.stream(model, iter(groups), 7, 3, pad, "cpu")
    ]  # all kept alive:
    assert (
        len({b.untyped_storage().data_ptr() for b, _ in blocks}) == 1
    )  # hooks write every chunk into one buffer
    parts = [p for _, p in blocks]
    assert [p.shape[0] for p in parts] == [3, 3, 1]
    assert torch.allclose(
        torch.cat(parts), per_sample.loop_grads(model, groups, pad, "cpu"), atol=1e-5, rtol=0
    )


def test_hook_grads_refuses_a_buffer_of_the_wrong_shape(tiny_tokenizer):
    model = build_model("tiny-gpt-neo", tiny_tokenizer).eval()
    groups = [[s] for s in _seqs(tiny_tokenizer, 3, 3, 8, 4)]
    d = per_sample.grad_dim(model)
    with pytest.raises(ValueError, match=r"needs torch.float32 \[>= 3"):
        per_sample.hook_grads(model, groups, tiny_tokenizer.pad_token_id, "cpu", out=torch.empty(2, d))


def test_the_fisher_estimate_is_the_same_from_vmap_loop_and_shards(tiny_tokenizer):
    from unlearn_repro.config import Frozen
    from unlearn_repro.methods import newton

    model = build_model("tiny-gpt-neo", tiny_tokenizer)
    retain = _seqs(tiny_tokenizer, 20, 4, 16, 4)
    base = dict(
        block_size=48,
        damping=0.01,
        num_grads=10,
        grad_batch_size=1,
        rebuild="per_batch",
        update="accumulate",
        chunk=4,
        max_memory_gb=4,
        grads="vmap",
        storage="float32",
        shards=1,
    )
    pad = tiny_tokenizer.pad_token_id

    def est(**kw):
        return newton.estimate_inverse_fisher(
            model, newton.retain_stream(retain, 1, 0), Frozen({**base, **kw}), pad, "cpu", width=16
        )

    fast, loop, sharded, hooks = est(), est(grads="loop"), est(shards=3), est(grads="hooks")
    assert fast.deviation_from_prior()["all"] > 1e-3  # the gradients moved F^-1 off the prior
    v = torch.randn(fast.dim)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731 - F^-1 amplifies fp32 rounding by up to 1/lambda
    assert rel(fast.matmul(v), loop.matmul(v)) < 1e-5
    assert rel(sharded.matmul(v), fast.matmul(v)) < 1e-6
    assert rel(hooks.matmul(v), loop.matmul(v)) < 1e-5
    assert len(sharded.devices) == 3 and fast.count == 10


class _Toy(torch.nn.Module):
    """A causal toy LM that exercises what GPT-Neo / OPT do not: a Linear and a LayerNorm called twice per
    forward (their parts add), an embedding with padding_idx tied to the output layer (the pad row keeps the
    output layer's part only)."""

    def __init__(self, vocab=12, d=6):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d, padding_idx=0)
        self.lin, self.ln = torch.nn.Linear(d, d), torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, input_ids, position_ids=None, use_cache=False):
        h = self.ln(self.lin(torch.tanh(self.lin(self.emb(input_ids)))))
        h = self.ln(h + h.cumsum(1))  # causal mixing over time: pads never reach real tokens
        return type("Out", (), {"logits": self.head(h)})


def test_hooks_add_repeated_calls_and_respect_padding_idx():
    torch.manual_seed(0)
    model = _Toy().double()
    seqs = [[3, 0, 5, 7, 2], [4, 4, 9], [0, 6, 1, 8]]  # token 0 is the embedding's padding_idx
    params = list(model.parameters())
    ref = []
    for s in seqs:  # independent: autograd, one unpadded sequence at a time
        ids = torch.tensor([s])
        loss = torch.nn.functional.cross_entropy(model(ids).logits[0, :-1], ids[0, 1:])
        ref.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    fast = per_sample.hook_grads(model, [[s] for s in seqs], 11, "cpu")
    assert torch.allclose(fast, torch.stack(ref), atol=1e-12, rtol=0)
    assert fast[:, : model.emb.weight.shape[1]].abs().sum() > 0  # the pad row: the output layer's part stays


def test_hooks_refuse_modules_without_a_rule(tiny_tokenizer):
    model = build_model("tiny-gpt-neo", tiny_tokenizer).eval()
    model.extra = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(3))])
    with pytest.raises(NotImplementedError, match="no per-sample rule for ParameterList"):
        per_sample.hook_grads(model, [[[5, 6, 7]]], tiny_tokenizer.pad_token_id, "cpu")

"""The training memory plan (optim/memory.py) against hand-counted bytes, the tensors a real Sophia step
allocates, Llama-2-7B's published parameter count, and its refusals."""

import pytest
import torch

from unlearn_repro.optim import Sophia
from unlearn_repro.optim import memory as M

SMALL = M.Shape(n_params=1000, hidden=8, heads=2, layers=3, vocab=50)


def test_plan_matches_hand_counted_bytes():
    # bf16: weights, grads 1000 x 2; Sophia's m and h 2 x 1000 x 2; NPO's reference 1000 x 2
    # activations per layer: s b h (34 + 5 a s / h) = 16 * 4 * 8 * (34 + 5 * 2 * 16 / 8) = 512 * 54 = 27648
    # (16 bits) x 3 layers = 82944; logits b s V (2 + 8) = 4 * 16 * 50 * 10 = 32000
    p = M.training_plan(SMALL, dtype="bfloat16", optimizer="sophia", sequences=4, seq_len=16, reference=True)
    assert (p.weights, p.gradients, p.states, p.reference, p.activations) == (2000, 2000, 4000, 2000, 114944)
    assert p.total == 124944
    # fp32 doubles the states and the layer activations; the logits' float32 loss copies stay 8 bytes
    p = M.training_plan(SMALL, dtype="float32", optimizer="sophia", sequences=4, seq_len=16, reference=True)
    assert p.total == 4000 * 5 + 3 * 55296 + 4 * 16 * 50 * 12 == 224288
    # two GPUs, sharded: every d-sized part halves, the activations do not
    p = M.training_plan(
        SMALL, dtype="bfloat16", optimizer="sophia", sequences=4, seq_len=16, reference=True, gpus=2
    )
    assert (p.weights, p.gradients, p.states, p.reference, p.activations) == (1000, 1000, 2000, 1000, 114944)
    # SGD keeps no state; inference keeps only the weights and one forward's logits
    assert M.training_plan(SMALL, dtype="bfloat16", optimizer="sgd", sequences=4, seq_len=16).states == 0
    p = M.training_plan(SMALL, dtype="bfloat16", optimizer=None, sequences=4, seq_len=16)
    assert (p.weights, p.gradients, p.states, p.activations) == (2000, 0, 0, 32000)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_plan_counts_what_a_sophia_step_allocates(dtype):
    """Weights, gradients and Sophia's states of a real two-layer Llama after one step: exactly the plan's."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    opt = Sophia(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.update_hessian()
    opt.step()

    def nbytes(ts):
        return sum(t.numel() * t.element_size() for t in ts)

    params = list(model.parameters())
    states = [v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    name = str(dtype).removeprefix("torch.")
    plan = M.training_plan(
        M.Shape.of_config(config, M.n_params_of(config)),
        dtype=name,
        optimizer="sophia",
        sequences=2,
        seq_len=8,
    )
    assert M.n_params_of(config) == sum(p.numel() for p in params)
    assert (plan.weights, plan.gradients, plan.states) == (
        nbytes(params),
        nbytes(p.grad for p in params),
        nbytes(states),
    )


def test_llama2_7b_shape_and_plan():
    """Llama-2-7B's config (its config.json values) has 6,738,415,616 parameters (Touvron et al. 2023:
    "7B"; the count every loader prints); in bf16 its weights alone are 12.55 GiB."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
    )
    shape = M.Shape.of_config(config, M.n_params_of(config))
    assert shape == M.Shape(6738415616, 4096, 32, 32, 32000)
    p = M.training_plan(
        shape, dtype="bfloat16", optimizer="sophia", sequences=16, seq_len=256, reference=True
    )
    assert p.weights == p.gradients == p.reference == 2 * 6738415616 and p.states == 4 * 6738415616
    # Sophia's states in bf16 are half of fp32's: 25.1 GiB, not 50.2 GiB
    assert round(p.states / M.GIB, 1) == 25.1


def test_refusal_names_what_fits():
    big = M.Shape(n_params=10**6, hidden=8, heads=2, layers=3, vocab=50)  # the weights dominate, as at 7B
    args = dict(shape=big, dtype="float32", optimizer="sophia", seq_len=16, reference=True)
    need = M.training_plan(sequences=8, **args).total  # batch 4, forget + retain
    # budget: batch 2 of two batches (4 sequences) fits in fp32, batch 3 does not
    budget = M.training_plan(sequences=4, **args).total
    assert M.training_plan(sequences=6, **args).total > budget
    with pytest.raises(M.TrainingMemoryError) as e:
        M.check_fits(
            budget, what="tofu unlearn npo SO", batch_key="tofu.batch_size", batch_size=4, batches=2, **args
        )
    msg = str(e.value)
    assert msg.startswith(f"tofu unlearn npo SO: needs {need / 2**20:.1f} MiB per device on 1 GPU(s)"), msg
    assert "tofu.batch_size: 2; or dtype bfloat16; or 2 such GPUs with sharded" in msg, msg
    # what fits passes and returns the plan it checked
    assert M.check_fits(budget, what="x", batch_key="k", batch_size=2, batches=2, **args).total == budget
    # nothing fits: the activations of one sequence alone exceed the device
    with pytest.raises(M.TrainingMemoryError, match="what fits: a device with"):
        M.check_fits(100, what="x", batch_key="k", batch_size=1, **{**args, "shape": SMALL})
    with pytest.raises(ValueError, match="dtype must be one of"):
        M.training_plan(SMALL, dtype="float8", optimizer="sophia", sequences=1, seq_len=1)

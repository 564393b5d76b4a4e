"""EmpiricalFisherInverse against independent references: the dense inverse of the block-diagonal
damped Fisher (torch.linalg.inv), the closed form for one gradient, eigendecomposition powers."""

import math

import pytest
import torch

from unlearn_repro.fisher import EmpiricalFisherInverse, FisherMemoryError, batched_eigh, fisher_bytes


def dense_reference(grads: torch.Tensor, block: int, damping: float, m: int) -> torch.Tensor:
    """inv of blockdiag(lambda I + (1/m) G^T G), built densely and masked to the diagonal blocks."""
    d = grads.shape[1]
    f = damping * torch.eye(d, dtype=torch.float64) + grads.double().T @ grads.double() / m
    mask = torch.zeros(d, d, dtype=torch.bool)
    for s in range(0, d, block):
        mask[s : s + block, s : s + block] = True
    return torch.linalg.inv(torch.where(mask, f, torch.zeros_like(f)))


@pytest.mark.parametrize("d,block,m,damping", [(96, 16, 24, 1.0), (101, 48, 40, 0.3), (7, 4, 3, 2.0)])
def test_rank1_recursion_matches_dense_inverse(d, block, m, damping):
    g = torch.randn(m, d, generator=torch.Generator().manual_seed(d)) * 3
    f = EmpiricalFisherInverse(d, block, damping, m, dtype=torch.float64)
    for row in g:
        f.update(row)
    ref = dense_reference(g, block, damping, m)
    assert torch.allclose(f.dense(), ref, atol=1e-10)
    v = torch.randn(d, dtype=torch.float64)
    assert torch.allclose(f.matmul(v), ref @ v, atol=1e-10)


def test_batched_woodbury_equals_rank1_in_fp32():
    d, block, m = 500, 48, 64
    g = torch.randn(m, d, generator=torch.Generator().manual_seed(0))
    one = EmpiricalFisherInverse(d, block, 1.0, m)
    for row in g:
        one.update(row)
    many = EmpiricalFisherInverse(d, block, 1.0, m)
    for chunk in g.split(20):  # uneven chunks: 20, 20, 20, 4
        many.update_batch(chunk)
    assert many.count == one.count == m
    assert torch.allclose(many.inv, one.inv, atol=1e-5)


def test_accumulated_fisher_equals_the_recursion():
    d, block, m = 230, 48, 40
    g = torch.randn(m, d, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    acc = EmpiricalFisherInverse(d, block, 0.5, m, dtype=torch.float64)
    for chunk in g.split(16):
        acc.accumulate(chunk)
    assert torch.allclose(acc.dense(), dense_reference(g, block, 0.5, m), atol=1e-10)
    # mixing: a recursion step after accumulating, and accumulating after a recursion step
    mixed = EmpiricalFisherInverse(d, block, 0.5, m, dtype=torch.float64)
    mixed.update(g[0])
    mixed.accumulate(g[1:30])
    for row in g[30:]:
        mixed.update(row)
    assert torch.allclose(mixed.dense(), dense_reference(g, block, 0.5, m), atol=1e-10)


def test_closed_form_single_gradient():
    # (lambda I + g g^T / m)^-1 = I/lambda - g g^T / (lambda (m lambda + g^T g)), one block of
    # the whole vector
    d, lam, m = 12, 0.7, 1
    g = torch.randn(d, dtype=torch.float64)
    f = EmpiricalFisherInverse(d, d, lam, m, dtype=torch.float64)
    f.update(g)
    closed = torch.eye(d, dtype=torch.float64) / lam - torch.outer(g, g) / (lam * (m * lam + g @ g))
    assert torch.allclose(f.dense(), closed, atol=1e-12)


def test_initial_inverse_is_identity_over_lambda_and_padding_is_ignored():
    f = EmpiricalFisherInverse(10, 4, 2.0, 8, dtype=torch.float64)
    assert f.n_blocks == 3  # 10 = 4 + 4 + 2 (last block padded)
    v = torch.arange(10, dtype=torch.float64)
    assert torch.allclose(f.matmul(v), v / 2)
    assert f.deviation_from_prior()["all"] == 0.0
    with pytest.raises(ValueError, match="length 10"):
        f.matmul(torch.ones(12))


def test_power_matmul_matches_eigendecomposition_of_dense_inverse():
    d, block, m = 40, 8, 16
    g = torch.randn(m, d, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    f = EmpiricalFisherInverse(d, block, 1.0, m, dtype=torch.float64)
    f.update_batch(g)
    ref = dense_reference(g, block, 1.0, m)
    w, q = torch.linalg.eigh(ref)
    v = torch.randn(d, dtype=torch.float64)
    for p in (0.25, 1.0, -1.0):
        assert torch.allclose(f.power_matmul(v, p), q @ torch.diag(w**p) @ q.T @ v, atol=1e-9)
    # Fisher Forgetting's premise: with lambda = 1, ||F^-1/4|| <= 1, so the noise never grows
    x = torch.randn(d, dtype=torch.float64)
    assert f.power_matmul(x, 0.25).norm() <= x.norm() + 1e-12


def test_real_gradients_of_a_language_model(tiny_model_and_batches):
    from unlearn_repro.methods.newton import flat_grad

    model, batches, pad = tiny_model_and_batches
    grads = torch.stack([flat_grad(model, b, pad, "cpu") for b in batches])[:, :480].double()
    f = EmpiricalFisherInverse(480, 48, 1.0, len(grads), dtype=torch.float64)
    f.update_batch(grads)
    assert torch.allclose(f.dense(), dense_reference(grads, 48, 1.0, len(grads)), atol=1e-10)


def test_memory_is_checked_before_allocating():
    assert fisher_bytes(1000, 48) == math.ceil(1000 / 48) * 48 * 48 * 4
    # 0.18 GiB of F^-1 + 5 slices of 1024 blocks fp32 workspace (0.04 GiB); nothing allocated,
    # settings proposed
    with pytest.raises(
        FisherMemoryError,
        match=r"d=1,000,000 parameters with block size B=48 needs 0\.21 GiB on cpu "
        r"\(F\^-1 0\.18 GiB in float32, factorization workspace 0\.04\).*"
        r"Settings that fit: block_size=32, storage=float32, shards=1.*"
        r"block_size=48, storage=bfloat16, shards=1.*"
        r"block_size=48, storage=float32, shards=2",
    ):
        EmpiricalFisherInverse(1_000_000, 48, max_bytes=int(0.15 * 2**30))
    EmpiricalFisherInverse(
        1_000_000, 48, max_bytes=int(0.15 * 2**30), devices=["cpu", "cpu"]
    )  # the proposal fits


def test_deviation_reports_how_far_from_the_prior():
    f = EmpiricalFisherInverse(96, 48, 1.0, 4)
    f.update_batch(torch.full((4, 96), 1e-4))
    tiny = f.deviation_from_prior({"first": (0, 48), "second": (48, 48)})
    f2 = EmpiricalFisherInverse(96, 48, 1.0, 4)
    f2.update_batch(torch.full((4, 96), 1.0))
    big = f2.deviation_from_prior()
    assert tiny["all"] < 1e-6 < 0.1 < big["all"]  # tiny gradients: F^-1 ~ I, the update ~ gradient ascent
    assert set(tiny) == {"all", "first", "second"}


def test_batched_eigh_splits_blocks_over_threads_without_changing_any(monkeypatch):
    a = torch.randn(37, 48, 60, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    spd = a @ a.transpose(1, 2) / 60 + 1e-3 * torch.eye(48, dtype=torch.float64)
    real_eigh, parts = torch.linalg.eigh, []
    monkeypatch.setattr(torch.linalg, "eigh", lambda x: parts.append(len(x)) or real_eigh(x))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        w, q = batched_eigh(spd)
    finally:
        torch.set_num_threads(threads)
    assert sorted(parts) == [11, 13, 13]  # torch.chunk: 3 parts, one thread each
    ref_w, ref_q = real_eigh(spd)
    assert torch.equal(w, ref_w) and torch.equal(q, ref_q)
    assert torch.allclose(q @ torch.diag_embed(w) @ q.transpose(1, 2), spd, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.randn(32, 300)
    cpu = EmpiricalFisherInverse(300, 48, 1.0, 32)
    cpu.update_batch(g)
    gpu = EmpiricalFisherInverse(300, 48, 1.0, 32, device="cuda")
    gpu.update_batch(g.cuda())
    assert torch.allclose(gpu.inv.cpu(), cpu.inv, atol=1e-5)
    v = torch.randn(300)  # F^-1/4 v: 48x48 blocks take batched_eigh's CPU detour
    assert torch.allclose(gpu.power_matmul(v.cuda(), 0.25).cpu(), cpu.power_matmul(v, 0.25), atol=1e-5)


def _built(dim, block, m, grads, **kw):
    f = EmpiricalFisherInverse(dim, block, 0.5, m, **kw)
    f.accumulate(grads[: m // 2])
    f.update_batch(grads[m // 2 : m - 2])
    for row in grads[m - 2 :]:
        f.update(row)
    return f


@pytest.mark.parametrize("shards,slice_blocks", [(2, 1024), (3, 2), (5, 1)])
def test_sharded_layout_gives_the_same_matrix_and_products(shards, slice_blocks):
    d, block, m = 250, 16, 24  # 16 blocks, the last one padded
    g = torch.randn(m, d, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    one = _built(d, block, m, g, dtype=torch.float64)
    many = _built(d, block, m, g, dtype=torch.float64, devices=["cpu"] * shards, slice_blocks=slice_blocks)
    assert len(many.shard_bytes()) == shards and sum(many.shard_bytes()) == one.shard_bytes()[0]
    assert [hi - lo for lo, hi in many.ranges] == [len(r) for r in torch.arange(16).tensor_split(shards)]
    assert torch.allclose(many.dense(), one.dense(), atol=1e-12)
    assert torch.allclose(one.dense(), dense_reference(g, block, 0.5, m), atol=1e-10)
    v = torch.randn(d, dtype=torch.float64)
    assert torch.allclose(many.matmul(v), one.matmul(v), atol=1e-12)
    assert torch.allclose(many.power_matmul(v, 0.25), one.power_matmul(v, 0.25), atol=1e-12)
    assert many.deviation_from_prior() == pytest.approx(one.deviation_from_prior(), rel=1e-9)


def test_half_precision_storage_is_close_to_fp32_and_half_the_bytes():
    d, block, m = 600, 48, 64
    g = torch.randn(m, d, generator=torch.Generator().manual_seed(8))
    full = EmpiricalFisherInverse(d, block, 1.0, m)
    half = EmpiricalFisherInverse(d, block, 1.0, m, dtype=torch.bfloat16, devices=["cpu", "cpu"])
    for f in (full, half):
        for c in g.split(16):
            f.accumulate(c)
    assert sum(half.shard_bytes()) * 2 == full.shard_bytes()[0]
    v = torch.randn(d)
    ref = full.matmul(v)
    assert (half.matmul(v) - ref).norm() / ref.norm() < 1e-2  # bf16: 8 bits of mantissa
    assert (half.power_matmul(v, 0.25) - full.power_matmul(v, 0.25)).norm() / v.norm() < 1e-2


def test_triangular_solve_inversion_equals_cholesky_inverse():
    from unlearn_repro.fisher import invert_spd

    a = torch.randn(300, 48, 64, generator=torch.Generator().manual_seed(9))
    spd = a @ a.transpose(1, 2) / 64 + 1e-3 * torch.eye(48)
    ref = torch.cholesky_inverse(torch.linalg.cholesky(spd))
    assert (invert_spd(spd, "solve_triangular") - ref).abs().max() <= 1e-6 * ref.abs().max()
    d64 = spd.double()
    for method in ("cholesky_inverse", "solve_triangular"):
        assert torch.allclose(invert_spd(d64, method), torch.linalg.inv(d64), atol=1e-8)


def test_memory_plan_counts_the_peak_and_plans_shards_or_half_precision():
    from unlearn_repro.fisher import memory_plan, plan_layout

    d, b = 125_198_592, 48  # GPT-Neo-125M
    one = memory_plan(d, b, shards=1, chunk=8, grad_row_bytes=2 * 4 * d, model_bytes=8 * d)[0]
    assert one["fisher"] == fisher_bytes(d, b)
    assert one["peak"] == one["fisher"] + one["model"] + one["workspace"] + one["grad_chunk"]
    four = memory_plan(d, b, shards=4, chunk=8, grad_row_bytes=2 * 4 * d, model_bytes=8 * d)
    assert sum(r["fisher"] for r in four) == one["fisher"]
    assert four[1]["model"] == four[1]["grad_chunk"] == 0 < four[0]["model"]
    # a 1 GiB cap on CPU: auto storage falls back to bfloat16 when float32 does not fit, never silently over
    d = 5_000_000
    devs, dtype, _, plan = plan_layout(
        d, 48, device="cpu", storage="auto", shards=1, max_bytes=int(0.8 * 2**30)
    )
    assert dtype == torch.bfloat16 and plan[0]["peak"] <= 0.8 * 2**30 < fisher_bytes(d, 48)
    with pytest.raises(FisherMemoryError, match="Settings that fit: .*storage=bfloat16"):
        plan_layout(d, 48, device="cpu", storage="float32", shards=1, max_bytes=int(0.8 * 2**30))
    devs, dtype, _, _ = plan_layout(
        d, 48, device="cpu", storage="float32", shards=2, max_bytes=int(0.8 * 2**30)
    )
    assert devs == [torch.device("cpu")] * 2 and dtype == torch.float32
    # a gradient chunk of 48 rows of 40 MB does not fit 2.5 GiB beside F^-1: the plan halves it to 24 (fits)
    devs, dtype, chunk, plan = plan_layout(
        d,
        48,
        device="cpu",
        storage="float32",
        shards=1,
        chunk=48,
        grad_row_bytes=40_000_000,
        max_bytes=int(2.5 * 2**30),
    )
    assert (chunk, dtype) == (24, torch.float32) and plan[0]["grad_chunk"] == 24 * 40_000_000

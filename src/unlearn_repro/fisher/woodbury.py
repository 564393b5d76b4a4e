"""Block-diagonal inverse empirical Fisher, built by the paper's recursion (Eq. 7-8).

F_m = lambda I + (1/m) sum_i g_i g_i^T, restricted to diagonal blocks of width B of the flattened
parameter vector (the last block zero-padded). Each block's inverse is kept as a dense B x B matrix, all
blocks in one [n_blocks, B, B] tensor, so every step is one batched operation: no Python loop over blocks.

Three ways to add gradients, all giving the same matrix (up to rounding):
  * `update`: Eq. 8 as written, one rank-1 Sherman-Morrison step per gradient; reads and writes all
    d*B entries per gradient (memory-bandwidth bound).
  * `update_batch`: k gradients as one rank-k Woodbury step (GEMMs instead of matrix-vector products).
  * `accumulate`: adds (1/m) G^T G to the block Fisher itself with one batched GEMM per chunk and inverts
    each B x B block once, at first use (Cholesky; `invert_spd` also offers L^-1 by a batched
    triangular solve and L^-T L^-1 by a batched GEMM, equal to 1e-6, measured in the benchmark).

Scaling past one device (paper: several GPUs): the blocks are split into contiguous ranges, one shard per
device (`devices`), and may be stored in half precision (`dtype`); every operation runs slice by slice
of at most `slice_blocks` blocks in fp32, so the fp32 workspace stays bounded whatever d is.
`memory_plan` counts what the Fisher step holds at its peak (F^-1 per shard, the factorization workspace,
the gradient chunk, the model and its gradient) and `plan_layout` picks shards / precision that fit.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import psutil
import torch

SLICE_BLOCKS = (
    1024  # blocks per fp32 work slice: bounds the factorization workspace (5 * 1024 * 48^2 * 4 B = 45 MiB)
)
STORAGE = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


class FisherMemoryError(MemoryError):
    """The inverse Fisher would not fit: raised before allocating, with the numbers and settings that fit."""


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def fisher_bytes(dim: int, block_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the [n_blocks, B, B] inverse: about dim * B * itemsize."""
    return math.ceil(dim / block_size) * block_size * block_size * _itemsize(dtype)


def workspace_bytes(block_size: int, blocks: int, dtype: torch.dtype = torch.float32) -> int:
    """fp32 temporaries of one work slice at the inversion's peak: Cholesky factor, L^-1, L^-T L^-1 and
    the solver's copy (4 slices), plus the fp32 copy of the slice when stored in half precision."""
    copies = 4 + (1 if _itemsize(dtype) < 4 else 0)
    return copies * blocks * block_size * block_size * max(4, _itemsize(dtype))


def shard_ranges(n_blocks: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous block ranges, as even as possible: shard i holds blocks [lo, hi)."""
    n_shards = max(1, min(n_shards, n_blocks))
    base, extra = divmod(n_blocks, n_shards)
    out, lo = [], 0
    for i in range(n_shards):
        hi = lo + base + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def memory_plan(
    dim: int,
    block_size: int,
    *,
    shards: int = 1,
    dtype: torch.dtype = torch.float32,
    chunk: int = 0,
    grad_row_bytes: int = 0,
    model_bytes: int = 0,
    power: bool = False,
    slice_blocks: int = SLICE_BLOCKS,
) -> list[dict]:
    """Bytes each shard holds at the Fisher step's peak. Shard 0 is the model's device: it also holds the
    model with one flat gradient (`model_bytes`) and the gradient chunk (`chunk` rows of
    `grad_row_bytes`: the per-sample gradients and their activations). `power`: the eigendecomposition
    Fisher Forgetting caches (F^-1/4). The gradient chunk and the inversion workspace are not alive at
    the same time (gradients first, inversion at first use), but the peak counts both: the allocator
    (glibc, CUDA's caching allocator) keeps the freed chunk's memory, measured on CPU
    (tests/reference/test_memory_plan.py: the max of the two is 20-30 % under the measured peak)."""
    n_blocks = math.ceil(dim / block_size)
    rows = []
    for i, (lo, hi) in enumerate(shard_ranges(n_blocks, shards)):
        fisher = fisher_bytes((hi - lo) * block_size, block_size, dtype)
        work = workspace_bytes(block_size, min(slice_blocks, hi - lo), dtype)
        eig = fisher + (hi - lo) * block_size * 4 if power else 0
        grads = chunk * grad_row_bytes if i == 0 else 0
        model = model_bytes if i == 0 else 0
        rows.append(
            {
                "shard": i,
                "blocks": hi - lo,
                "fisher": fisher,
                "workspace": work,
                "eig_cache": eig,
                "grad_chunk": grads,
                "model": model,
                "peak": fisher + eig + model + work + grads,
            }
        )
    return rows


def _fits(plan: list[dict], limits: list[int]) -> bool:
    return all(row["peak"] <= limit for row, limit in zip(plan, limits))


def propose(
    dim: int,
    block_size: int,
    limit: int,
    *,
    chunk: int = 0,
    grad_row_bytes: int = 0,
    model_bytes: int = 0,
    power: bool = False,
    max_shards: int = 8,
    n: int = 4,
) -> str:
    """Up to `n` settings (fisher.block_size, fisher.storage, fisher.shards, fisher.chunk) whose plan fits
    `limit` bytes on every device, cheapest change first."""
    found = []
    chunks = sorted({c for c in (chunk, 16, 8, 4, 1) if 0 < c <= chunk}, reverse=True) or [0]
    for shards in (s for s in (1, 2, 4, 8) if s <= max_shards):
        for storage in ("float32", "bfloat16"):
            fit = next(
                (
                    (b, c, plan)
                    for b in sorted({block_size, 32, 16, 8}, reverse=True)
                    if b <= block_size
                    for c in chunks
                    for plan in [
                        memory_plan(
                            dim,
                            b,
                            shards=shards,
                            dtype=STORAGE[storage],
                            chunk=c,
                            grad_row_bytes=grad_row_bytes,
                            model_bytes=model_bytes,
                            power=power,
                        )
                    ]
                    if _fits(plan, [limit] * len(plan))
                ),
                None,
            )
            if fit:
                b, c, plan = fit
                found.append(
                    f"block_size={b}, storage={storage}, shards={shards}"
                    + (f", chunk={c}" if c else "")
                    + f" (peak {max(r['peak'] for r in plan) / 2**30:.2f} GiB per device)"
                )
            if len(found) >= n:
                return "; ".join(found)
    return "; ".join(found) or (
        f"none up to {max_shards} devices of {limit / 2**30:.2f} GiB: the model and one "
        "gradient alone do not fit"
    )


def batched_eigh(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.linalg.eigh of a batch of symmetric blocks, fast where torch's own is not. On CUDA torch loops
    over blocks larger than 32x32 one at a time, and on a CPU it runs LAPACK block after block on one thread
    (measured on an H200 machine, 8192 blocks of 48x48: 5.8 s on the GPU, 1.3 s on the CPU whatever the thread
    count). So blocks go to the CPU and are split over `torch.get_num_threads()` threads (LAPACK releases the
    GIL); each block's result is the same as alone. cuSOLVER's batched Jacobi keeps blocks <= 32."""
    if a.is_cuda and a.shape[-1] <= 32:
        return torch.linalg.eigh(a)
    parts = a.cpu().chunk(max(1, min(torch.get_num_threads(), a.shape[0])))
    if len(parts) == 1:
        w, q = torch.linalg.eigh(parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            done = list(pool.map(torch.linalg.eigh, parts))
        w, q = torch.cat([d[0] for d in done]), torch.cat([d[1] for d in done])
    return w.to(a.device), q.to(a.device)


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    return psutil.virtual_memory().available


def plan_layout(
    dim: int,
    block_size: int,
    *,
    device,
    storage: str = "auto",
    shards="auto",
    max_bytes: int | None = None,
    chunk: int = 0,
    grad_row_bytes: int = 0,
    model_bytes: int = 0,
    power: bool = False,
) -> tuple[list[torch.device], torch.dtype, int, list[dict]]:
    """Pick the devices, storage precision and gradient chunk of the Fisher step (fp32 before bf16, then
    fewest shards, then the largest chunk <= `chunk`, halving) whose memory plan fits each device (free
    memory, capped at `max_bytes`); raise FisherMemoryError with settings that fit otherwise. The chunk
    only changes speed, never the matrix. `shards="auto"` spreads over the visible CUDA devices; on CPU
    shards share the host."""
    device = torch.device(device)
    n_cuda = torch.cuda.device_count() if device.type == "cuda" else 0
    counts = [int(shards)] if shards != "auto" else ([s for s in (1, 2, 4, 8, 16) if s <= max(n_cuda, 1)])
    dtypes = [STORAGE[storage]] if storage != "auto" else [torch.float32, torch.bfloat16]
    chunks = [chunk >> i for i in range(chunk.bit_length())] if chunk > 0 else [0]

    def devices_for(n):
        if device.type == "cuda" and n <= n_cuda:
            first = device.index or 0
            return [torch.device("cuda", (first + i) % n_cuda) for i in range(n)]
        return [device] * n

    first = None
    for dtype in dtypes:
        for n in counts:
            devs = devices_for(n)
            for c in chunks:
                plan = memory_plan(
                    dim,
                    block_size,
                    shards=n,
                    dtype=dtype,
                    chunk=c,
                    grad_row_bytes=grad_row_bytes,
                    model_bytes=model_bytes,
                    power=power,
                )
                limits = _device_limits(devs[: len(plan)], plan, max_bytes)
                if _fits(plan, limits):
                    return devs[: len(plan)], dtype, c, plan
                first = first or (devs, dtype, plan, limits)
    devs, dtype, plan, limits = first
    worst = max(range(len(plan)), key=lambda i: plan[i]["peak"] - limits[i])
    row, limit = plan[worst], max(limits[worst], 0)
    raise _memory_error(
        dim,
        block_size,
        devs[worst],
        row,
        dtype,
        limit,
        propose(
            dim,
            block_size,
            limit,
            chunk=chunk,
            grad_row_bytes=grad_row_bytes,
            model_bytes=model_bytes,
            power=power,
        ),
        "; no smaller chunk fits either",
    )


def layout_record(devices, dtype: torch.dtype, chunk: int, plan: list[dict], asked_chunk: int) -> dict:
    """What `plan_layout` chose, as the run's record keeps it: without it a user cannot see that the chunk was
    halved or the storage fell back to bf16. Numbers stay numbers (MLflow metrics); storage also
    as its bytes."""
    return {
        "chunk": chunk,
        "chunk_asked": asked_chunk,
        "storage": str(dtype).replace("torch.", ""),
        "storage_bytes": _itemsize(dtype),
        "shards": len(plan),
        "devices": [str(d) for d in devices],
        "planned_peak_gib": round(max(row["peak"] for row in plan) / 2**30, 3),
    }


def layout_line(layout: dict) -> str:
    """The one log line of a chosen layout (docs/paper-scale.md shows it)."""
    asked = (
        ""
        if layout["chunk"] == layout["chunk_asked"]
        else f" (fisher.chunk {layout['chunk_asked']} did not fit)"
    )
    return (
        f"[fisher] layout: chunk {layout['chunk']}{asked}, storage {layout['storage']}, {layout['shards']} "
        f"shard(s) on {', '.join(dict.fromkeys(layout['devices']))}, planned peak "
        f"{layout['planned_peak_gib']:.2f} GiB per device"
    )


def _memory_error(
    dim, block_size, device, row, dtype, limit, settings: str, why: str = ""
) -> FisherMemoryError:
    """What did not fit where, its breakdown, and settings that fit."""
    return FisherMemoryError(
        f"inverse Fisher for d={dim:,} parameters with block size B={block_size} needs "
        f"{row['peak'] / 2**30:.2f} GiB on {device} ({_breakdown(row, dtype)}), "
        f"over the {max(limit, 0) / 2**30:.2f} GiB "
        f"allowed (fisher.max_memory_gb or free memory){why}. Settings that fit: {settings}"
    )


def _device_limits(devs, plan, max_bytes) -> list[int]:
    """Per shard, its share of its device's free memory (shards on one device split it),
    capped by max_bytes."""
    out = []
    for dev, row in zip(devs, plan):
        same = [r["peak"] for d, r in zip(devs, plan) if d == dev]
        share = row["peak"] / max(sum(same), 1)
        free = int(_available_bytes(dev) * share)
        out.append(min(free, max_bytes if max_bytes is not None else free))
    return out


def _breakdown(row: dict, dtype) -> str:
    gib = lambda b: f"{b / 2**30:.2f}"  # noqa: E731
    parts = [
        f"F^-1 {gib(row['fisher'])} GiB in {str(dtype).replace('torch.', '')}",
        f"factorization workspace {gib(row['workspace'])}",
    ]
    if row["grad_chunk"]:
        parts.append(f"gradient chunk {gib(row['grad_chunk'])}")
    if row["model"]:
        parts.append(f"model and its gradient {gib(row['model'])}")
    if row["eig_cache"]:
        parts.append(f"F^-1/4 eigendecomposition {gib(row['eig_cache'])}")
    return ", ".join(parts)


class EmpiricalFisherInverse:
    """F^-1 of the damped empirical Fisher, block-diagonal with blocks of width `block_size`, its block
    ranges sharded over `devices` (default: one shard on `device`), stored in `dtype`."""

    def __init__(
        self,
        dim: int,
        block_size: int = 48,
        damping: float = 1.0,
        num_grads: int = 1024,
        dtype: torch.dtype = torch.float32,
        device=None,
        max_bytes: int | None = None,
        devices=None,
        slice_blocks: int = SLICE_BLOCKS,
    ):
        if dim < 1 or block_size < 1 or num_grads < 1 or damping <= 0 or slice_blocks < 1:
            raise ValueError(
                "EmpiricalFisherInverse needs dim, block_size, num_grads, slice_blocks >= 1 and damping > 0; "
                f"got dim={dim}, block_size={block_size}, num_grads={num_grads}, damping={damping}"
            )
        self.dim, self.block_size, self.damping, self.num_grads = dim, block_size, float(damping), num_grads
        self.dtype, self.slice_blocks = dtype, slice_blocks
        devices = [torch.device(d) for d in (devices or [device if device is not None else "cpu"])]
        self.device = devices[0]
        self.n_blocks = math.ceil(dim / block_size)
        self.ranges = shard_ranges(self.n_blocks, len(devices))
        self.devices = devices[: len(self.ranges)]
        plan = memory_plan(dim, block_size, shards=len(self.ranges), dtype=dtype, slice_blocks=slice_blocks)
        limits = _device_limits(self.devices, plan, max_bytes)
        for dev, row, limit in zip(self.devices, plan, limits):
            if row["peak"] > limit:
                raise _memory_error(
                    dim, block_size, dev, row, dtype, limit, propose(dim, block_size, max(limit, 0))
                )
        eye = torch.eye(block_size, dtype=dtype) / self.damping
        self._parts = [
            eye.to(dev).expand(hi - lo, block_size, block_size).clone()
            for dev, (lo, hi) in zip(self.devices, self.ranges)
        ]  # F^-1, or F while accumulating
        self._holds_fisher = False
        self.count = 0
        self.sq_norm_sum = 0.0  # sum of ||g||^2 over the gradients added: trace(G^T G), the Fisher's scale
        self._eig = None

    # -- layout --------------------------------------------------------------------------------------
    @property
    def work_dtype(self) -> torch.dtype:
        return torch.promote_types(self.dtype, torch.float32)

    def shard_bytes(self) -> list[int]:
        return [p.untyped_storage().nbytes() for p in self._parts]

    def _slices(self):
        """(shard tensor, local [s, e), global first block) for every work slice, shard by shard."""
        for part, (lo, hi) in zip(self._parts, self.ranges):
            for s in range(0, hi - lo, self.slice_blocks):
                yield part, s, min(s + self.slice_blocks, hi - lo), lo + s

    def _vec_blocks(self, v: torch.Tensor, first: int, n: int, device) -> torch.Tensor:
        """Blocks [first, first + n) of v ([..., dim]) as [..., n, B] in fp32 (at least) on `device`."""
        lo, hi = first * self.block_size, min((first + n) * self.block_size, self.dim)
        x = v[..., lo:hi].to(device=device, dtype=self.work_dtype)
        if hi - lo < n * self.block_size:
            x = torch.nn.functional.pad(x, (0, n * self.block_size - (hi - lo)))
        return x.reshape(*x.shape[:-1], n, self.block_size)

    def _check(self, v: torch.Tensor) -> None:
        if v.shape[-1] != self.dim:
            raise ValueError(f"expected a vector of length {self.dim}, got shape {tuple(v.shape)}")

    def _edit(self, part, s, e):
        """fp32 view (or copy, for half storage) of a slice, and how to write it back."""
        work = part[s:e].to(self.work_dtype)
        return work, (lambda: None) if work.data_ptr() == part[s:e].data_ptr() else (
            lambda: part[s:e].copy_(work)
        )

    # -- the matrix ----------------------------------------------------------------------------------
    def finalize(self) -> None:
        """Invert the accumulated Fisher blocks in place, slice by slice (Cholesky, `invert_spd`)."""
        if not self._holds_fisher:
            return
        for part, s, e, _ in self._slices():
            part[s:e].copy_(invert_spd(part[s:e].to(self.work_dtype)))
        self._holds_fisher = False

    @property
    def inv(self) -> torch.Tensor:
        """The [n_blocks, B, B] inverse blocks (all shards gathered on the first device:
        small models only)."""
        self.finalize()
        return (
            self._parts[0] if len(self._parts) == 1 else torch.cat([p.to(self.device) for p in self._parts])
        )

    # -- building ----------------------------------------------------------------------------------
    def update(self, grad: torch.Tensor) -> None:
        """One step of Eq. 8: F^-1 <- F^-1 - (F^-1 g)(F^-1 g)^T / (m + g^T F^-1 g), per block, in place."""
        self._check(grad)
        self.finalize()
        self._scale(grad)
        for part, s, e, first in self._slices():
            inv, write_back = self._edit(part, s, e)
            g = self._vec_blocks(grad, first, e - s, part.device)  # [n, B]
            fg = torch.bmm(inv, g.unsqueeze(-1))  # [n, B, 1]
            denom = self.num_grads + torch.bmm(g.unsqueeze(-2), fg)  # [n, 1, 1]
            u = fg / denom.sqrt()
            inv.baddbmm_(u, u.transpose(1, 2), alpha=-1.0)  # no [n, B, B] temporary
            write_back()
        self._added(1)

    def update_batch(self, grads: torch.Tensor) -> None:
        """k gradients at once (rank-k Woodbury): F^-1 <- A - A U (m I + U^T A U)^-1 U^T A, per block.

        The same matrix as k rank-1 steps; chunks of at most B gradients keep the k x k solves cheap."""
        if grads.dim() == 1:
            grads = grads.unsqueeze(0)
        self._check(grads)
        self.finalize()
        self._scale(grads)
        for part, s, e, first in self._slices():
            inv, write_back = self._edit(part, s, e)
            for chunk in grads.split(self.block_size):
                u = self._vec_blocks(chunk, first, e - s, part.device).permute(1, 2, 0)  # [n, B, k]
                au = torch.bmm(inv, u)  # [n, B, k]
                small = torch.bmm(u.transpose(1, 2), au)  # [n, k, k]
                small.diagonal(dim1=1, dim2=2).add_(self.num_grads)
                sol = torch.linalg.solve(small, au.transpose(1, 2))  # [n, k, B]
                inv.baddbmm_(au, sol, alpha=-1.0)
            write_back()
        self._added(grads.shape[0])

    def accumulate(self, grads: torch.Tensor) -> None:
        """Add (1/m) sum g g^T of k gradients to the block Fisher (one batched GEMM per slice); F^-1 is
        formed at first use. In half-precision storage the sum is fp32 within a chunk, rounded between."""
        if grads.dim() == 1:
            grads = grads.unsqueeze(0)
        self._check(grads)
        self._scale(grads)
        if not self._holds_fisher:  # switch to holding F (exact for the prior)
            for part, s, e, _ in self._slices():
                if self.count == 0:
                    part[s:e].mul_(self.damping**2)  # I/lambda -> lambda I
                else:
                    part[s:e].copy_(torch.linalg.inv(part[s:e].to(self.work_dtype)))
            self._holds_fisher = True
        for part, s, e, first in self._slices():
            work, write_back = self._edit(part, s, e)
            g = self._vec_blocks(grads, first, e - s, part.device).permute(1, 2, 0)  # [n, B, k]
            work.baddbmm_(g, g.transpose(1, 2), alpha=1.0 / self.num_grads)
            write_back()
        self._added(grads.shape[0])

    def _added(self, n_new: int) -> None:
        self.count += n_new
        self._eig = None

    def _scale(self, grads: torch.Tensor) -> None:
        self.sq_norm_sum += float(grads.double().pow(2).sum())

    def diag_mean(self) -> float:
        """Mean of diag((1/m) G^T G) over all d coordinates, the damping left out: the Fisher's own scale
        (the blocks keep the full diagonal, so it is also the block-diagonal Fisher's)."""
        return self.sq_norm_sum / (self.num_grads * self.dim)

    def set_damping(self, damping: float) -> None:
        """Replace lambda by adding (lambda' - lambda) I to the held Fisher blocks: exact, but only before
        the inversion (the accumulate path, or nothing added yet), since F^-1 itself cannot be re-damped."""
        if damping <= 0:
            raise ValueError(f"damping must be > 0, got {damping}")
        if self.count and not self._holds_fisher:
            raise ValueError(
                "set_damping: F^-1 was already formed (re-damping needs fisher.update: accumulate)"
            )
        shift, self.damping = float(damping) - self.damping, float(damping)
        for part, s, e, _ in self._slices():
            if self._holds_fisher:
                part[s:e].diagonal(dim1=1, dim2=2).add_(shift)
            else:  # still the prior I / lambda
                part[s:e].copy_(
                    torch.eye(self.block_size, dtype=part.dtype, device=part.device) / self.damping
                )
        self._eig = None

    def eigenvalues(self) -> torch.Tensor:
        """The d eigenvalues of F^-1 (all blocks'), from the cached decomposition. The zero-padded end of
        the last block adds `pad` eigenvalues 1/lambda that are no coordinate's: those are dropped."""
        self._decompose()
        w = torch.cat([w.reshape(-1).cpu() for w, _ in self._eig]).double()
        pad = self.n_blocks * self.block_size - self.dim
        if pad:
            last = w[-self.block_size :]
            drop = (last - 1.0 / self.damping).abs().argsort()[:pad]
            keep = torch.ones(self.block_size, dtype=torch.bool)
            keep[drop] = False
            w = torch.cat([w[: -self.block_size], last[keep]])
        return w

    # -- using ---------------------------------------------------------------------------------------
    def _apply(self, v: torch.Tensor, fn) -> torch.Tensor:
        """Concatenate fn(slice index, slice, x) over the slices, x = v's blocks on the slice's device."""
        self._check(v)
        self.finalize()
        out = torch.empty(self.n_blocks * self.block_size, dtype=self.work_dtype, device=v.device)
        for i, (part, s, e, first) in enumerate(self._slices()):
            x = self._vec_blocks(v, first, e - s, part.device).unsqueeze(-1)  # [n, B, 1]
            out[first * self.block_size : (first + e - s) * self.block_size] = (
                fn(i, part[s:e], x).reshape(-1).to(v.device)
            )
        return out[: self.dim].to(v.dtype)

    def matmul(self, v: torch.Tensor) -> torch.Tensor:
        """F^-1 v for a vector of shape [dim]."""
        return self._apply(v, lambda i, blk, x: torch.bmm(blk.to(self.work_dtype), x))

    def _decompose(self) -> None:
        """Per-block eigendecomposition of F^-1, cached until the next update."""
        self.finalize()
        if self._eig is None:
            self._eig = []
            for part, s, e, _ in self._slices():
                w, q = batched_eigh(part[s:e].to(self.work_dtype))
                self._eig.append((w.clamp_min(torch.finfo(w.dtype).tiny), q.to(self.dtype)))

    def power_matmul(self, v: torch.Tensor, p: float) -> torch.Tensor:
        """(F^-1)^p v per block, through one batched eigendecomposition (cached until the next update)."""
        self._decompose()

        def apply(i, blk, x):
            w, q = self._eig[i]
            q = q.to(self.work_dtype)
            return torch.bmm(q, w.pow(p).unsqueeze(-1) * torch.bmm(q.transpose(1, 2), x))

        return self._apply(v, apply)

    def dense(self) -> torch.Tensor:
        """The full [dim, dim] block-diagonal matrix (tests and small models only)."""
        return torch.block_diag(*self.inv.to(self.work_dtype).unbind(0))[: self.dim, : self.dim]

    def deviation_from_prior(self, segments: dict[str, tuple[int, int]] | None = None) -> dict[str, float]:
        """Relative Frobenius distance ||F^-1 - I/lambda|| / ||I/lambda|| over all blocks and per segment
        (name -> (offset, length), e.g. one per layer). Near 0: the Fisher term is negligible and Fisher
        Removal degenerates to gradient ascent with step gamma/lambda."""
        self.finalize()
        eye = torch.eye(self.block_size, dtype=torch.float64) / self.damping
        per_block = torch.cat(
            [
                (blk.to(self.work_dtype) - eye.to(blk.device, self.work_dtype)).pow(2).sum((1, 2)).cpu()
                for part, s, e, _ in self._slices()
                for blk in (part[s:e],)
            ]
        ).double()
        ref = eye.pow(2).sum()
        out = {"all": float((per_block.sum() / (ref * self.n_blocks)).sqrt())}
        for name, (offset, length) in (segments or {}).items():
            lo, hi = (
                offset // self.block_size,
                max(offset // self.block_size + 1, math.ceil((offset + length) / self.block_size)),
            )
            out[name] = float((per_block[lo:hi].sum() / (ref * (hi - lo))).sqrt())
        return out


def invert_spd(mats: torch.Tensor, method: str = "cholesky_inverse") -> torch.Tensor:
    """Inverses of a batch of symmetric positive-definite matrices from their Cholesky factor L:
    `cholesky_inverse` (LAPACK potri per matrix) or `solve_triangular` (L^-1 by one batched triangular
    solve, A^-1 = L^-T L^-1 by one batched GEMM). Equal to 1e-6; which is faster depends on the
    threads and device (docs/speed-and-memory.md: on this 1-thread CPU cholesky_inverse)."""
    chol = torch.linalg.cholesky(mats)
    if method == "cholesky_inverse":
        return torch.cholesky_inverse(chol)
    eye = torch.eye(mats.shape[-1], dtype=mats.dtype, device=mats.device).expand_as(mats)
    linv = torch.linalg.solve_triangular(chol, eye, upper=False)
    return linv.transpose(-1, -2) @ linv

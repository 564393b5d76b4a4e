"""Block-diagonal inverse empirical Fisher, built by the paper's recursion (Eq. 7-8).

F_m = lambda I + (1/m) sum_i g_i g_i^T, restricted to diagonal blocks of width B of the flattened
parameter vector (the last block zero-padded). Each block's inverse is kept as a dense B x B matrix, all
blocks in one [n_blocks, B, B] tensor, so every step is one batched operation: no Python loop over blocks.

Three ways to add gradients, all giving the same matrix (up to rounding):
  * `update`: Eq. 8 as written, one rank-1 Sherman-Morrison step per gradient; reads and writes all
    d*B entries per gradient (memory-bandwidth bound).
  * `update_batch`: k gradients as one rank-k Woodbury step (GEMMs instead of matrix-vector products).
  * `accumulate`: adds (1/m) G^T G to the block Fisher itself with one batched GEMM per chunk and inverts
    each B x B block once, at first use (Cholesky). Fewest operations when F^-1 is built from scratch.
"""
from __future__ import annotations

import math

import torch


class FisherMemoryError(MemoryError):
    """The inverse Fisher would not fit: raised before allocating, with the numbers and what to change."""


def fisher_bytes(dim: int, block_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the [n_blocks, B, B] inverse: about dim * B * itemsize."""
    n_blocks = math.ceil(dim / block_size)
    return n_blocks * block_size * block_size * torch.empty((), dtype=dtype).element_size()


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    import psutil
    return psutil.virtual_memory().available


class EmpiricalFisherInverse:
    """F^-1 of the damped empirical Fisher, block-diagonal with blocks of width `block_size`."""

    def __init__(self, dim: int, block_size: int = 48, damping: float = 1.0, num_grads: int = 1024,
                 dtype: torch.dtype = torch.float32, device=None, max_bytes: int | None = None):
        if dim < 1 or block_size < 1 or num_grads < 1 or damping <= 0:
            raise ValueError(f"EmpiricalFisherInverse needs dim, block_size, num_grads >= 1 and damping > 0; got "
                             f"dim={dim}, block_size={block_size}, num_grads={num_grads}, damping={damping}")
        self.dim, self.block_size, self.damping, self.num_grads = dim, block_size, float(damping), num_grads
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.n_blocks = math.ceil(dim / block_size)
        need = fisher_bytes(dim, block_size, dtype)
        limit = min(max_bytes if max_bytes is not None else need, _available_bytes(self.device))
        if need > limit:
            raise FisherMemoryError(
                f"inverse Fisher for d={dim:,} parameters with block size B={block_size} needs "
                f"{need / 2**30:.2f} GiB (d*B*{torch.empty((), dtype=dtype).element_size()} bytes) on {self.device}, "
                f"over the {limit / 2**30:.2f} GiB allowed (fisher.max_memory_gb or free memory); "
                "lower fisher.block_size, raise fisher.max_memory_gb, or use a device with more memory")
        eye = torch.eye(block_size, dtype=dtype, device=self.device) / self.damping
        self._mat = eye.expand(self.n_blocks, block_size, block_size).clone()  # F^-1, or F while accumulating
        self._holds_fisher = False
        self.count = 0
        self._eig = None

    @property
    def inv(self) -> torch.Tensor:
        """The [n_blocks, B, B] inverse blocks (inverting accumulated Fisher blocks first, in place)."""
        if self._holds_fisher:
            work = self._mat.to(torch.promote_types(self.dtype, torch.float32))
            chol = torch.linalg.cholesky(work)
            self._mat.copy_(torch.cholesky_inverse(chol))
            self._holds_fisher = False
        return self._mat

    # -- shapes ------------------------------------------------------------------------------------
    def _blocks(self, v: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., n_blocks, B], zero-padded at the end; computed in fp32 at least."""
        if v.shape[-1] != self.dim:
            raise ValueError(f"expected a vector of length {self.dim}, got shape {tuple(v.shape)}")
        v = v.to(device=self.device, dtype=torch.promote_types(self.dtype, torch.float32))
        pad = self.n_blocks * self.block_size - self.dim
        if pad:
            v = torch.nn.functional.pad(v, (0, pad))
        return v.reshape(*v.shape[:-1], self.n_blocks, self.block_size)

    def _flat(self, blocks: torch.Tensor) -> torch.Tensor:
        return blocks.reshape(*blocks.shape[:-2], -1)[..., :self.dim]

    def _work(self) -> torch.Tensor:
        return self.inv.to(torch.promote_types(self.dtype, torch.float32))

    # -- building ----------------------------------------------------------------------------------
    def update(self, grad: torch.Tensor) -> None:
        """One step of Eq. 8: F^-1 <- F^-1 - (F^-1 g)(F^-1 g)^T / (m + g^T F^-1 g), per block, in place."""
        g = self._blocks(grad)                                   # [n, B]
        inv = self._work()
        fg = torch.bmm(inv, g.unsqueeze(-1))                     # [n, B, 1]
        denom = self.num_grads + torch.bmm(g.unsqueeze(-2), fg)  # [n, 1, 1]
        u = fg / denom.sqrt()
        inv.baddbmm_(u, u.transpose(1, 2), alpha=-1.0)           # no [n, B, B] temporary
        self._store(inv, 1)

    def update_batch(self, grads: torch.Tensor) -> None:
        """k gradients at once (rank-k Woodbury): F^-1 <- A - A U (m I + U^T A U)^-1 U^T A, per block.

        The same matrix as k rank-1 steps; chunks of at most B gradients keep the k x k solves cheap."""
        if grads.dim() == 1:
            grads = grads.unsqueeze(0)
        inv = self._work()
        for chunk in grads.split(self.block_size):
            u = self._blocks(chunk).permute(1, 2, 0)             # [n, B, k]
            au = torch.bmm(inv, u)                               # [n, B, k]
            small = torch.bmm(u.transpose(1, 2), au)             # [n, k, k]
            small.diagonal(dim1=1, dim2=2).add_(self.num_grads)
            sol = torch.linalg.solve(small, au.transpose(1, 2))  # [n, k, B]
            inv.baddbmm_(au, sol, alpha=-1.0)
        self._store(inv, grads.shape[0])

    def accumulate(self, grads: torch.Tensor) -> None:
        """Add (1/m) sum g g^T of k gradients to the block Fisher (one batched GEMM); F^-1 is formed at use."""
        if grads.dim() == 1:
            grads = grads.unsqueeze(0)
        if not self._holds_fisher:                               # switch to holding F (exact for the prior)
            if self.count == 0:
                self._mat.mul_(self.damping ** 2)                # I/lambda -> lambda I
            else:
                self._mat.copy_(torch.linalg.inv(self._work()))
            self._holds_fisher = True
        g = self._blocks(grads).permute(1, 2, 0)                 # [n, B, k]
        work = self._mat.to(torch.promote_types(self.dtype, torch.float32))
        work.baddbmm_(g, g.transpose(1, 2), alpha=1.0 / self.num_grads)
        if work is not self._mat:
            self._mat.copy_(work)
        self.count += grads.shape[0]
        self._eig = None

    def _store(self, inv: torch.Tensor, n_new: int) -> None:
        if inv is not self._mat:                                 # low-precision storage: cast back once
            self._mat.copy_(inv)
        self.count += n_new
        self._eig = None

    # -- using ---------------------------------------------------------------------------------------
    def matmul(self, v: torch.Tensor) -> torch.Tensor:
        """F^-1 v for a vector of shape [dim]."""
        out = torch.bmm(self._work(), self._blocks(v).unsqueeze(-1)).squeeze(-1)
        return self._flat(out).to(v.dtype)

    def power_matmul(self, v: torch.Tensor, p: float) -> torch.Tensor:
        """(F^-1)^p v per block, through one batched eigendecomposition (cached until the next update)."""
        if self._eig is None:
            w, q = torch.linalg.eigh(self._work())
            self._eig = (w.clamp_min(torch.finfo(w.dtype).tiny), q)
        w, q = self._eig
        x = self._blocks(v).unsqueeze(-1)                        # [n, B, 1]
        y = torch.bmm(q, w.pow(p).unsqueeze(-1) * torch.bmm(q.transpose(1, 2), x))
        return self._flat(y.squeeze(-1)).to(v.dtype)

    def dense(self) -> torch.Tensor:
        """The full [dim, dim] block-diagonal matrix (tests and small models only)."""
        return torch.block_diag(*self._work().unbind(0))[:self.dim, :self.dim]

    def deviation_from_prior(self, segments: dict[str, tuple[int, int]] | None = None) -> dict[str, float]:
        """Relative Frobenius distance ||F^-1 - I/lambda|| / ||I/lambda|| over all blocks and per segment
        (name -> (offset, length), e.g. one per layer). Near 0: the Fisher term is negligible and Fisher
        Removal degenerates to gradient ascent with step gamma/lambda."""
        eye = torch.eye(self.block_size, device=self.device) / self.damping
        per_block = (self._work() - eye).pow(2).sum((1, 2))      # [n]
        ref = eye.pow(2).sum()
        out = {"all": float((per_block.sum() / (ref * self.n_blocks)).sqrt())}
        for name, (offset, length) in (segments or {}).items():
            lo, hi = offset // self.block_size, max(offset // self.block_size + 1, math.ceil((offset + length) / self.block_size))
            out[name] = float((per_block[lo:hi].sum() / (ref * (hi - lo))).sqrt())
        return out

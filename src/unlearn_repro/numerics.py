"""Pinned CPU numerics: the same bits from a CPU run on any x86-64 machine with AVX2 + FMA.

torch's CPU kernels pick their code path from the instruction set at run time: MKL's SGEMM (every linear
layer and attention matmul) and ATen's vectorized kernels (softmax, layer norm, GELU, reductions, AdamW) use
AVX-512 where the CPU has it, AVX2 where not, and the two round differently. 30 epochs of memorization
training amplify those last-bit differences into different published numbers (issue 29). Pinning both
libraries to their AVX2 path makes an AVX-512 / AMX machine compute what an AVX2-only machine computes
(measured: benchmarks/results/determinism.md, docs/determinism.md).

Must run before torch is imported (MKL and ATen read these variables once). Only CPU kernels are pinned:
GPU runs are untouched, and the switch UNLEARN_NUMERICS=native turns the pin off (auto: pin unless an
NVIDIA GPU is visible; the pipeline sets it from the profile's `device`). This module never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

SWITCH = "UNLEARN_NUMERICS"  # pinned | native | auto (default)
MODES = ("auto", "pinned", "native")
# the AVX2 code path of each library (honoured by torch 2.13.0's MKL 2024.2, ATen and oneDNN 3.12)
PINNED = {
    "MKL_CBWR": "AVX2",  # MKL conditional numerical reproducibility: the AVX2 branch on any CPU
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorized kernels: the AVX2 build, not AVX-512
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (not on the fp32 path of these models today; pinned for bf16/conv)
}
# what the run records (set or not): the pins plus the variables that also steer the code path
RECORDED = (*PINNED, "MKL_ENABLE_INSTRUCTIONS", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# the instruction-set flags that decide which code path an unpinned run takes
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def gpu_visible(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether an NVIDIA GPU is there for torch (without importing torch: the driver's device nodes)."""
    if environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def mode(environ: Mapping[str, str] = os.environ) -> str:
    """`pinned` or `native` for this process: the switch, or (auto) pinned unless a GPU runs the models."""
    value = environ.get(SWITCH, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{SWITCH}={value!r}: one of {', '.join(MODES)}")
    if value == "auto":
        return "native" if gpu_visible(environ) else "pinned"
    return value


def mode_for_device(device: str, environ: Mapping[str, str] = os.environ) -> str:
    """The mode for a profile's `device` (cpu | cuda | auto): what the pipeline exports to its jobs."""
    if environ.get(SWITCH, "auto").strip().lower() not in ("", "auto"):
        return mode(environ)  # the user's explicit choice wins
    if device == "cpu":
        return "pinned"
    return "native" if device == "cuda" else mode({**environ, SWITCH: "auto"})


def job_env(device: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables every job of a profile gets: the mode, and the pins where it is `pinned`."""
    m = mode_for_device(device, environ)
    return {SWITCH: m, **({k: v for k, v in PINNED.items() if k not in environ} if m == "pinned" else {})}


def pin(environ: MutableMapping[str, str] = os.environ) -> str:
    """Apply the mode to this process's environment before torch loads; a variable the user set is kept.
    Returns the mode."""
    m = mode(environ)
    missing = {k: v for k, v in PINNED.items() if k not in environ} if m == "pinned" else {}
    if missing and "torch" in sys.modules:  # (a process forked after an earlier pin has them all set)
        print(
            f"[numerics] warning: torch was imported before {', '.join(missing)} were set; the pin may not "
            "apply to this process",
            file=sys.stderr,
            flush=True,
        )
    environ.update(missing)
    environ[SWITCH] = m
    return m


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform knows)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def isa_flags() -> list[str]:
    """Which of the code-path-deciding instruction sets this CPU has."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in ISA_FLAGS if f in have]
    return []


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def describe(environ: Mapping[str, str] = os.environ) -> dict:
    """The numeric settings of this process, for provenance (meta.json, run.json, MLflow tags)."""
    info = {
        "mode": environ.get(SWITCH) or mode(environ),
        "cpu_model": cpu_model(),
        "isa": isa_flags(),
        "machine": platform.machine(),
        "env": {k: environ[k] for k in RECORDED if k in environ},
    }
    torch = sys.modules.get("torch")
    if torch is not None:  # only what is already loaded: describing must not import torch early
        info |= {
            "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        }
    return info


def tags(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """describe() flattened to MLflow tags (`numerics.*`)."""
    d = describe(environ)
    env = d.pop("env")
    flat = {f"numerics.{k}": (" ".join(v) if isinstance(v, list) else str(v)) for k, v in d.items()}
    return flat | {f"numerics.env.{k}": v for k, v in env.items()}


# ---- checking published numbers (`make verify`) ----
# The tolerance where the pin does not promise bit-identity (a rerun not pinned, or pinned on different
# paths): relative, on every number. TDEC's numbers were measured to move far more than this across code
# paths (docs/determinism.md), so an unpinned rerun is expected to fail it: those numbers are only
# statistically stable (intervals over seeds), not reproducible as exact values.
LOOSE_RTOL = 0.02


def leaves(tree, prefix: str = "") -> dict:
    """{dotted.key: value} of every leaf of a json tree (lists by index)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in leaves(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in leaves(sub, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


def differences(published: dict, rerun: dict, rtol: float = 0.0) -> list[tuple[str, object, object]]:
    """(key, published, rerun) of every leaf that differs: exactly (rtol 0: bit for bit, floats compared as
    doubles), or beyond `rtol` relative for numbers; a key on one side only is a difference too."""
    a, b = leaves(published), leaves(rerun)
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, "<missing>"), b.get(key, "<missing>")
        if _same(x, y, rtol):
            continue
        out.append((key, x, y))
    return out


def _same(x, y, rtol: float) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    if numbers and x != x and y != y:  # NaN on both sides
        return True
    if not numbers or rtol == 0:
        return type(x) is type(y) and x == y
    return abs(x - y) <= rtol * max(abs(x), abs(y))


def cpu_vendor(model: str | None) -> str:
    """'intel', 'amd' or the model string itself: the pin makes Intel CPUs agree with each other, not with
    AMD ones (measured: docs/determinism.md, benchmarks/results/determinism_machines.md)."""
    low = (model or "").lower()
    return next((v for v in ("intel", "amd") if v in low), model or "unknown")


def bitwise_promised(published: dict, rerun: dict) -> bool:
    """Whether both sides ran pinned on the same code path (then every number must be identical): the same
    pins, threads, torch and capability, on CPUs of one vendor; the model and its ISA may differ, that is
    what the pin is for."""
    if cpu_vendor(published.get("cpu_model")) != cpu_vendor(rerun.get("cpu_model")):
        return False
    keys = ("mode", "torch", "torch_cpu_capability", "torch_threads")
    steering = (*PINNED, "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env_a, env_b = published.get("env", {}), rerun.get("env", {})
    return (
        published.get("mode") == "pinned"
        and all(published.get(k) == rerun.get(k) for k in keys)
        and all(env_a.get(k) == env_b.get(k) for k in steering)
    )


def provenance(checkpoint_dir: str | Path, summary: str | Path) -> dict:
    """What a published summary was computed with: the numerics of the checkpoint that made it, the commit,
    and the summary's hash (so the pair cannot drift apart unnoticed)."""
    meta = json.loads((Path(checkpoint_dir) / "meta.json").read_text())
    return {
        "summary": Path(summary).name,
        "summary_sha256": hashlib.sha256(Path(summary).read_bytes()).hexdigest(),
        "git_commit": meta.get("git_commit"),
        "numerics": meta.get("numerics", {}),
    }


def _vendors(*provs) -> str:
    """', CPUs of two vendors (intel, amd)' where they differ, else nothing."""
    vendors = [cpu_vendor(p["numerics"].get("cpu_model")) for p in provs]
    return f", CPUs of two vendors ({', '.join(vendors)})" if len(set(vendors)) > 1 else ""


def _fmt(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def verify(published_dir: str | Path, rerun_dir: str | Path) -> int:
    """Compare a rerun's summary (and provenance) with the published ones; print every differing number.
    Returns the number of differences (0: verified)."""
    pub, new = Path(published_dir), Path(rerun_dir)
    p_prov, r_prov = (json.loads((d / "provenance.json").read_text()) for d in (pub, new))

    if hashlib.sha256((pub / p_prov["summary"]).read_bytes()).hexdigest() != p_prov.get("summary_sha256"):
        print(
            f"[verify] warning: {pub / p_prov['summary']} changed since its provenance.json was written: the "
            "settings it records may not be the ones that made it"
        )
    exact = bitwise_promised(p_prov["numerics"], r_prov["numerics"])
    rtol = 0.0 if exact else LOOSE_RTOL
    for side, prov in (("published", p_prov), ("rerun", r_prov)):
        n = prov["numerics"]
        print(
            f"[verify] {side}: {n.get('cpu_model')} ({' '.join(n.get('isa', []))}); numerics {n.get('mode')} "
            f"{n.get('env', {})}, torch {n.get('torch')} {n.get('torch_cpu_capability')}, "
            f"{n.get('torch_threads')} thread(s); commit {str(prov.get('git_commit'))[:10]}"
        )
    how = (
        "bit for bit (both pinned on the same code path)"
        if exact
        else f"within relative {rtol} (the pin does not cover both runs{_vendors(p_prov, r_prov)}: only "
        "statistical stability is promised)"
    )
    print(f"[verify] comparing {how}")
    diffs = differences(
        json.loads((pub / p_prov["summary"]).read_text()),
        json.loads((new / r_prov["summary"]).read_text()),
        rtol,
    )
    for key, x, y in diffs:
        rel = (
            abs(x - y) / max(abs(x), abs(y))
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
            and max(abs(x), abs(y))
            else None
        )
        print(
            f"  DIFFERS {key}: published {_fmt(x)}, rerun {_fmt(y)}"
            + (f" (relative {rel:.3g})" if rel else "")
        )
    n_leaves = len(leaves(json.loads((pub / p_prov["summary"]).read_text())))
    print(
        f"[verify] {'OK' if not diffs else 'FAILED'}: {n_leaves - len(diffs)}/{n_leaves} values equal, "
        f"{len(diffs)} differ"
    )
    return len(diffs)


def main(argv: list[str] | None = None) -> int:
    """`python -m unlearn_repro.numerics provenance CKPT SUMMARY OUT` | `verify PUBLISHED_DIR RERUN_DIR`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["provenance"] and len(args) == 4:
        Path(args[3]).write_text(json.dumps(provenance(args[1], args[2]), indent=2, sort_keys=True) + "\n")
        return 0
    if args[:1] == ["verify"] and len(args) == 3:
        return 1 if verify(args[1], args[2]) else 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The pinned CPU code path (numerics.py): who gets it, and whether it keeps a training run's weights
bit-identical when a job runs on a CPU that would take another code path (simulated by capping the
libraries' instruction sets in a fresh process: they read the variables once, at start)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_repro import numerics

ROOT = Path(__file__).resolve().parents[2]
# a few seeded AdamW steps of the tiny GPT-Neo through the real entry point (`python -m unlearn_repro`
# pins in unlearn_repro/__main__.py before torch loads); prints the weights' hash and torch's code path
CHILD = """
import unlearn_repro.__main__  # the pin, exactly as the pipeline's jobs get it
import hashlib, json, torch
from unlearn_repro.models.build import build_model
from unlearn_repro.train import Recipe, train
class Vocab:
    bos_token_id = eos_token_id = pad_token_id = 0
    def __len__(self): return 4096
torch.set_num_threads(1)
model = build_model("tiny-gpt-neo", Vocab(), seed=0)
seqs = torch.randint(1, 4096, (48, 64), generator=torch.Generator().manual_seed(1)).tolist()
train(model, seqs, Recipe(epochs=1, lr=2e-3, batch_size=16), pad_id=0, device="cpu")
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(json.dumps({"hash": h, "capability": torch.backends.cpu.get_cpu_capability()}))
"""
# what an AVX2-only CPU's libraries pick by themselves (this CPU, capped)
AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*numerics.RECORDED, numerics.SWITCH)}
    return env | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"} | extra


def _runs(envs: dict[str, dict]) -> dict[str, dict]:
    """The child in one fresh process per environment, run side by side."""
    procs = {
        k: subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env=e,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k, e in envs.items()
    }
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, f"{k}: {stderr[-2000:]}"
        out[k] = json.loads(stdout.strip().splitlines()[-1])
    return out


@pytest.mark.skipif("avx2" not in numerics.isa_flags(), reason="the pinned path needs an x86 CPU with AVX2")
def test_pinned_path_keeps_weights_identical_on_another_code_path():
    runs = _runs(
        {
            "pinned": _env(UNLEARN_NUMERICS="pinned"),
            "pinned_avx2_cpu": _env(UNLEARN_NUMERICS="pinned", **AVX2_CPU),
            "native": _env(UNLEARN_NUMERICS="native"),
            "native_avx2_cpu": _env(UNLEARN_NUMERICS="native", **AVX2_CPU),
        }
    )
    assert runs["pinned"]["capability"] == runs["pinned_avx2_cpu"]["capability"] == "AVX2"
    assert runs["pinned"]["hash"] == runs["pinned_avx2_cpu"]["hash"]  # the pin holds across CPUs
    assert runs["native_avx2_cpu"]["hash"] == runs["pinned"]["hash"]  # = what an AVX2 CPU computes unpinned
    if (
        "avx512f" in numerics.isa_flags()
    ):  # here the unpinned path really is another one: the forced path bites
        assert runs["native"]["capability"] == "AVX512"
        assert runs["native"]["hash"] != runs["native_avx2_cpu"]["hash"]


def test_cpu_profiles_pin_gpu_profiles_do_not():
    assert numerics.job_env("cpu", {}) == {numerics.SWITCH: "pinned", **numerics.PINNED}
    assert numerics.job_env("cuda", {}) == {numerics.SWITCH: "native"}
    assert numerics.job_env("cpu", {numerics.SWITCH: "native"}) == {
        numerics.SWITCH: "native"
    }  # the off switch
    assert numerics.job_env("auto", {"CUDA_VISIBLE_DEVICES": ""})[numerics.SWITCH] == "pinned"
    kept = numerics.job_env("cpu", {"MKL_CBWR": "COMPATIBLE"})  # a user's own setting wins
    assert "MKL_CBWR" not in kept and kept["ATEN_CPU_CAPABILITY"] == "avx2"
    with pytest.raises(ValueError, match="UNLEARN_NUMERICS"):
        numerics.mode({numerics.SWITCH: "fast"})


def test_pin_sets_only_what_is_unset():
    env = {numerics.SWITCH: "pinned", "ATEN_CPU_CAPABILITY": "default"}
    assert numerics.pin(env) == "pinned"
    assert env["ATEN_CPU_CAPABILITY"] == "default" and env["MKL_CBWR"] == "AVX2"
    native = {numerics.SWITCH: "native"}
    numerics.pin(native)
    assert native == {numerics.SWITCH: "native"}


def test_differences_bit_for_bit_and_within_tolerance():
    published = {"a": {"ppl": 100.0, "epochs": 3, "holds": True}, "b": [0.1, float("nan")]}
    same = json.loads(json.dumps(published))
    assert numerics.differences(published, same) == []
    moved = {"a": {"ppl": 100.00000000000001, "epochs": 3, "holds": True}, "b": [0.1, float("nan")], "c": 1}
    assert [k for k, *_ in numerics.differences(published, moved)] == ["a.ppl", "c"]
    assert [k for k, *_ in numerics.differences(published, moved, rtol=1e-9)] == ["c"]
    flipped = {"a": {"ppl": 100.0, "epochs": 3, "holds": False}, "b": [0.1, float("nan")]}
    assert [k for k, *_ in numerics.differences(published, flipped, rtol=0.5)] == ["a.holds"]


def test_bitwise_promised_only_when_both_ran_the_same_pinned_path():
    pinned = {
        "mode": "pinned",
        "torch": "2.13.0+cpu",
        "torch_cpu_capability": "AVX2",
        "torch_threads": 1,
        "env": dict(numerics.PINNED),
        "cpu_model": "Intel(R) Xeon(R) Processor",
        "isa": ["avx2", "avx512f"],
    }
    other_cpu = {**pinned, "cpu_model": "Intel(R) Core(TM) i7-4770", "isa": ["avx2"]}
    assert numerics.bitwise_promised(pinned, other_cpu)
    # MKL's branches do not reproduce Intel's sums on AMD (benchmarks/results/determinism_machines.md)
    assert not numerics.bitwise_promised(pinned, {**pinned, "cpu_model": "AMD EPYC"})
    assert numerics.cpu_vendor("AMD EPYC 7B13") == "amd" and numerics.cpu_vendor(None) == "unknown"
    assert numerics.bitwise_promised(
        pinned, {**other_cpu, "env": {**pinned["env"], "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
    )
    assert not numerics.bitwise_promised(
        pinned, {**other_cpu, "env": {**pinned["env"], "MKL_CBWR": "AVX512"}}
    )
    assert not numerics.bitwise_promised(pinned, {**other_cpu, "mode": "native"})
    assert not numerics.bitwise_promised(pinned, {**other_cpu, "torch_cpu_capability": "DEFAULT"})
    assert not numerics.bitwise_promised(pinned, {**other_cpu, "torch_threads": 2})

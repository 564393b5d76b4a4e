"""Which CPU code paths change the bits of a small training run, and what the pinned path costs (issue 29).

torch picks MKL's and ATen's kernels by instruction set at run time, so the same seeded run can round
differently on another CPU. Another CPU is simulated here by capping the libraries' instruction sets
(ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA: what they would pick on an AVX2-only or
AVX-only machine); each setting runs the same seeded probe in a fresh process (the variables are read
once, at start). The probe hashes, per stage: the initial weights (seeded RNG only), the logits of one
forward pass (inference), the weights after `--steps` AdamW steps of the project's training loop, and
the greedy continuations of the trained model (what EL10 / MA score). Each stage is compared with the
same stage of the reference setting: `native` against the unpinned runs, `pinned` against the pinned ones.

Usage: python benchmarks/determinism.py [--models tiny-gpt-neo tiny-opt] [--steps 20] [--repeats 3]
Writes benchmarks/results/determinism.{csv,md}. `--compare-machines STEM STEM --out-stem OUT`: two machines'
files side by side, stage by stage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unlearn_repro import numerics  # noqa: E402  (does not import torch)

OUT = Path(__file__).resolve().parent / "results"
AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
AVX_CPU = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX", "ONEDNN_MAX_CPU_ISA": "AVX"}
# name -> (reference setting, what it stands for, environment); None unsets a variable
SETTINGS = {
    "native": ("native", "unpinned, this CPU (AVX-512 + AMX)", {}),
    "native-aten-avx2": ("native", "only ATen's kernels capped at AVX2", {"ATEN_CPU_CAPABILITY": "avx2"}),
    "native-mkl-avx2": ("native", "only MKL capped at AVX2", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    "native-onednn-avx2": ("native", "only oneDNN capped at AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    "native-avx2-cpu": ("native", "unpinned on an AVX2-only CPU (simulated)", AVX2_CPU),
    "native-2-threads": ("native", "unpinned, 2 threads instead of 1", {"PROBE_THREADS": "2"}),
    "pinned": ("pinned", "pinned (numerics.PINNED), this CPU", dict(numerics.PINNED)),
    "pinned-avx2-cpu": ("pinned", "pinned on an AVX2-only CPU (simulated)", {**numerics.PINNED, **AVX2_CPU}),
    "pinned-avx-cpu": (
        "pinned",
        "pinned on an AVX-only CPU without AVX2/FMA (simulated)",
        {**numerics.PINNED, **AVX_CPU},
    ),
    "pinned-2-threads": (
        "pinned",
        "pinned, 2 threads instead of 1",
        {**numerics.PINNED, "PROBE_THREADS": "2"},
    ),
    "pinned-strict": (
        "pinned",
        "pinned with MKL_CBWR=AVX2,STRICT",
        {**numerics.PINNED, "MKL_CBWR": "AVX2,STRICT"},
    ),
    "mkl-compatible": (
        "pinned",
        "MKL_CBWR=COMPATIBLE (SSE2 branch) + ATen default",
        {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    ),
}
STAGES = ("init", "forward", "train", "greedy")


class _Vocab:
    """What build_model needs of a tokenizer: a size and the special ids (no text is encoded here)."""

    bos_token_id = eos_token_id = pad_token_id = 0

    def __len__(self):
        return 4096


def _sha(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def probe(model_name: str, steps: int, weights_out: str) -> dict:
    """One seeded run in this process: the hash of each stage, the final loss, ms per training step."""
    import torch

    from unlearn_repro.models.build import build_model
    from unlearn_repro.train import Recipe, lm_loss, train

    torch.set_num_threads(int(os.environ.get("PROBE_THREADS", "1")))
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = build_model(model_name, _Vocab(), seed=0)
    g = torch.Generator().manual_seed(1)
    seqs = torch.randint(1, 4096, (16 * steps, 64), generator=g).tolist()
    out = {"init": _sha(*[p.detach() for p in model.parameters()])}
    with torch.no_grad():
        out["forward"] = _sha(model(input_ids=torch.tensor(seqs[:8])).logits)
    recipe = Recipe(epochs=1, lr=2e-3, batch_size=16, seed=0)
    start, cpu = time.perf_counter(), time.process_time()
    stats = train(model, seqs, recipe, pad_id=0, device="cpu", objective=lm_loss, desc="probe")
    out["ms_per_step"] = 1000 * (time.perf_counter() - start) / stats["steps"]
    out["cpu_ms_per_step"] = 1000 * (time.process_time() - cpu) / stats["steps"]  # less hit by a shared CPU
    out["train"] = _sha(*[p.detach() for p in model.parameters()])
    out["loss"] = stats["final_loss"]
    with torch.no_grad():
        prompts = torch.tensor([s[:16] for s in seqs[:8]])
        greedy = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=16,
            do_sample=False,
            pad_token_id=0,
        )
    out["greedy"] = _sha(greedy)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, weights_out)
    out["capability"] = torch.backends.cpu.get_cpu_capability()
    return out


def run_setting(name: str, model_name: str, steps: int, workdir: Path) -> dict:
    """The probe in a fresh process whose environment is exactly this setting's (nothing inherited)."""
    env = {
        k: v for k, v in os.environ.items() if k not in (*numerics.RECORDED, numerics.SWITCH, "PROBE_THREADS")
    }
    env |= SETTINGS[name][2] | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    weights = workdir / f"{name}-{model_name}.pt"
    cmd = [sys.executable, __file__, "--probe", model_name, "--steps", str(steps), "--weights", str(weights)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{name}/{model_name}: probe failed\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"weights": str(weights)}


def max_diff(a: str, b: str) -> float:
    """Largest absolute difference between two saved state dicts (0.0: bit-identical weights)."""
    import torch

    x, y = torch.load(a), torch.load(b)
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def measure(models, steps: int, repeats: int, names) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in models:
            runs = {n: [] for n in names}
            for _ in range(
                repeats
            ):  # interleaved: a load change on a shared machine hits every setting alike
                for n in names:
                    runs[n].append(run_setting(n, model_name, steps, Path(tmp)))
            for n in names:
                ref_name = SETTINGS[n][0]
                first, ref = runs[n][0], runs[ref_name][0]
                row = {
                    "model": model_name,
                    "setting": n,
                    "stands_for": SETTINGS[n][1],
                    "reference": ref_name,
                    "capability": first["capability"],
                    "rerun_identical": all(r["train"] == first["train"] for r in runs[n]),
                    **{f"{s}_same": first[s] == ref[s] for s in STAGES},
                    "train_max_abs_diff": max_diff(first["weights"], ref["weights"]),
                    "final_loss": first["loss"],
                    **{f"{s}_hash": first[s] for s in STAGES},  # another machine: the same bits per stage
                    "ms_per_step": statistics.median(r["ms_per_step"] for r in runs[n]),
                    "cpu_ms_per_step": statistics.median(
                        r.get("cpu_ms_per_step", float("nan")) for r in runs[n]
                    ),
                }
                rows.append(row)
                print(
                    json.dumps(
                        {
                            k: row[k]
                            for k in ("model", "setting", "train_same", "train_max_abs_diff", "ms_per_step")
                        }
                    ),
                    flush=True,
                )
    return rows


def write(rows: list[dict], steps: int, repeats: int, stem: str = "determinism") -> None:
    import pandas as pd

    OUT.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    for col in ("ms_per_step", "cpu_ms_per_step"):
        base = df.set_index(["model", "setting"])[col]
        df[f"{col}_vs_native"] = [base[(m, s)] / base[(m, "native")] for m, s in zip(df.model, df.setting)]
    df.to_csv(OUT / f"{stem}.csv", index=False)
    cols = [
        "model",
        "setting",
        "stands_for",
        "reference",
        "capability",
        "init_same",
        "forward_same",
        "train_same",
        "greedy_same",
        "train_max_abs_diff",
        "rerun_identical",
        "ms_per_step",
        "ms_per_step_vs_native",
        "cpu_ms_per_step",
        "cpu_ms_per_step_vs_native",
    ]
    lines = [
        f"# CPU code paths vs the bits of a seeded training run ({steps} AdamW steps, batch 16 x 64 tokens, "
        f"1 thread unless named; median of {repeats} runs per setting)",
        "",
        f"CPU: {numerics.cpu_model()}; ISA: {' '.join(numerics.isa_flags())}. "
        "`*_same`: the stage's hash equals the reference setting's. "
        "Written by `python benchmarks/determinism.py`.",
        "",
        df[cols].to_markdown(index=False, floatfmt=".4g"),
    ]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / stem}.csv and .md")


# the pipeline's stages, as the files a TDEC run leaves in its workspace (--compare-workspaces)
WORKSPACE_STAGES = {
    "data": ["data/processed/embedded/*/*.jsonl"],
    "tokenizer": ["results/embedded/tokenizer/tokenizer.json"],
    "pretrained weights": ["results/embedded/models/*/pretrained/model.safetensors"],
    "TDEC base model (weights)": ["results/embedded/tdec/models/*/model.safetensors"],
    "TDEC base model (premise: EL10, MA, PPL)": ["results/embedded/tdec/models/*/meta.json"],
    "TDEC unlearning runs": ["results/embedded/tdec/runs/*/*.json"],
    "TDEC summary": ["results/embedded/tdec/summary/metrics.json"],
}
TIMING = ("time", "runtime", "elapsed", "wall", "numerics", "git_commit")  # keys that differ between any runs


def _strip(tree):
    """A json tree without its timings and provenance: what must be identical between two runs."""
    if isinstance(tree, dict):
        return {k: _strip(v) for k, v in tree.items() if not any(t in k for t in TIMING)}
    return [_strip(v) for v in tree] if isinstance(tree, list) else tree


def _stage_hash(root: Path, files) -> str | None:
    if not files:
        return None
    h = hashlib.sha256()
    for rel in files:
        data = (root / rel).read_bytes()
        if rel.endswith(".json") and "tokenizer" not in rel:
            data = json.dumps(_strip(json.loads(data)), sort_keys=True).encode()
        h.update(rel.encode() + data)
    return h.hexdigest()[:16]


def compare_workspaces(roots: list[str]) -> None:
    """Print, per stage, each workspace's hash (over the files every workspace has) and whether it equals
    the first workspace's."""
    import pandas as pd

    rows = []
    for stage, patterns in WORKSPACE_STAGES.items():
        have = [{str(f.relative_to(r)) for p in patterns for f in Path(r).glob(p)} for r in roots]
        files = sorted(set.intersection(*have))
        hashes = [_stage_hash(Path(r), files) for r in roots]
        rows.append(
            {
                "stage": stage,
                "files": len(files),
                **{
                    r: (h or "-") + ("" if h is None or h == hashes[0] else " (differs)")
                    for r, h in zip(roots, hashes)
                },
            }
        )
    print(pd.DataFrame(rows).to_markdown(index=False))


def compare_machines(stems: list[str], out_stem: str) -> None:
    """Two machines' result files (`--out-stem` of a run on each): per model and setting, whether the seeded
    run's stages (the hash columns both files have) computed the same bits on both."""
    import pandas as pd

    a, b = (pd.read_csv(OUT / f"{s}.csv") for s in stems)
    stages = [f"{s}_hash" for s in STAGES if f"{s}_hash" in a and f"{s}_hash" in b]
    both = a.merge(b, on=["model", "setting"], suffixes=("_a", "_b"))
    rows = [
        {"model": r.model, "setting": r.setting, **{s: r[f"{s}_a"] == r[f"{s}_b"] for s in stages}}
        for _, r in both.iterrows()
    ]
    cpus = [(OUT / f"{s}.md").read_text().split("CPU: ", 1)[1].split(";", 1)[0] for s in stems]
    lines = [
        f"# The same seeded run on two machines: {cpus[0]} (`{stems[0]}`) and {cpus[1]} (`{stems[1]}`)",
        "",
        "True: that stage's bits are identical on both. Written by `python benchmarks/determinism.py "
        f"--compare-machines {' '.join(stems)}`.",
        "",
        pd.DataFrame(rows).to_markdown(index=False),
    ]
    (OUT / f"{out_stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny-gpt-neo", "tiny-opt"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out-stem", default="determinism", help="file names under benchmarks/results/")
    ap.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: run one probe, print JSON
    ap.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--compare-workspaces",
        nargs="+",
        default=None,
        metavar="DIR",
        help="instead: compare the stage outputs of TDEC runs in these workspaces with the first's",
    )
    ap.add_argument(
        "--compare-machines",
        nargs=2,
        default=None,
        metavar="STEM",
        help="instead: compare two machines' result files (their --out-stem) into --out-stem",
    )
    args = ap.parse_args()
    if args.compare_workspaces:
        compare_workspaces(args.compare_workspaces)
        return
    if args.compare_machines:
        compare_machines(args.compare_machines, args.out_stem)
        return
    if args.probe:
        print(json.dumps(probe(args.probe, args.steps, args.weights)))
        return
    names = list(dict.fromkeys(["native", "pinned", *args.settings]))
    write(measure(args.models, args.steps, args.repeats, names), args.steps, args.repeats, args.out_stem)


if __name__ == "__main__":
    main()

"""The regime where curvature counts, measured by the written rule (docs/curvature.md) at the embedded scale.

1. kappa: one F_hat from m D+ per-sample gradients of the fine-tuned model; for the paper's / the old embedded
   absolute lambdas and each kappa of KAPPAS (lambda = kappa * mean diag F_hat), the premise of a step on
   the first forget batch (Fisher Removal's cosine and norm ratio, Fisher Forgetting's F^-1/4 spread);
   metrics.curvature.select_kappa picks kappa.
2. gamma, mu = sigma: one unlearning cycle (the profile's cycle size, forget batch size, m, rebuild) per
   candidate of metrics.curvature.step_candidates under that kappa; select_step keeps the largest whose
   Delta test NLL <= NLL_BOUND. The old embedded setting runs once too, for the "before" numbers.
3. rho (--sophia): Sophia's clip rate over a TOFU unlearning run (gradient difference, SO) per rho of
   RHOS on the embedded TOFU base model; select_rho keeps the one in CLIP_BAND nearest its middle.

Run from the repository root after `snakemake results/embedded/models/tiny-gpt-neo/arc_easy/finetuned`
(and `results/embedded/tofu/models/base` for --sophia); writes benchmarks/results/curvature_regime.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from unlearn_repro.config import Frozen, load
from unlearn_repro.data.encoding import data_kind, encode_rows, split_sequences
from unlearn_repro.fisher import EmpiricalFisherInverse, per_sample
from unlearn_repro.io import read_jsonl
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.methods.newton import flat_grad, retain_stream
from unlearn_repro.metrics import curvature as C
from unlearn_repro.metrics.collect import mean_token_nll
from unlearn_repro.pipeline import open_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KAPPAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
RHOS = (0.04, 0.4, 4.0, 40.0, 400.0, 4000.0)
ABSOLUTE = {"paper lambda = 1": 1.0, "old embedded lambda = 1e-3": 1e-3}


def kappa_scan(cfg, model, forget, retain, pad, device) -> dict:
    """Premise of the first forget batch's step under each damping, from one F_hat (same gradients)."""
    f = cfg.fisher
    grads = torch.cat(
        list(
            per_sample.stream(
                model, retain_stream(retain, f.grad_batch_size, 1000), f.num_grads, f.chunk, pad, device
            )
        )
    )
    g = flat_grad(model, forget[: cfg.unlearn.forget_batch_size], pad, device).float()
    diag = float(grads.double().pow(2).sum()) / (f.num_grads * grads.shape[1])
    rows = []
    damp = [(name, None, lam) for name, lam in ABSOLUTE.items()] + [
        (f"kappa = {k:g}", k, k * diag) for k in KAPPAS
    ]
    for name, kappa, lam in damp:
        fisher = EmpiricalFisherInverse(grads.shape[1], f.block_size, lam, f.num_grads)
        fisher.accumulate(grads)
        rows.append(
            {
                "damping": name,
                "kappa": kappa,
                "lambda": lam,
                **C.newton_premise(fisher.matmul(g), g, lam),
                **C.power_spread(fisher.eigenvalues(), lam),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    kappa, noise_shaped = C.select_kappa([r for r in rows if r["kappa"] is not None])
    return {"diag_mean": diag, "rows": rows, "kappa": kappa, "fisher_forgetting_shaped": noise_shaped}


def one_cycle(cfg, method, model, forget, retain, pad, device, test, base) -> dict:
    """Unlearn one cycle with `cfg`; Delta test NLL and Delta forget NLL against the model before, and the
    premise."""
    ctx = Context(cfg=cfg, device=device, pad_id=pad, seed=0, pretrained_path=ROOT, work_dir=ROOT / ".curv")
    t0 = time.perf_counter()
    out, stats = METHODS.get(method).unlearn(ctx, copy.deepcopy(model), forget, retain, 1)
    if stats.get("diverged"):
        return {"delta_test_nll": float("nan"), "diverged": True}
    bs = cfg.evaluation.batch_size
    return {
        "delta_test_nll": mean_token_nll(out, test, pad, device, bs) - base["test"],
        "delta_forget_nll": mean_token_nll(out, forget, pad, device, bs) - base["forget"],
        "seconds": time.perf_counter() - t0,
        "curvature": stats["curvature"],
    }


def with_(cfg, **paths) -> Frozen:
    """cfg with dotted keys replaced (fisher.kappa=..., methods.fisher_removal.gamma=...)."""
    d = cfg.to_dict()
    for path, v in paths.items():
        *head, last = path.split("__")
        node = d
        for k in head:
            node = node[k]
        node[last] = v
    return Frozen(d)


def newton_regime(cfg, finetuned: Path, data_dir: Path) -> dict:
    model, tok, _, device = open_checkpoint(cfg, finetuned)
    pad, n = tok.pad_token_id, cfg.unlearn.cycle_size
    seqs = split_sequences(tok, data_dir, "train", cfg.data.max_length)
    test = encode_rows(tok, read_jsonl(data_dir / "test.jsonl"), data_kind(data_dir), cfg.data.max_length)
    order = np.random.default_rng(0).permutation(len(seqs)).tolist()  # a seeded cycle: not a main-study split
    forget, retain = [seqs[i] for i in order[:n]], [seqs[i] for i in order[n:]]
    bs = cfg.evaluation.batch_size
    base = {
        "test": mean_token_nll(model, test, pad, device, bs),
        "forget": mean_token_nll(model, forget, pad, device, bs),
    }
    out = {
        "model": str(finetuned),
        "n_forget": n,
        "n_retain": len(retain),
        "base_nll": base,
        "fisher": cfg.fisher.to_dict(),
        "bound_delta_test_nll": C.NLL_BOUND,
        "kappa_scan": None,
    }
    out["kappa_scan"] = scan = kappa_scan(cfg, model, forget, retain, pad, device)
    kappa = scan["kappa"]

    def run(c, m):
        return one_cycle(c, m, model, forget, retain, pad, device, test, base)

    old = cfg  # the embedded profile as it was: absolute lambda = 1e-3, gamma 3e-4, mu = sigma = 1e-4
    old = with_(
        old,
        fisher__damping=1e-3,
        fisher__damping_mode="absolute",
        methods__fisher_removal__gamma=3e-4,
        methods__fisher_forgetting__mu=1e-4,
        methods__fisher_forgetting__sigma=1e-4,
    )
    out["before"] = {m: run(old, m) for m in ("fisher_removal", "fisher_forgetting")}
    print(json.dumps(out["before"]), flush=True)
    if kappa is None:
        return out
    rel = with_(cfg, fisher__damping_mode="relative", fisher__kappa=kappa)

    def measure(method, key):
        def f(step):
            keys = {"gamma": step} if key == "gamma" else {"mu": step, "sigma": step}
            row = run(with_(rel, **{f"methods__{method}__{k}": v for k, v in keys.items()}), method)
            print(method, step, json.dumps(row), flush=True)
            return row

        return f

    for method, key in (("fisher_removal", "gamma"), ("fisher_forgetting", "mu_sigma")):
        chosen, rows = C.select_step(measure(method, key))
        out[method] = {"param": key, "chosen": chosen, "rows": rows}
    return out


def sophia_regime(cfg, base: Path) -> dict:
    """Clip rate and unclipped share of a TOFU run (tofu.epochs) of gradient difference with Sophia at each
    rho."""
    from unlearn_repro.optim import CurvatureHook
    from unlearn_repro.pipeline.tofu import encoder, load_sets, method_config

    model, tok, _, device = open_checkpoint(cfg, base)
    sets, enc = load_sets(cfg), encoder(cfg, tok)
    forget = [enc.item(r) for r in sets["forget"]]
    retain = [enc.item(r) for r in sets["retain_train"]]
    rows = []
    for rho in RHOS:
        run_cfg = method_config(with_(cfg, tofu__sophia={"rho": rho}), "gradient_difference", "SO")
        hook = CurvatureHook(forget, cfg.tofu.batch_size, tok.pad_token_id, device, seed=0)
        ctx = Context(
            cfg=run_cfg,
            device=device,
            pad_id=tok.pad_token_id,
            seed=0,
            pretrained_path=base,
            work_dir=ROOT / ".curv",
            tokenizer=tok,
            hooks=(hook,),
        )
        METHODS.get("gradient_difference").unlearn(ctx, copy.deepcopy(model), forget, retain, 1)
        rows.append(
            {
                "rho": rho,
                "clip_rate": float(np.mean(hook.clip_rates)),
                "unclipped_share": float(np.mean(hook.unclipped_shares)),
                "steps": len(hook.clip_rates),
                "clip_rate_per_step": hook.clip_rates,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "method": "gradient_difference",
        "epochs": cfg.tofu.epochs,
        "rows": rows,
        "chosen": C.select_rho(rows),
        "band": list(C.CLIP_BAND),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="embedded")
    ap.add_argument("--dataset", default="arc_easy")
    ap.add_argument("--model", default="tiny-gpt-neo")
    ap.add_argument("--sophia", action="store_true", help="also (or, with --skip-newton, only) the rho scan")
    ap.add_argument("--skip-newton", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/curvature_regime.json"))
    a = ap.parse_args()
    cfg = load(ROOT / "params.yaml", a.profile)
    torch.set_num_threads(cfg.threads)
    res = ROOT / "results" / a.profile
    out_path = Path(a.out)
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    out.update(profile=a.profile, dataset=a.dataset, model=a.model)
    if not a.skip_newton:
        out["newton"] = newton_regime(
            cfg,
            res / "models" / a.model / a.dataset / "finetuned",
            ROOT / cfg.data.processed_dir / a.profile / a.dataset,
        )
        out_path.write_text(json.dumps(out, indent=1) + "\n")
    if a.sophia:
        out["sophia"] = sophia_regime(cfg, res / "tofu" / "models" / "base")
    out_path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Multi-cycle unlearning: cycles of `cycle_size` forget samples applied one after another to the same
model (retraining restarts from the pre-fine-tuning model on what is left). Each cycle's model is
checkpointed; an interrupted run resumes after its last finished cycle (finished cycles wait in
`partial/`, which Snakemake does not clear as it does a failed job's declared outputs)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from unlearn_repro.data.encoding import split_sequences
from unlearn_repro.io import file_hash, git_commit, read_json, write_json
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.models import checkpoint
from unlearn_repro.pipeline import open_checkpoint


def n_cycles_for(cfg, dataset: str, model: str) -> int:
    """Extended-cycle runs (Figure 5) go to max_cycles; the others to the tables' largest cycle count."""
    u = cfg.unlearn
    if dataset in u.extended_datasets and model in u.extended_models:
        return u.max_cycles
    return max(u.table_cycles)


def run(cfg, *, dataset: str, model_name: str, method: str, seed: int, finetuned: str | Path,
        pretrained: str | Path, data_dir: str | Path, split_file: str | Path, out_dir: str | Path, tracker,
        hooks=(), wrappers=()) -> dict:
    """Unlearn every cycle of one (method, data set, model, seed). A study passes its train.Hook objects
    (`hooks`) and its model wrappers (`wrappers`, see Method.prepare)."""
    out_dir = Path(out_dir)
    partial = out_dir / "partial"
    impl = METHODS.get(method)
    cycles = read_json(split_file)["cycles"]
    n_cycles = n_cycles_for(cfg, dataset, model_name)
    if n_cycles > len(cycles):
        raise ValueError(f"{split_file}: has {len(cycles)} cycles, the run needs {n_cycles}")
    model, tok, _, device = open_checkpoint(cfg, finetuned)
    seqs = split_sequences(tok, data_dir, "train", cfg.data.max_length)
    ctx = Context(cfg=cfg, device=device, pad_id=tok.pad_token_id, seed=seed, pretrained_path=Path(pretrained),
                  work_dir=out_dir / "resume", tokenizer=tok, hooks=tuple(hooks), wrappers=tuple(wrappers))
    # finished cycles are reused only if made with these exact settings, data, split and code
    fingerprint = {"params": impl.params(cfg), "max_length": cfg.data.max_length, "git_commit": git_commit(),
                   "split": file_hash(split_file), "finetuned": file_hash(Path(finetuned) / "meta.json")}
    _drop_stale_partial(partial, fingerprint)
    records = []
    removed: set[int] = set()
    for k in range(1, n_cycles + 1):
        removed |= set(cycles[k - 1])
        done = partial / f"cycle{k}"
        if (done / "meta.json").exists():  # resume: this cycle finished before an interruption
            model, _, meta = checkpoint.load(done, device)
            records.append(meta["cycle_stats"])
            print(f"[unlearn] cycle {k}: reusing the finished cycle in {done}", flush=True)
            continue
        forget = [seqs[i] for i in cycles[k - 1]]
        retain = [s for i, s in enumerate(seqs) if i not in removed]
        start = time.perf_counter()
        model = impl.prepare(ctx, model, forget, retain, k)  # where a study or method wraps the model (LoRA)
        model, stats = impl.unlearn(ctx, model, forget, retain, k)
        model = checkpoint.unwrap(model)  # adapters merged: the next cycle (and a resumed run) starts plain
        stats = {**stats, "cycle": k, "n_forget": len(forget), "n_retain": len(retain),
                 "runtime_s": time.perf_counter() - start}
        records.append(stats)
        checkpoint.save(model, tok, done, {"dataset": dataset, "model": model_name, "method": method, "seed": seed,
                                           "cycle": k, "cycle_stats": stats, "params": impl.params(cfg),
                                           "fingerprint": fingerprint})
        print(f"[unlearn] {method} {dataset} {model_name} seed {seed}: cycle {k}/{n_cycles} in "
              f"{stats['runtime_s']:.1f}s{' (DIVERGED)' if stats.get('diverged') else ''}", flush=True)
    shutil.rmtree(ctx.work_dir, ignore_errors=True)
    final = out_dir / "checkpoints"
    if final.exists():
        shutil.rmtree(final)
    partial.replace(final)
    summary = {"dataset": dataset, "model": model_name, "method": method, "label": impl.label, "seed": seed,
               "n_cycles": n_cycles, "params": impl.params(cfg), "cycles": records}
    write_json(out_dir / "run.json", summary)
    metrics = {"runtime_s": sum(r["runtime_s"] for r in records) / len(records),
               "diverged": float(any(r.get("diverged") for r in records))}
    for r in records:  # ||F^-1 - I/lambda|| / ||I/lambda||, overall and per layer
        for key, v in (r.get("fisher_deviation") or {}).items():
            metrics[f"fisher_deviation_cycle{r['cycle']}/{key}"] = v
    tracker.log_run(f"unlearn/{method}/{dataset}/{model_name}/seed{seed}",
                    {**impl.params(cfg), "n_cycles": n_cycles},
                    metrics, {"stage": "unlearn", "dataset": dataset, "model": model_name, "method": method,
                              "seed": str(seed), "cycles": str(n_cycles)},
                    {"cycle_runtime_s": [r["runtime_s"] for r in records]}, artifacts=[out_dir / "run.json"])
    return summary


def _drop_stale_partial(partial: Path, fingerprint: dict) -> None:
    """Delete finished cycles (and the resume state beside them) made with other settings or code."""
    metas = sorted(partial.glob("cycle*/meta.json"))
    stale = [m for m in metas if read_json(m).get("fingerprint") != json.loads(json.dumps(fingerprint))]
    if stale:
        print(f"[unlearn] {len(stale)} finished cycle(s) in {partial} were made with other settings, data or code "
              f"({', '.join(m.parent.name for m in stale)}): starting this run over", flush=True)
        shutil.rmtree(partial)
        shutil.rmtree(partial.parent / "resume", ignore_errors=True)

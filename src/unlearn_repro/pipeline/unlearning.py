"""Multi-cycle unlearning: cycles of `cycle_size` forget samples applied one after another to the same
model (retraining restarts from the pre-fine-tuning model on what is left). Each cycle's model is
checkpointed; an interrupted run resumes after its last finished cycle (finished cycles wait in
`partial/`, which Snakemake does not clear as it does a failed job's declared outputs). One job at a time
works in a run directory (DirLock), and a finished cycle is reused only if made with this run's settings."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from unlearn_repro import numerics
from unlearn_repro.data.encoding import split_sequences
from unlearn_repro.io import DirLock, file_hash, git_commit, read_json, write_json
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.models import checkpoint
from unlearn_repro.pipeline import open_checkpoint


def n_cycles_for(cfg, dataset: str, model: str) -> int:
    """Extended-cycle runs (Figure 5) go to max_cycles; the others to the tables' largest cycle count."""
    u = cfg.unlearn
    if dataset in u.extended_datasets and model in u.extended_models:
        return u.max_cycles
    return max(u.table_cycles)


def run(
    cfg,
    *,
    dataset: str,
    model_name: str,
    method: str,
    seed: int,
    finetuned: str | Path,
    pretrained: str | Path,
    data_dir: str | Path,
    split_file: str | Path,
    out_dir: str | Path,
    tracker,
    hooks=(),
    wrappers=(),
) -> dict:
    """Unlearn every cycle of one (method, data set, model, seed). A study passes its train.Hook objects
    (`hooks`) and its model wrappers (`wrappers`, see Method.prepare). The job holds its run directory's lock
    throughout: a job left over from a killed snakemake loses it to the rerun and stops before
    its next write."""
    out_dir = Path(out_dir)
    impl = METHODS.get(method)
    cycles = read_json(split_file)["cycles"]
    n_cycles = n_cycles_for(cfg, dataset, model_name)
    if n_cycles > len(cycles):
        raise ValueError(f"{split_file}: has {len(cycles)} cycles, the run needs {n_cycles}")
    with DirLock(out_dir) as lock:
        model, tok, _, device = open_checkpoint(cfg, finetuned)
        seqs = split_sequences(tok, data_dir, "train", cfg.data.max_length)
        ctx = Context(
            cfg=cfg,
            device=device,
            pad_id=tok.pad_token_id,
            seed=seed,
            pretrained_path=Path(pretrained),
            work_dir=out_dir / "resume",
            tokenizer=tok,
            hooks=tuple(hooks),
            wrappers=tuple(wrappers),
        )
        # finished cycles are reused only if made with these exact settings, data, split and code
        params = used_params(impl, cfg, cycles[:n_cycles])
        fingerprint = {
            "params": params,
            "max_length": cfg.data.max_length,
            "git_commit": git_commit(),
            "split": file_hash(split_file),
            "finetuned": file_hash(Path(finetuned) / "meta.json"),
        }
        who = {"dataset": dataset, "model": model_name, "method": method, "seed": seed}
        records = _run_cycles(
            impl, ctx, model, seqs, cycles[:n_cycles], out_dir / "partial", fingerprint, lock, who
        )
        lock.check()
        _check_fingerprints(out_dir / "partial", fingerprint)  # what becomes checkpoints/ is this run's alone
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
        final = out_dir / "checkpoints"
        if final.exists():
            shutil.rmtree(final)
        (out_dir / "partial").replace(final)
        summary = {
            "dataset": dataset,
            "model": model_name,
            "method": method,
            "label": impl.label,
            "seed": seed,
            "n_cycles": n_cycles,
            "params": params,
            "cycles": records,
            "numerics": numerics.describe(),
        }
        write_json(out_dir / "run.json", summary)
        _log(tracker, params, records, who, out_dir / "run.json")
    return summary


def used_params(impl, cfg, cycles) -> dict:
    """The params this run used, by params path (recorded in run.json, checkpoints and MLflow): the method's
    declared ones, with unlearn.cycle_size as the split's cycles hold it: the split decides it (a study's
    targets split has its own size), and the config's value is read where the split is made."""
    params = impl.params(cfg)
    params["unlearn"] = {**params["unlearn"], "cycle_size": len(cycles[0])}
    return params


def _run_cycles(
    impl, ctx, model, seqs, cycles, partial: Path, fingerprint: dict, lock, who: dict
) -> list[dict]:
    """Each cycle in turn on the same model; a finished cycle in `partial` is reused only if its fingerprint
    is this run's, checked at every reuse (not once at the start: partial/ may have changed since)."""
    records, removed = [], set()
    for k, cycle in enumerate(cycles, 1):
        removed |= set(cycle)
        reused = _reuse(partial, k, fingerprint, ctx.device, lock)
        if reused is not None:
            model, stats = reused
            records.append(stats)
            continue
        forget = [seqs[i] for i in cycle]
        retain = [s for i, s in enumerate(seqs) if i not in removed]
        start = time.perf_counter()
        model, stats = impl.unlearn_cycle(ctx, model, forget, retain, k)  # prepare (LoRA...), unlearn, merge
        stats = {
            **stats,
            "cycle": k,
            "n_forget": len(forget),
            "n_retain": len(retain),
            "runtime_s": time.perf_counter() - start,
        }
        records.append(stats)
        lock.check()
        checkpoint.save(
            model,
            ctx.tokenizer,
            partial / f"cycle{k}",
            {
                **who,
                "cycle": k,
                "cycle_stats": stats,
                "params": fingerprint["params"],
                "fingerprint": fingerprint,
            },
        )
        print(
            f"[unlearn] {who['method']} {who['dataset']} {who['model']} seed {who['seed']}: "
            f"cycle {k}/{len(cycles)} "
            f"in {stats['runtime_s']:.1f}s{' (DIVERGED)' if stats.get('diverged') else ''}",
            flush=True,
        )
    return records


def _reuse(partial: Path, k: int, fingerprint: dict, device, lock):
    """(model, stats) of finished cycle k if it was made with this fingerprint; a cycle made with other
    settings, data or code is deleted with every later one and the resume state (this run starts it over)."""
    done = partial / f"cycle{k}"
    if not (done / "meta.json").exists():
        return None
    model, _, meta = checkpoint.load(done, device)
    if meta.get("fingerprint") == json.loads(json.dumps(fingerprint)):
        print(f"[unlearn] cycle {k}: reusing the finished cycle in {done}", flush=True)
        return model, meta["cycle_stats"]
    lock.check()
    stale = [d for d in partial.glob("cycle*") if int(d.name[len("cycle") :]) >= k]
    print(
        f"[unlearn] finished cycle(s) {', '.join(sorted(d.name for d in stale))} in {partial} were made "
        f"with other settings, data or code: starting over from cycle {k}",
        flush=True,
    )
    for d in stale:
        shutil.rmtree(d)
    shutil.rmtree(partial.parent / "resume", ignore_errors=True)
    return None


def _check_fingerprints(partial: Path, fingerprint: dict) -> None:
    """Every finished cycle in `partial` was made with this fingerprint (none written since
    by another job)."""
    want = json.loads(json.dumps(fingerprint))
    other = [
        m.parent.name
        for m in sorted(partial.glob("cycle*/meta.json"))
        if read_json(m).get("fingerprint") != want
    ]
    if other:
        raise RuntimeError(
            f"{partial}: {', '.join(other)} were written with other settings while this job ran "
            "(a left-over job of a killed snakemake?): rerun to redo them"
        )


def _log(tracker, params: dict, records: list[dict], who: dict, run_json: Path) -> None:
    """The unlearning run in MLflow: mean runtime per cycle, diverged, Fisher deviations per cycle."""
    metrics = {
        "runtime_s": sum(r["runtime_s"] for r in records) / len(records),
        "diverged": float(any(r.get("diverged") for r in records)),
    }
    for r in records:  # ||F^-1 - I/lambda|| / ||I/lambda||, overall and per layer
        for key, v in (r.get("fisher_deviation") or {}).items():
            metrics[f"fisher_deviation_cycle{r['cycle']}/{key}"] = v
        metrics.update(
            {f"fisher_layout_cycle{r['cycle']}/{k}": v for k, v in (r.get("fisher_layout") or {}).items()}
        )
        metrics.update({f"curvature_cycle{r['cycle']}/{k}": v for k, v in (r.get("curvature") or {}).items()})
    tracker.log_run(
        f"unlearn/{who['method']}/{who['dataset']}/{who['model']}/seed{who['seed']}",
        {**params, "n_cycles": len(records)},
        metrics,
        {"stage": "unlearn", **{k: str(v) for k, v in who.items()}, "cycles": str(len(records))},
        {"cycle_runtime_s": [r["runtime_s"] for r in records], **_step_premise(records)},
        artifacts=[run_json],
    )


def _step_premise(records: list[dict]) -> dict:
    """Each second-order step's premise (metrics.curvature) as a step metric over all cycles' steps."""
    out: dict[str, list] = {}
    for r in records:
        for k, v in (r.get("curvature_steps") or {}).items():
            out.setdefault(f"curvature/{k}", []).extend(v)
    return out

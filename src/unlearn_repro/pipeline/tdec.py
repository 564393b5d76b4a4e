"""Knowledge unlearning on the Training Data Extraction Challenge (FLoRA paper §4.1-4.2,
Table 1, Figures 3-4).

* rows: TDEC rows (GPT-Neo token ids) in the model's own tokens, cut to `tdec.row_length`; seeded disjoint
  forget sets of `forget_size` training rows, held-out validation rows, PPL rows (validation rows too,
  disjoint) and the retain set D_r (WikiText-2 validation chunks).
* threshold (`tdec.threshold.source`): EL_n / MA on text the model has not seen. A hub GPT-Neo saw the TDEC
  validation rows in the Pile, so the paper profile takes knowledge-unlearning's published constants (or a
  file of held-out text the user names); a tiny model trained here never saw TDEC: its held-out rows serve.
* batches (`tdec.batch_size`): `forget_set` = knowledge-unlearning's rule, one update per epoch on the whole
  forget set (its README: effective batch = train set size); an integer = that many rows per update.
* base: hub models as published (they saw TDEC in the Pile); a tiny model is trained here on its
  forget-set rows mixed with WikiText until they are memorized (the premise: MA / EL10 of the forget sets
  vs held-out rows).
* run: one configuration (method x full / LoRA / FLoRA x target modules) on every forget set, each stopped by
  the forgetting criterion after the first epoch where EL10 and MA are at or below the held-out values.
  Figure 4 runs each of tdec.ablation.configs (the paper's LoRA + GD, LoRA + IHL, FLoRA + GD, FLoRA + IHL)
  on each set of tdec.ablation.targets.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

import numpy as np

from unlearn_repro.data.encoding import data_kind
from unlearn_repro.data.registry import choose_source, load_split
from unlearn_repro.frozen import Frozen
from unlearn_repro.io import read_json, read_jsonl, write_json
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.metrics.collect import mean_token_nll
from unlearn_repro.metrics.extraction import extraction_scores, forgotten
from unlearn_repro.metrics.scores import score
from unlearn_repro.models import checkpoint, tokenizers
from unlearn_repro.models.registry import MODELS
from unlearn_repro.pipeline import open_checkpoint
from unlearn_repro.pipeline.base_models import _chunk_corpus
from unlearn_repro.train import Hook, Recipe, train

ROWS_SEED = 20240310  # forget sets and held-out rows: the same for every configuration


def target_groups(label: str) -> list[str]:
    """'qvffn' -> ['q', 'v', 'ffn']: an ablation label as LoRA target groups."""
    groups = re.findall(r"ffn|[qkvo]", label)
    if "".join(groups) != label:
        raise ValueError(f"tdec.ablation.targets: {label!r} is not a string of the groups q, k, v, o, ffn")
    return groups


def table_configs(cfg) -> list[str]:
    """The enabled Table 1 configurations, in the paper's row order (GA, GD, LoRA..., FLoRA...)."""
    order = ["ga", "gd", "lora_gd", "lora_ihl", "flora_gd", "flora_ihl"]
    enabled = list(cfg.tdec.enabled)
    return [c for c in order if c in enabled] + [c for c in enabled if c not in order]


def _spec(c, targets: list[str], table: bool) -> dict:
    return {
        "method": c.method,
        "adapter": c.adapter,
        "lr": float(c.lr),
        "targets": list(targets),
        "table": table,
    }


def runs(cfg) -> dict:
    """Every configuration this study runs, by name: Table 1's (tdec.enabled) and Figure 4's target-module
    ablation, each of tdec.ablation.configs on each of tdec.ablation.targets (`<config>-<targets>`). On the
    default targets (lora.targets) a configuration's run is its Table 1 run, `<config>`, reused; one that
    Table 1 does not run gets that run here."""
    t = cfg.tdec
    default = list(t.lora.targets)
    out = {name: _spec(t.configs[name], default, True) for name in table_configs(cfg)}
    for name, by_targets in ablation_runs(cfg).items():
        for label, run_name in by_targets.items():
            if run_name not in out:
                out[run_name] = _spec(t.configs[name], target_groups(label), False)
    return out


def ablation_runs(cfg) -> dict:
    """Figure 4: {config: {target label: run name}}, configs and labels in tdec.ablation's order; the
    default targets (lora.targets) name the configuration's own run."""
    t = cfg.tdec
    default = list(t.lora.targets)
    return {
        name: {
            label: name if target_groups(label) == default else f"{name}-{label}"
            for label in t.ablation.targets
        }
        for name in t.ablation.configs
    }


# ---------------------------------------------------------------------------------------------- rows
def _tdec_texts(cfg, split: str) -> list[list[int]]:
    d = cfg.data
    return [r["ids"] for r in load_split("tdec", split, choose_source(d.source, d.mirror_dir), d.mirror_dir)]


def _in_model_tokens(cfg, tok, model_name: str, rows: list[list[int]]) -> list[list[int]]:
    """TDEC ids (GPT-Neo's BPE) as the model's tokens: kept for a hub GPT-Neo, else decoded with the GPT-2 BPE
    from the mirror and re-encoded (bos first where the model uses one), cut to tdec.row_length."""
    spec, length = MODELS.get(model_name), cfg.tdec.row_length
    if not spec.is_tiny and spec.family == "gpt_neo":
        return [r[:length] for r in rows]
    gpt2 = tokenizers.from_vocab_files(Path(cfg.data.mirror_dir) / "tokenizers" / "gpt2", "gpt_neo")
    texts = gpt2.batch_decode(rows)
    return [tokenizers.encode(tok, t, length, keep="left") for t in texts]


def _wikitext_chunks(cfg, tok, n: int) -> list[list[int]]:
    """D_r: WikiText-2 validation as one token stream cut into row_length sequences (the first n)."""
    d = cfg.data
    rows = load_split(
        "wikitext2",
        "validation",
        choose_source(d.source, d.mirror_dir),
        d.mirror_dir,
        d.hub_paths.get("wikitext2"),
    )
    return _chunk_corpus(tok, [r["text"] for r in rows], cfg.tdec.row_length)[:n]


def make_rows(cfg, tok, model_name: str) -> dict:
    """Forget sets, held-out and PPL rows, retain set; rows shorter than row_length after re-encoding are
    not used (recorded), so every row has the same length."""
    t = cfg.tdec
    rng = np.random.default_rng(ROWS_SEED)
    train_rows = _in_model_tokens(cfg, tok, model_name, _tdec_texts(cfg, "train"))
    val_rows = _in_model_tokens(cfg, tok, model_name, _tdec_texts(cfg, "validation"))
    full_train = [i for i, r in enumerate(train_rows) if len(r) == t.row_length]
    full_val = [i for i, r in enumerate(val_rows) if len(r) == t.row_length]
    need_train, need_val = t.forget_sets * t.forget_size, t.heldout_rows + t.ppl_rows
    if len(full_train) < need_train or len(full_val) < need_val:
        raise ValueError(
            f"tdec: row_length {t.row_length} leaves {len(full_train)} training / {len(full_val)} "
            f"validation rows; need {need_train} / {need_val}"
        )
    train_pick = rng.permutation(full_train)[:need_train].tolist()
    val_pick = rng.permutation(full_val)[:need_val].tolist()
    return {
        "row_length": t.row_length,
        "forget_sets": [
            [train_rows[i] for i in train_pick[k * t.forget_size : (k + 1) * t.forget_size]]
            for k in range(t.forget_sets)
        ],
        "forget_ids": [train_pick[k * t.forget_size : (k + 1) * t.forget_size] for k in range(t.forget_sets)],
        "heldout": [val_rows[i] for i in val_pick[: t.heldout_rows]],
        "ppl": [val_rows[i] for i in val_pick[t.heldout_rows :]],
        "retain": _wikitext_chunks(cfg, tok, t.retain_rows),
        "dropped_short": {
            "train": len(train_rows) - len(full_train),
            "validation": len(val_rows) - len(full_val),
        },
    }


# ---------------------------------------------------------------------------------------------- metrics
def reasoning_accuracy(cfg, model, tok, task_dirs: dict) -> dict:
    """Accuracy on each task's test rows (the mirror's tasks offline; the paper's nine at paper scale)."""
    out = {}
    for task, folder in task_dirs.items():
        inputs = {"test": read_jsonl(Path(folder) / "test.jsonl"), "kind": data_kind(folder)}
        out[task] = score(["accuracy"], model, tok, inputs, [], cfg)["accuracy"]
    return out


def utility(cfg, model, tok, rows: dict, task_dirs: dict) -> dict:
    device = next(model.parameters()).device
    acc = reasoning_accuracy(cfg, model, tok, task_dirs)
    nll = mean_token_nll(model, rows["ppl"], tok.pad_token_id, device, cfg.evaluation.batch_size)
    return {
        "reasoning": float(np.mean(list(acc.values()))) if acc else math.nan,
        "reasoning_tasks": acc,
        "ppl": float(math.exp(nll)),
    }


def forget_batch(cfg) -> int:
    """Forget (and retain) rows per update: the whole forget set (`forget_set`) or the integer given."""
    b = cfg.tdec.batch_size
    if b == "forget_set":
        return int(cfg.tdec.forget_size)
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise ValueError(f"tdec.batch_size must be 'forget_set' or a positive integer, got {b!r}")
    return b


def epoch_meaning(cfg) -> str:
    """What one epoch of the "Epochs" column counts: '1 update each, batch = forget set (32)'."""
    b, n = forget_batch(cfg), cfg.tdec.forget_size
    updates = -(-n // b)
    return f"{updates} update{'s' if updates > 1 else ''} each, " + (
        f"batch = forget set ({n})" if b >= n else f"batch {b} of {n}"
    )


def _text_rows(cfg, tok, path) -> list[list[int]]:
    """A user-named held-out file: JSON lines with a "text" field, in the model's tokens,
    rows of row_length."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tdec.threshold.file: {path} does not exist")
    texts = [r.get("text") for r in read_jsonl(path)]
    if not texts or any(not isinstance(t, str) for t in texts):
        raise ValueError(f"tdec.threshold.file: {path} needs JSON lines with a string 'text' field")
    rows = [
        r
        for r in (tokenizers.encode(tok, t, cfg.tdec.row_length, keep="left") for t in texts)
        if len(r) == cfg.tdec.row_length
    ]
    if not rows:
        raise ValueError(
            f"tdec.threshold.file: no row of {path} reaches tdec.row_length = {cfg.tdec.row_length} tokens"
        )
    return rows


def threshold(cfg, model_name: str, model, tok, rows: dict, heldout: dict) -> dict:
    """The forgetting threshold {el, ma, source}: EL_n / MA on unseen text, as `tdec.threshold.source` says
    (`heldout`: the base model's scores on the held-out rows, already computed for the premise)."""
    t = cfg.tdec.threshold
    if t.source == "published":
        if model_name not in t.published:
            raise ValueError(
                f"tdec.threshold.published has no entry for {model_name!r} (has {sorted(t.published)}); "
                "add one or set tdec.threshold.source to heldout or file"
            )
        if cfg.tdec.n != 10:
            raise ValueError(f"tdec.threshold.published holds EL10 constants; tdec.n = {cfg.tdec.n}")
        c = t.published[model_name]
        return {"el": float(c["el"]), "ma": float(c["ma"]), "source": f"published: {c['source']}"}
    if t.source == "heldout":
        return {
            **heldout,
            "source": f"TDEC validation rows (never trained on here): {len(rows['heldout'])} rows "
            "scored before unlearning",
        }
    if t.source != "file":
        raise ValueError(f"tdec.threshold.source must be published, heldout or file, got {t.source!r}")
    if not t.file:
        raise ValueError("tdec.threshold.source is file but tdec.threshold.file is not set")
    held = _text_rows(cfg, tok, t.file)
    return {
        **extraction(cfg, model, tok, held),
        "source": f"file {t.file}: {len(held)} rows scored before unlearning",
    }


def extraction(cfg, model, tok, rows) -> dict:
    n = cfg.tdec.n
    s = extraction_scores(model, rows, tok.pad_token_id, n, cfg.tdec.decode_batch_size)
    return {"el": s[f"el{n}"], "ma": s["ma"]}


class ForgettingCriterion(Hook):
    """After each unlearning epoch: EL_n and MA of the forget set; stop once both are at or below the held-out
    rows' values on the model before unlearning (§4.1). Keeps the per-epoch curves."""

    def __init__(self, cfg, tok, forget, threshold: dict):
        self.cfg, self.tok, self.forget, self.threshold = cfg, tok, forget, threshold
        self.history: list[dict] = []

    def on_epoch_end(self, epoch: int, model) -> bool:
        n, t = self.cfg.tdec.n, self.cfg.tdec
        ma = extraction_scores(model, self.forget, self.tok.pad_token_id, n, t.decode_batch_size, el=False)[
            "ma"
        ]
        # EL_n needs a greedy decode from every prefix; the criterion needs MA below its threshold too, so
        # unless el_every_epoch, EL_n is decoded only once MA passes (and after the last epoch: `finish`)
        el = (
            extraction(self.cfg, model, self.tok, self.forget)["el"]
            if t.el_every_epoch or ma <= self.threshold["ma"]
            else math.nan
        )
        self.history.append({"epoch": epoch + 1, "el": el, "ma": ma})
        print(
            f"[tdec] epoch {epoch + 1}: EL{n} {el:.4f} MA {ma:.4f} "
            f"(threshold {self.threshold['el']:.4f} / {self.threshold['ma']:.4f})",
            flush=True,
        )
        return not math.isnan(el) and forgotten(
            {f"el{n}": el, "ma": ma}, {f"el{n}": self.threshold["el"], "ma": self.threshold["ma"]}, n
        )

    def finish(self, model) -> dict:
        """EL_n and MA after the last epoch (EL_n decoded now if the last epoch skipped it)."""
        last = self.history[-1] if self.history else {"el": math.nan}
        if math.isnan(last["el"]):
            last.update(extraction(self.cfg, model, self.tok, self.forget))
        return last


# ---------------------------------------------------------------------------------------------- steps
def base(cfg, model_name: str, pretrained, task_dirs: dict, out, tracker) -> dict:
    """The model unlearning starts from, its rows and the premise (MA / EL of forget sets
    vs held-out rows)."""
    start = time.perf_counter()
    model, tok, meta, device = open_checkpoint(cfg, pretrained)
    rows = make_rows(cfg, tok, model_name)
    stats = {}
    if MODELS.get(model_name).is_tiny:  # it never saw TDEC: memorize the forget-set rows among WikiText
        m = cfg.tdec.memorize
        seen = [r for s in rows["forget_sets"] for r in s]
        mix = seen + rows["retain"][: m.wikitext_rows]
        stats = train(
            model,
            mix,
            Recipe.from_config(m, cfg, seed=0),
            pad_id=tok.pad_token_id,
            device=device,
            resume_dir=Path(str(out) + ".resume"),
            desc=f"tdec memorize {model_name}",
        )
    heldout = extraction(cfg, model, tok, rows["heldout"])
    premise = {
        "heldout": heldout,
        "threshold": threshold(cfg, model_name, model, tok, rows, heldout),
        "forget_sets": [extraction(cfg, model, tok, s) for s in rows["forget_sets"]],
        **utility(cfg, model, tok, rows, task_dirs),
        "memorize_stats": stats,
        "wall_time_s": time.perf_counter() - start,
    }
    premise["forget_mean"] = {k: float(np.mean([s[k] for s in premise["forget_sets"]])) for k in ("el", "ma")}
    # memorized = above the threshold the runs stop at (else they would stop at once)
    premise["holds"] = bool(
        premise["forget_mean"]["el"] > premise["threshold"]["el"]
        and premise["forget_mean"]["ma"] > premise["threshold"]["ma"]
    )
    checkpoint.save(
        model,
        tok,
        out,
        {"model": model_name, "stage": "tdec_base", "tdec": cfg.tdec.to_dict(), "premise": premise},
    )
    write_json(Path(out) / "rows.json", rows)
    n = cfg.tdec.n
    print(
        f"[tdec] premise {model_name}: forget EL{n} {premise['forget_mean']['el']:.3f} MA "
        f"{premise['forget_mean']['ma']:.3f} vs threshold EL{n} {premise['threshold']['el']:.3f} MA "
        f"{premise['threshold']['ma']:.3f} ({premise['threshold']['source']}): "
        f"{'holds' if premise['holds'] else 'DOES NOT HOLD'}",
        flush=True,
    )
    tracker.log_run(
        f"tdec/base/{model_name}",
        {"tdec": cfg.tdec.to_dict()},
        {
            f"forget_el{n}": premise["forget_mean"]["el"],
            "forget_ma": premise["forget_mean"]["ma"],
            f"heldout_el{n}": premise["heldout"]["el"],
            "heldout_ma": premise["heldout"]["ma"],
            f"threshold_el{n}": premise["threshold"]["el"],
            "threshold_ma": premise["threshold"]["ma"],
            "reasoning": premise["reasoning"],
            "ppl": premise["ppl"],
            "premise_holds": float(premise["holds"]),
        },
        {"stage": "tdec_base", "model": model_name},
        record=premise,
    )
    return premise


def method_config(cfg, spec: dict) -> Frozen:
    """The config a method reads for one configuration: its block with this run's step size, optimizer, max
    epochs (and the retain weight where the method draws retain batches), and the study's batch rule."""
    t, impl = cfg.tdec, METHODS.get(spec["method"])
    block = impl.study_block(
        cfg, {"optimizer": t.optimizer, "epochs": t.max_epochs}, step=spec["lr"], retain_weight=float(t.gamma)
    )
    return impl.study_config(cfg, block, unlearn={"forget_batch_size": forget_batch(cfg)})


def run(
    cfg,
    model_name: str,
    run_name: str,
    base_dir,
    task_dirs: dict,
    out,
    tracker,
    *,
    hooks=(),
    wrappers=(),
    sets=None,
) -> dict:
    """One configuration on every forget set (or those numbered in `sets`): unlearn until the criterion (or
    max_epochs), then evaluate. A caller's train `hooks` run after the criterion, its `wrappers` before the
    adapter's (Method.prepare)."""
    # heavy (peft): only the LoRA runs need it (the Snakefile imports this module)
    from unlearn_repro.lora.adapters import lora_wrapper, trainable_share

    spec = runs(cfg)[run_name]
    t, impl = cfg.tdec, METHODS.get(spec["method"])
    rows = read_json(Path(base_dir) / "rows.json")
    premise = read_json(Path(base_dir) / "meta.json")["premise"]
    if "threshold" not in premise:
        raise ValueError(
            f"{base_dir}/meta.json has no premise.threshold: rebuild the base (tdec_base) with this code"
        )
    limit = premise["threshold"]
    mcfg = method_config(cfg, spec)
    adapters = (
        ()
        if spec["adapter"] == "full"
        else (
            lora_wrapper(
                spec["adapter"],
                spec["targets"],
                t.lora.rank,
                t.lora.alpha,
                t.lora.fisher_eps,
                t.lora.fisher_retain_rows,
            ),
        )
    )
    work = Path(str(out) + ".work")
    results = []
    for k, forget in enumerate(rows["forget_sets"]):
        if sets is not None and k not in sets:
            continue
        start = time.perf_counter()
        model, tok, _, device = open_checkpoint(cfg, base_dir)
        hook = ForgettingCriterion(cfg, tok, forget, limit)
        ctx = Context(
            cfg=mcfg,
            device=device,
            pad_id=tok.pad_token_id,
            seed=k,
            pretrained_path=Path(base_dir),
            work_dir=work / f"set{k}",
            tokenizer=tok,
            hooks=(hook, *hooks),
            wrappers=(*wrappers, *adapters),
        )
        seen = {}  # the adapted model's trainable share; EL / MA of the model as trained (adapters unmerged)
        model, stats = impl.unlearn_cycle(
            ctx,
            model,
            forget,
            rows["retain"],
            1,
            on_prepared=lambda m, seen=seen: seen.update(share=trainable_share(m)),
            on_unlearned=lambda m, seen=seen, hook=hook: seen.update(final=hook.finish(m)),
        )
        share, final = seen["share"], seen["final"]
        epochs = stats["stopped_after_epoch"]
        res = {
            "set": k,
            "forgotten": epochs is not None,
            "epochs": epochs,
            "epochs_run": len(hook.history),
            "el": final["el"],
            "ma": final["ma"],
            "curve": hook.history,
            "params_pct": share,
            "diverged": stats["diverged"],
            **utility(cfg, model, tok, rows, task_dirs),
            "wall_time_s": time.perf_counter() - start,
        }
        results.append(res)
        n = t.n
        tracker.log_run(
            f"tdec/{model_name}/{run_name}/set{k}",
            {"tdec_run": spec, "tdec": t.to_dict()},
            {
                "epochs_to_forget": float(epochs) if epochs else math.nan,
                "forgotten": float(res["forgotten"]),
                f"el{n}": res["el"],
                "ma": res["ma"],
                "reasoning": res["reasoning"],
                "ppl": res["ppl"],
                "params_pct": share,
                "wall_time_s": res["wall_time_s"],
            },
            {
                "stage": "tdec_unlearn",
                "model": model_name,
                "config": run_name,
                "method": spec["method"],
                "adapter": spec["adapter"],
                "forget_set": str(k),
            },
            {f"forget_el{n}": [h["el"] for h in hook.history], "forget_ma": [h["ma"] for h in hook.history]},
            record=res,
        )
        print(
            f"[tdec] {run_name} set {k}: {'forgotten after ' + str(epochs) if epochs else 'NOT forgotten'} "
            f"epochs, reasoning {res['reasoning']:.3f}, PPL {res['ppl']:.1f} ({res['wall_time_s']:.1f}s)",
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    summary = {
        "model": model_name,
        "run": run_name,
        **spec,
        "threshold": limit,
        "epoch": epoch_meaning(cfg),
        "sets": results,
    }
    write_json(out, summary)
    return summary

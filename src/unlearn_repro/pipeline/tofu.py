"""SOUL on TOFU (Jia et al. 2024, Table 1, Figure 1): first- (AdamW) vs second-order (Sophia) unlearning.

Steps (one function per Snakemake rule):
* `tofu_model`: the pretrained model fine-tuned on TOFU `full` (the base model unlearning starts from) or
  on the matching retain split (the retain model forget quality compares with); loss on answer tokens.
  Its evaluation (every Table 1 column) is the premise check: the base model must know the forget set
  better than the retain model.
* `tofu_unlearn`: one method x optimizer x seed, `epochs` passes over the forget set through the method's
  own `unlearn` (the one training loop) with two hooks: Sophia's curvature feed (+ clip rate) and a
  per-epoch evaluation (Figure 1); then the full evaluation.

Subset at small scales: the first `retain_authors` authors of the retain split and the last
`forget_authors` of the forget split (forget01 and forget05 are the tail of forget10), 20 QA each.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig

from unlearn_repro.data.registry import choose_source, load_split
from unlearn_repro.frozen import Frozen
from unlearn_repro.io import read_json, write_json
from unlearn_repro.methods import METHODS, Context
from unlearn_repro.metrics import tofu as M
from unlearn_repro.metrics.curvature import sophia_summary
from unlearn_repro.models import checkpoint, tokenizers
from unlearn_repro.models.build import pick_device
from unlearn_repro.models.registry import tofu_sources
from unlearn_repro.optim import CurvatureHook, memory
from unlearn_repro.train import Hook, Recipe, train

QA_PER_AUTHOR = 20
OPTIMIZER_KINDS = ("FO", "SO")


# ---- data ---------------------------------------------------------------------------------------------


def _rows(cfg, split: str) -> list[dict]:
    """One TOFU split from the offline mirror or the hub (`data.source`; `data.hub_paths.tofu` for local
    files of the hub's format)."""
    d = cfg.data
    return load_split(
        "tofu", split, choose_source(d.source, d.mirror_dir), d.mirror_dir, d.hub_paths.get("tofu")
    )


def split_names(forget_split: str) -> dict:
    pct = int(forget_split.removeprefix("forget"))
    return {
        "forget": f"{forget_split}_perturbed",
        "retain": f"retain{100 - pct}",
        "holdout": f"holdout{pct:02d}",
    }


def load_sets(cfg) -> dict[str, list[dict]]:
    """forget (with paraphrased/perturbed answers), retain_train, retain (evaluated rows), holdout,
    real_authors, world_facts: rows of question, answer (+ paraphrased_answer, perturbed_answer)."""
    T, names = cfg.tofu, split_names(cfg.tofu.forget_split)
    forget = _rows(cfg, names["forget"])
    if T.forget_authors is not None:
        forget = forget[-T.forget_authors * QA_PER_AUTHOR :]
    retain_train = _rows(cfg, names["retain"])
    if T.retain_authors is not None:
        retain_train = retain_train[: T.retain_authors * QA_PER_AUTHOR]
    known = {r["question"] for r in retain_train}
    retain = [r for r in _rows(cfg, "retain_perturbed") if r["question"] in known][: T.eval_rows]
    holdout = _rows(cfg, names["holdout"])[: len(forget)]
    sets = {
        "forget": forget,
        "retain_train": retain_train,
        "retain": retain,
        "holdout": holdout,
        "real_authors": _rows(cfg, "real_authors_perturbed")[: T.eval_rows],
        "world_facts": _rows(cfg, "world_facts_perturbed")[: T.eval_rows],
    }
    for name, rows in sets.items():
        if not rows:
            raise ValueError(
                f"tofu: the {name} set is empty (tofu.forget_authors / retain_authors / eval_rows)"
            )
    return sets


TOFU_TEMPLATE = {
    "question_start": "Question: ",
    "question_end": "\n",
    "answer_tag": "Answer: ",
}  # TOFU, non-llama


class Encoder:
    """TOFU's QA format (locuslab/tofu data_module): question_start + q + question_end is the prompt; the
    answer tag + a (+ eos) is the answer, scored with it, since TOFU's label mask covers the question only.
    The answer is tokenized with its tag, as in TOFU's one-piece tokenization (a tag's trailing space goes
    with the answer's first token, so generation starts after the tag without it); the pair is cut to
    max_length tokens."""

    def __init__(self, tok, max_length: int, template: dict | None = None):
        t = {**TOFU_TEMPLATE, **(dict(template) if template else {})}
        self.tok, self.max_length, self.bos = tok, max_length, tokenizers.bos_ids(tok)
        self.start, self.end, self.tag = t["question_start"], t["question_end"], t["answer_tag"]

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def question(self, q: str) -> list[int]:
        return (self.bos + self._ids(f"{self.start}{q}{self.end}"))[-(self.max_length // 2) :]

    def prompt(self, q: str) -> list[int]:
        """The generation prompt: the question and the answer tag (TOFU generates after 'Answer: ')."""
        return self.question(q) + self._ids(self.tag.rstrip())

    def _tag_len(self, answer: list[int]) -> int:
        """How many leading answer tokens are the tag (0 where the tokenizer merges it with the answer)."""
        tag = self._ids(self.tag.rstrip())
        return len(tag) if tag and answer[: len(tag)] == tag else 0

    def pair(self, q: str, a: str, eos: bool = False) -> tuple[list[int], list[int]]:
        p = self.question(q)
        ans = self._ids(self.tag + str(a).strip()) + ([self.tok.eos_token_id] if eos else [])
        return p, ans[: max(1, self.max_length - len(p))]

    def item(self, row: dict) -> dict:
        """A training item: loss on the answer tokens only (train.collate masks the prompt, and the tag, as
        open-unlearning does: so PO's refusals, which follow the prompt, follow the tag too)."""
        p, a = self.pair(row["question"], row["answer"], eos=True)
        return {"ids": p + a, "prompt_len": len(p) + min(self._tag_len(a), len(a) - 1)}


def encoder(cfg, tok) -> Encoder:
    return Encoder(tok, cfg.tofu.max_length, cfg.tofu.template.to_dict())


# ---- evaluation ---------------------------------------------------------------------------------------


class Scorer:
    """Every TOFU metric of a model, and SOUL's Table 1 columns (`soul_*`), inputs encoded once."""

    def __init__(self, cfg, tok, sets: dict, device):
        self.cfg, self.tok, self.sets, self.device = cfg, tok, sets, device
        self.enc = encoder(cfg, tok)
        self.bs = cfg.tofu.eval_batch_size
        self.eos = bool(cfg.tofu.score_eos)
        self._memo: dict | None = None
        self._embedder = None

    @contextlib.contextmanager
    def same_model(self):
        """Within this block the model does not change: each (set, answer key) is scored once,
        not per metric."""
        outer = self._memo is not None
        if not outer:
            self._memo = {}
        try:
            yield
        finally:
            if not outer:
                self._memo = None

    def _cached(self, key, compute):
        if self._memo is not None and key in self._memo:
            return self._memo[key]
        value = compute()
        if self._memo is not None:
            self._memo[key] = value
        return value

    def _logprobs(self, model, name: str, key: str, question: str = "question", eos: bool | None = None):
        """Answer-token log-probabilities of set `name`, row by row (k per row for a list of answers), each
        answer given the row's `question` key; eos: score the end-of-sequence token too (TOFU: yes)."""
        eos = self.eos if eos is None else eos

        def compute():
            rows = self.sets[name]
            if isinstance(rows[0][key], list):
                k = min(len(r[key]) for r in rows)
                pairs = [self.enc.pair(r[question], a, eos) for r in rows for a in r[key][:k]]
            else:
                pairs = [self.enc.pair(r[question], r[key], eos) for r in rows]
            return M.answer_logprobs(model, pairs, self.tok.pad_token_id, self.device, self.bs)

        return self._cached(("lp", name, key, question, eos), compute)

    def _nll(
        self, model, name: str, key: str, question: str = "question", eos: bool | None = None
    ) -> np.ndarray:
        """Answer NLL per row for a key holding one answer, or [rows, k] for a list of answers."""
        nll = M.answer_nll(self._logprobs(model, name, key, question, eos))
        rows = self.sets[name]
        return nll.reshape(len(rows), -1) if isinstance(rows[0][key], list) else nll

    def _generations(self, model, name: str, question: str = "question") -> list[str]:
        """Greedy answers to set `name`'s questions (`tofu.max_new_tokens` new tokens, TOFU's prompt)."""
        rows = self.sets[name]
        return self._cached(
            ("gen", name, question),
            lambda: M.greedy_answers(
                model,
                self.tok,
                [self.enc.prompt(r[question]) for r in rows],
                self.cfg.tofu.max_new_tokens,
                self.device,
                self.bs,
            ),
        )

    def forget_ratios(self, model) -> np.ndarray:
        return M.truth_ratios(
            self._nll(model, "forget", "paraphrased_answer"), self._nll(model, "forget", "perturbed_answer")
        )

    def light(self, model, retain_ratios) -> dict:
        """Likelihood-only metrics (per epoch: Figure 1): forget/retain accuracy, probability, FQ, MIA."""
        out = {}
        with self.same_model():
            for name in ("forget", "retain"):
                true, pert = self._nll(model, name, "answer"), self._nll(model, name, "perturbed_answer")
                out[f"{name}_acc"] = M.choice_accuracy(true, pert)
                out[f"{name}_prob"] = M.answer_probability(true)
            out["forget_quality"] = M.forget_quality(self.forget_ratios(model), retain_ratios)
            out.update(self.mia(model))
        return out

    def mia(self, model) -> dict:
        """TOFU / open-unlearning's attacks: forget (members) vs holdout (non-members), answer tokens."""
        k = self.cfg.tofu.min_k
        lps = {n: self._logprobs(model, n, "answer") for n in ("forget", "holdout")}
        return {
            "mia_loss_auc": M.auc([lp.mean() for lp in lps["forget"]], [lp.mean() for lp in lps["holdout"]]),
            "mia_mink_auc": M.mink_auc(lps["forget"], lps["holdout"], k),
        }

    def full(self, model, retain_ratios) -> dict:
        """TOFU's metrics and model utility, then SOUL's Table 1 columns."""
        with self.same_model():
            return {**self._tofu(model, retain_ratios), **self.soul(model)}

    def tofu(self, model, retain_ratios) -> dict:
        """TOFU's metrics and model utility only (full without SOUL's columns)."""
        with self.same_model():
            return self._tofu(model, retain_ratios)

    def _tofu(self, model, retain_ratios) -> dict:
        out = self.light(model, retain_ratios) if retain_ratios is not None else {}
        utility = []
        for name in ("forget", "retain", "real_authors", "world_facts"):
            rows, gens = self.sets[name], self._generations(model, name)
            out[f"{name}_rouge"] = float(M.rouge_l_recall([r["answer"] for r in rows], gens).mean())
            if name == "forget":
                out["example_generation"] = {
                    "question": rows[0]["question"],
                    "answer": rows[0]["answer"],
                    "generated": gens[0],
                }
                out["forget_truth"] = M.forget_truth_score(self.forget_ratios(model))
                continue
            true, pert = self._nll(model, name, "answer"), self._nll(model, name, "perturbed_answer")
            out[f"{name}_acc"] = M.choice_accuracy(true, pert)
            para = self._nll(model, name, "paraphrased_answer") if "paraphrased_answer" in rows[0] else true
            prob = M.answer_probability(true) if name == "retain" else M.choice_probability(true, pert)
            out[f"{name}_prob"], out[f"{name}_truth"] = prob, M.truth_score(M.truth_ratios(para, pert))
            utility += [prob, out[f"{name}_rouge"], out[f"{name}_truth"]]
        if "forget_acc" not in out:
            true, pert = self._nll(model, "forget", "answer"), self._nll(model, "forget", "perturbed_answer")
            out.update(forget_acc=M.choice_accuracy(true, pert), forget_prob=M.answer_probability(true))
            out.update(self.mia(model))
        out["model_utility"] = M.model_utility(utility)
        return out

    # ---- SOUL's Table 1 (OPTML-Group/SOUL src/metrics/Tofu.py) ------------------------------------------

    def embedder(self) -> M.SentenceEmbedder:
        if self._embedder is None:
            self._embedder = M.SentenceEmbedder(self.cfg.tofu.soul.get("embedding_model"))
        return self._embedder

    def soul_ratios(self, model, name: str) -> np.ndarray:
        """SOUL's ratios on set `name`: paraphrased questions as prompts, no end-of-sequence token."""
        q = "paraphrased_question"
        return M.soul_truth_ratios(
            self._nll(model, name, "paraphrased_answer", q, eos=False),
            self._nll(model, name, "perturbed_answer", q, eos=False),
        )

    def soul_embedding_acc(self, model, name: str) -> float:
        """Greedy answer to the paraphrased question, judged by the closest of paraphrased
        / perturbed answers."""
        rows = self.sets[name]
        k = min(len(r["perturbed_answer"]) for r in rows)
        embed = self.embedder()
        gen = embed(self._generations(model, name, "paraphrased_question"))
        ref = embed([r["paraphrased_answer"] for r in rows])
        alt = embed([a for r in rows for a in r["perturbed_answer"][:k]]).reshape(len(rows), k, -1)
        return float(M.embedding_judge(gen, ref, alt).mean())

    def soul_mia(self, model) -> float:
        """Min-K% AUC on the whole QA text: forget (members) vs real authors + world facts (non-members)."""
        texts = {
            n: [
                self.enc.question(r["question"]) + self.enc.pair(r["question"], r["answer"])[1]
                for r in self.sets[n]
            ]
            for n in ("forget", "real_authors", "world_facts")
        }
        lps = {
            n: M.token_logprobs(model, ids, self.tok.pad_token_id, self.device, self.bs)
            for n, ids in texts.items()
        }
        return M.mink_auc(lps["forget"], lps["real_authors"] + lps["world_facts"], self.cfg.tofu.soul.min_k)

    def soul(self, model) -> dict:
        out = {
            "soul_forget_quality": M.forget_quality(
                self.soul_ratios(model, "forget"), self.soul_ratios(model, "retain")
            ),
            "soul_mia_auc": self.soul_mia(model),
        }
        for name in ("forget", "retain"):
            out[f"soul_{name}_acc"] = self.soul_embedding_acc(model, name)
        for name in ("real_authors", "world_facts"):
            rows = self.sets[name]
            out[f"soul_{name}_acc"] = float(
                M.substring_match([r["answer"] for r in rows], self._generations(model, name)).mean()
            )
        return out


class EpochEval(Hook):
    """Figure 1's curves: the light metrics after every unlearning epoch."""

    def __init__(self, scorer: Scorer, retain_ratios):
        self.scorer, self.retain_ratios, self.records = scorer, retain_ratios, []

    def on_epoch_end(self, epoch, model):
        self.records.append({"epoch": epoch + 1, **self.scorer.light(model, self.retain_ratios)})
        model.train()
        return False


# ---- steps --------------------------------------------------------------------------------------------


def _open(cfg, path: str | Path):
    """(model, tokenizer, meta, device): a checkpoint in the study's dtype (`tofu.dtype`: bf16 at 7B)."""
    device = pick_device(cfg.device)
    model, tok, meta = checkpoint.load(path, device, dtype=getattr(torch, cfg.tofu.dtype))
    return model, tok, meta, device


def plan_memory(
    cfg,
    checkpoint_dir: str | Path,
    *,
    what: str,
    optimizer: str | None,
    batch_key: str,
    batches: int,
    reference: bool = False,
    device=None,
):
    """Check, before loading, that a TOFU job's planned peak (optim/memory.py) fits the device: free memory
    (CUDA) capped at `tofu.max_memory_gb`; on a CPU only the cap, where one is set. Returns the plan (None: no
    budget to check against, a CPU without a cap, as at embedded scale)."""
    device = device or pick_device(cfg.device)
    cap = cfg.tofu.get("max_memory_gb")
    budget = _free_bytes(device)
    if cap is not None:
        budget = int(cap * memory.GIB) if budget is None else min(budget, int(cap * memory.GIB))
    if budget is None:
        return None
    config = AutoConfig.from_pretrained(checkpoint_dir)
    shape = memory.Shape.of_config(config, memory.n_params_of(config))
    args = dict(dtype=cfg.tofu.dtype, optimizer=optimizer, seq_len=cfg.tofu.max_length, reference=reference)
    batch_size = _lookup(cfg, batch_key)
    plan = memory.check_fits(
        budget, what=what, batch_key=batch_key, batch_size=batch_size, batches=batches, shape=shape, **args
    )
    print(f"[memory] {what}: planned {plan.describe()}, {memory.size(budget)} available", flush=True)
    return plan


def _lookup(cfg, dotted: str):
    for key in dotted.split("."):
        cfg = cfg[key]
    return cfg


def _free_bytes(device) -> int | None:
    if getattr(device, "type", str(device)) == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    return None


def tofu_model(cfg, which: str, pretrained: str | Path, out: str | Path, tracker) -> dict:
    """Fine-tune the pretrained model on full (which=base) or on the retain split (which=retain), or take a
    released TOFU checkpoint as it is (models.registry.tofu_sources); evaluate."""
    if which not in ("base", "retain"):
        raise ValueError(f"tofu-model --which must be base or retain, got {which!r}")
    source, finetune = tofu_sources(cfg)[which]
    recipe = Recipe.from_config(cfg.tofu.finetune, cfg, seed=0)
    plan = plan_memory(
        cfg,
        pretrained,
        what=f"tofu {which} model ({source})",
        optimizer=recipe.optimizer if finetune else None,
        batch_key="tofu.finetune.batch_size" if finetune else "tofu.eval_batch_size",
        batches=1,
    )
    model, tok, _, device = _open(cfg, pretrained)
    sets, enc = load_sets(cfg), encoder(cfg, tok)
    rows = (sets["retain_train"] + (sets["forget"] if which == "base" else [])) if finetune else []
    if finetune:
        stats = train(
            model,
            [enc.item(r) for r in rows],
            recipe,
            pad_id=tok.pad_token_id,
            device=device,
            resume_dir=Path(str(out) + ".resume"),
            desc=f"tofu finetune {which}",
        )
    else:
        stats = {
            "steps": 0,
            "epoch_losses": [],
            "final_loss": math.nan,
            "wall_time_s": 0.0,
        }  # train() of nothing
        print(
            f"[tofu] {which} model: {source} is already fine-tuned on TOFU (released), not trained here",
            flush=True,
        )
    scorer = Scorer(cfg, tok, sets, device)
    start = time.perf_counter()
    with scorer.same_model():
        metrics = scorer.full(model, None)
        ratios = scorer.forget_ratios(model)
    meta = {
        "stage": f"tofu_{which}",
        "model": cfg.tofu.model,
        **_provenance(source, finetune, plan),
        "n_train": len(rows),
        "train_stats": stats,
        "sizes": {k: len(v) for k, v in sets.items()},
        "metrics": metrics,
        "forget_truth_ratios": ratios.tolist(),
        "eval_s": time.perf_counter() - start,
        "params": {"tofu": cfg.tofu.to_dict()},
    }
    checkpoint.save(model, tok, out, meta)
    tracker.log_run(
        f"tofu/{which}/{cfg.tofu.model}",
        {"tofu": cfg.tofu.to_dict()},
        _numbers(metrics),
        {"stage": f"tofu_{which}", "model": cfg.tofu.model, "seed": "0"},
        {"epoch_loss": stats["epoch_losses"]},
        artifacts=[Path(out) / "meta.json"],
    )
    print(
        f"[tofu] {which} model: forget prob {metrics['forget_prob']:.3f}, forget Rouge-L "
        f"{metrics['forget_rouge']:.3f}, forget acc {metrics['forget_acc']:.3f}",
        flush=True,
    )
    return meta


def method_config(cfg, method: str, kind: str) -> Frozen:
    """The params with `methods.<method>` set to this study's recipe for optimizer kind FO or SO: the step
    size on the method's step key, the retain weight and beta where its declaration asks for them."""
    if kind not in OPTIMIZER_KINDS:
        raise ValueError(f"optimizer kind must be one of {OPTIMIZER_KINDS}, got {kind!r}")
    T, impl = cfg.tofu, METHODS.get(method)
    if method not in T.lr or kind not in T.lr[method]:
        raise ValueError(f"tofu.lr.{method}.{kind} is not set: this study's step size for {method}, {kind}")
    recipe = {"optimizer": T.optimizers[kind], "epochs": T.epochs, "weight_decay": T.weight_decay}
    block = impl.study_block(
        cfg, recipe, step=T.lr[method][kind], retain_weight=T.gamma, reference_beta=T.npo_beta
    )
    sections = {"unlearn": {"forget_batch_size": T.batch_size}, "data": {"max_length": T.max_length}}
    if "sophia" in T:  # this study's re-pick of Sophia's arguments (rho, hessian_every, ...)
        sections["optimizers"] = {"sophia": T.sophia.to_dict()}
    return impl.study_config(cfg, block, **sections)


def tofu_unlearn(
    cfg,
    method: str,
    kind: str,
    seed: int,
    base: str | Path,
    retain: str | Path,
    out: str | Path,
    tracker,
    *,
    curves: bool = True,
    wrappers=(),
) -> dict:
    """Unlearn the forget set from the base model with one method and optimizer kind; per-epoch (Figure 1)
    and final metrics (TOFU's and SOUL's Table 1 columns). curves=False: only TOFU's final metrics, no
    per-epoch scoring and no SOUL columns (what the ablations read; scoring never touches the training's
    random state, so the run and its TOFU metrics are the same: docs/ablations.md says what checks it).
    `wrappers`: a caller's model wrappers (Method.prepare), e.g. LoRA adapters."""
    out = Path(out)
    run_cfg = method_config(cfg, method, kind)
    impl = METHODS.get(method)
    plan = plan_memory(
        cfg,
        base,
        what=f"tofu unlearn {method} {kind}",
        optimizer=run_cfg.methods[method]["optimizer"],
        batch_key="tofu.batch_size",
        batches=1 if method == "gradient_ascent" else 2,
        reference=method == "npo",
    )
    model, tok, _, device = _open(cfg, base)
    retain_ratios = np.array(read_json(Path(retain) / "meta.json")["forget_truth_ratios"])
    sets, enc = load_sets(cfg), encoder(cfg, tok)
    scorer = Scorer(cfg, tok, sets, device)
    forget = [enc.item(r) for r in sets["forget"]]
    retain_items = [enc.item(r) for r in sets["retain_train"]]
    curvature = CurvatureHook(forget, cfg.tofu.batch_size, tok.pad_token_id, device, seed=seed)
    epochs = EpochEval(scorer, retain_ratios)
    if curves:
        epochs.records.append({"epoch": 0, **scorer.light(model, retain_ratios)})
    ctx = Context(
        cfg=run_cfg,
        device=device,
        pad_id=tok.pad_token_id,
        seed=seed,
        pretrained_path=Path(base),
        work_dir=out.parent / f".{out.name}.resume",
        tokenizer=tok,
        hooks=(curvature, epochs) if curves else (curvature,),
        wrappers=tuple(wrappers),
    )
    start = time.perf_counter()
    model, stats = impl.unlearn_cycle(ctx, model, forget, retain_items, 1)
    runtime = time.perf_counter() - start
    final = scorer.full(model, retain_ratios) if curves else scorer.tofu(model, retain_ratios)
    steps_per_epoch = max(1, -(-len(forget) // cfg.tofu.batch_size))
    clip = curvature.clip_rates
    summary = {
        "method": method,
        "label": impl.label,
        "optimizer_kind": kind,
        "optimizer": run_cfg.methods[method]["optimizer"],
        "seed": seed,
        **_provenance(None, True, plan),
        "params": run_cfg.methods[method].to_dict(),
        "optimizer_args": _plain(run_cfg.optimizers),
        "train_stats": stats,
        "runtime_s": runtime,
        "epochs": epochs.records,
        "final": final,
        "clip_rate_per_epoch": [],
        **sophia_summary(clip, curvature.unclipped_shares, steps_per_epoch),
    }
    write_json(out, summary)
    step_metrics = {k: [r[k] for r in epochs.records] for k in (epochs.records or [{}])[0] if k != "epoch"}
    if clip:
        step_metrics["clip_rate"] = clip
        step_metrics["clip_rate_epoch"] = summary["clip_rate_per_epoch"]
        step_metrics["unclipped_share"] = curvature.unclipped_shares
    premise = {f"curvature/{k}": v for k, v in summary.get("curvature", {}).items() if k != "verdict"}
    tracker.log_run(
        f"tofu/unlearn/{method}/{kind}/seed{seed}",
        {f"methods.{method}": summary["params"], "optimizers": summary["optimizer_args"]},
        {**_numbers(final), "runtime_s": runtime, **premise},
        {"stage": "tofu_unlearn", "method": method, "optimizer": kind, "seed": str(seed)},
        step_metrics,
        artifacts=[out],
    )
    return summary


def _provenance(source: str | None, finetuned: bool, plan) -> dict:
    """Record keys only where they say something (the embedded outputs stay as they were): the released
    checkpoint a model is, and the memory plan a job was checked against."""
    return {**({} if finetuned else {"released": source}), **({"memory_plan": vars(plan)} if plan else {})}


def _numbers(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}


def _plain(v):
    return v.to_dict() if hasattr(v, "to_dict") else copy.deepcopy(dict(v))

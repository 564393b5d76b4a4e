"""The TOFU study's data handling: split matching, QA encoding (loss on answers only), the per-study
method recipe, and PO keeping a QA item's question as its prompt."""

import pytest

from unlearn_repro import config
from unlearn_repro.methods.preference import refusal_items
from unlearn_repro.pipeline import tofu
from unlearn_repro.train import collate


def test_split_names_follow_the_forget_split():
    assert tofu.split_names("forget10") == {
        "forget": "forget10_perturbed",
        "retain": "retain90",
        "holdout": "holdout10",
    }
    assert tofu.split_names("forget01")["holdout"] == "holdout01"


def _tok():
    from unlearn_repro.models.tokenizers import train_bpe

    return train_bpe(["Question: who wrote it?\nAnswer: the author wrote a book"] * 5, 300)


def test_qa_item_masks_the_prompt_and_po_keeps_the_question():
    tok = _tok()
    enc = tofu.Encoder(tok, 64)
    item = enc.item({"question": "who wrote it?", "answer": "the author"})
    p, a = enc.pair("who wrote it?", "the author", eos=True)
    tag = len(tok("Answer:", add_special_tokens=False)["input_ids"])  # trained on the answer after its tag
    assert item["ids"] == p + a and item["prompt_len"] == len(p) + tag and a[-1] == tok.eos_token_id
    labels = collate([item], tok.pad_token_id, "cpu")["labels"][0].tolist()
    assert labels[: len(p) + tag] == [-100] * (len(p) + tag) and labels[len(p) + tag :] == a[tag:]
    po = refusal_items(tok, [item], 0.5, 64, seed=0)[0]
    assert po["ids"][: po["prompt_len"]] == enc.prompt("who wrote it?") and po["ids"][len(p) :] != a


def test_encoder_follows_tofu_s_template_and_scores_the_answer_tag():
    """TOFU's data_module: prompt 'Question: q\\n', answer 'Answer: a' + eos tokenized as one piece (its label
    mask covers the question only); generation starts after 'Answer:', its space going with the answer."""
    tok = _tok()
    enc = tofu.Encoder(tok, 64)

    def ids(t):
        return tok(t, add_special_tokens=False)["input_ids"]

    p, a = enc.pair("who wrote it?", "the author", eos=True)
    assert p == enc.bos + ids("Question: who wrote it?\n") and a == ids("Answer: the author") + [
        tok.eos_token_id
    ]
    assert enc.prompt("who wrote it?") == p + ids("Answer:") and a[: len(ids("Answer:"))] == ids("Answer:")
    assert enc.pair("who wrote it?", "the author")[1] == a[:-1]  # eos only when asked (SOUL scores none)
    other = tofu.Encoder(
        tok, 64, {"question_start": "### Question: ", "question_end": "\n", "answer_tag": ""}
    )
    assert other.pair("q?", "the author")[1] == ids("the author")


def test_method_config_sets_the_kind_s_optimizer_and_lr():
    cfg = config.load("params.yaml", "ci")
    run = tofu.method_config(cfg, "npo", "SO")
    block = run.methods["npo"]
    assert block["optimizer"] == "sophia" and block["lr"] == cfg.tofu.lr["npo"]["SO"]
    assert block["beta"] == cfg.tofu.npo_beta and block["epochs"] == cfg.tofu.epochs
    assert run.unlearn.forget_batch_size == cfg.tofu.batch_size
    assert "gamma" not in tofu.method_config(cfg, "gradient_ascent", "FO").methods["gradient_ascent"]
    with pytest.raises(ValueError, match="FO"):
        tofu.method_config(cfg, "npo", "XO")


def test_load_sets_subsets_by_author_and_matches_retain_rows():
    cfg = config.load("params.yaml", "ci")
    sets = tofu.load_sets(cfg)
    assert len(sets["forget"]) == 20 * cfg.tofu.forget_authors == len(sets["holdout"])
    assert len(sets["retain_train"]) == 20 * cfg.tofu.retain_authors
    assert {r["question"] for r in sets["retain"]} <= {r["question"] for r in sets["retain_train"]}
    assert len(sets["forget"][0]["perturbed_answer"]) == 5 and "paraphrased_answer" in sets["forget"][0]


def test_load_sets_reads_the_hub_format(tmp_path):
    """At paper scale TOFU comes from the hub (one config per split): the same sets,
    perturbed answers kept."""
    import yaml

    from tests import hub_fixtures as fx

    raw = yaml.safe_load(open("params.yaml"))
    raw["profiles"]["ci"] = config.deep_merge(
        raw["profiles"]["ci"],
        {
            "data": {"source": "hub", "hub_paths": {"tofu": str(fx.tofu(tmp_path / "tofu", authors=2))}},
            "tofu": {"forget_authors": 1, "retain_authors": 2},
        },
    )
    cfg = config.resolve(raw, "ci")
    sets = tofu.load_sets(cfg)
    assert [r["question"] for r in sets["forget"]] == [f"Who wrote book {i}?" for i in range(20, 40)]
    assert len(sets["retain_train"]) == 40 and len(sets["holdout"]) == 20
    assert sets["retain"][0]["perturbed_answer"] == ["Author 41."] * 5
    assert sets["real_authors"][0]["paraphrased_answer"] == "It was author 120."


def test_the_study_s_sophia_overrides_reach_only_sophia():
    import yaml

    raw = yaml.safe_load(open("params.yaml"))
    raw["tofu"]["sophia"] = {"rho": 5.0}
    cfg = config.resolve(raw, "ci")
    args = tofu.method_config(cfg, "gradient_difference", "SO").optimizers
    assert (
        args["sophia"]["rho"] == 5.0
        and args["sophia"]["hessian_every"] == cfg.optimizers.sophia.hessian_every
    )
    assert args["adamw"] == cfg.optimizers.adamw


def test_scorer_scores_each_set_once_per_model_state_with_the_same_metrics(monkeypatch):
    """full() memoizes the answer log-probabilities of each (set, key): same numbers as scoring each metric
    afresh, one forward pass per (set, key) instead of up to three (light, MIA, utility)."""
    import contextlib

    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from unlearn_repro.metrics import tofu as M

    cfg = config.load("params.yaml", "ci")
    sets = {k: v[:4] for k, v in tofu.load_sets(cfg).items()}
    tok = _tok()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=256,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    ).eval()
    scorer = tofu.Scorer(cfg, tok, sets, "cpu")
    retain_ratios = np.linspace(0.2, 0.9, 4)
    calls = []
    real = M.answer_logprobs
    monkeypatch.setattr(M, "answer_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    memo = scorer.full(model, retain_ratios)
    scored_once = len(calls)
    assert scorer._memo is None  # nothing outlives the call: the model may change next
    saved = model.lm_head.weight.detach().clone()
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)
    assert scorer.light(model, retain_ratios)["forget_prob"] != memo["forget_prob"]
    with torch.no_grad():
        model.lm_head.weight.copy_(saved)
    monkeypatch.setattr(tofu.Scorer, "same_model", lambda self: contextlib.nullcontext())
    calls.clear()
    fresh = scorer.full(model, retain_ratios)
    assert memo == fresh
    # (forget: answer, perturbed, paraphrased), (retain: answer, perturbed, paraphrased), holdout,
    # (real_authors, world_facts: answer, perturbed), and SOUL's (forget, retain: paraphrased, perturbed given
    # the paraphrased question, no eos)
    assert scored_once == 15 < len(calls)
    # tofu(): what the ablations' lean points read, TOFU's metrics alone: full() less SOUL's columns
    assert scorer.tofu(model, retain_ratios) == {k: v for k, v in memo.items() if not k.startswith("soul_")}
    assert {
        "soul_forget_quality",
        "soul_mia_auc",
        "soul_forget_acc",
        "soul_retain_acc",
        "soul_real_authors_acc",
        "soul_world_facts_acc",
    } <= set(memo)


def _paper_tofu(**tofu_over):
    from tests.unit.test_hub import _paper

    return _paper(tofu=tofu_over)[1]


def test_tofu_sources_released_checkpoints_or_the_recipe():
    """Tiny / pretrained models are fine-tuned here on full and on the retain split; SOUL's released Llama-2
    checkpoint is the base model as it is, with its released retain model or TOFU's recipe for it."""
    from unlearn_repro.models.registry import tofu_sources

    embedded = config.load("params.yaml", "embedded")
    assert tofu_sources(embedded) == {"base": ("tiny-gpt-neo", True), "retain": ("tiny-gpt-neo", True)}
    paper = _paper_tofu()
    assert tofu_sources(paper) == {
        "base": ("tofu-llama2-7b-chat", False),
        "retain": ("tofu-llama2-7b-chat-retain90", False),
    }
    assert tofu_sources(_paper_tofu(forget_split="forget01"))["retain"] == (
        "tofu-llama2-7b-chat-retain99",
        False,
    )
    assert tofu_sources(_paper_tofu(retain="recipe")) == {
        "base": ("tofu-llama2-7b-chat", False),
        "retain": ("llama2-7b-chat", True),
    }
    # the paper profile formats QA as TOFU's Llama-2 chat prompt, in bf16
    assert paper.tofu.template.to_dict() == {
        "question_start": "[INST] ",
        "question_end": " [/INST]",
        "answer_tag": "",
    }
    assert paper.tofu.dtype == "bfloat16"


def test_plan_memory_checks_the_cap_before_loading(tmp_path, capsys):
    """A job whose plan exceeds tofu.max_memory_gb stops before loading, naming the batch size that fits; with
    no cap on a CPU nothing is checked (the embedded path)."""
    from tests import hub_fixtures as fx
    from unlearn_repro.optim.memory import TrainingMemoryError

    folder = fx.local_llama(tmp_path / "llama", ["who wrote the book? the author did"] * 10)
    cfg = config.load("params.yaml", "ci")
    assert (
        tofu.plan_memory(
            cfg, folder, what="x", optimizer="sophia", batch_key="tofu.batch_size", batches=2, device="cpu"
        )
        is None
    )
    d = cfg.to_dict()
    d["tofu"]["max_memory_gb"] = 0.003  # ~3 MiB: the two-layer Llama fits at batch 2 of both sets, not at 8
    with pytest.raises(
        TrainingMemoryError, match=r"tofu unlearn npo SO: needs .* what fits: tofu.batch_size: 2;"
    ):
        tofu.plan_memory(
            config.Frozen(d),
            folder,
            what="tofu unlearn npo SO",
            optimizer="sophia",
            batch_key="tofu.batch_size",
            batches=2,
            reference=True,
            device="cpu",
        )
    d["tofu"]["max_memory_gb"] = 1
    plan = tofu.plan_memory(
        config.Frozen(d),
        folder,
        what="tofu base",
        optimizer=None,
        batch_key="tofu.eval_batch_size",
        batches=1,
        device="cpu",
    )
    assert (
        plan.gradients == 0 and plan.weights > 0 and "[memory] tofu base: planned" in capsys.readouterr().out
    )

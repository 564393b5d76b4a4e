"""Model registry: tiny random-init configs (embedded scale) and the hub ids of the paper's models."""

from __future__ import annotations

from dataclasses import dataclass, field

from unlearn_repro.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # gpt_neo | opt | llama: picks the config class and the pretrained tokenizer
    hub_id: str | None = None  # None: built from `config` and pretrained here on WikiText-2
    config: dict = field(default_factory=dict)
    tofu_split: str | None = (
        None  # a released checkpoint already fine-tuned on this TOFU split (full, retain90)
    )
    pretrained_from: str | None = None  # ... from this registry model (TOFU's recipe starts there)
    tofu_retain: dict = field(default_factory=dict)  # TOFU retain split -> the released retain model's name

    @property
    def is_tiny(self) -> bool:
        return self.hub_id is None


MODELS: Registry[ModelSpec] = Registry("model")

# Tiny: ~0.9M parameters with a 4k vocabulary (half of them the embedding); no dropout, so CPU runs are
# deterministic. Sized for a 2-core CPU; the architecture is the real GPT-Neo / OPT one.
_TINY_NEO = dict(
    hidden_size=64,
    num_layers=4,
    num_heads=4,
    attention_types=[[["global", "local"], 2]],
    window_size=32,
    intermediate_size=256,
    max_position_embeddings=128,
    embed_dropout=0.0,
    attention_dropout=0.0,
    resid_dropout=0.0,
)
_TINY_OPT = dict(
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    ffn_dim=256,
    word_embed_proj_dim=64,
    max_position_embeddings=128,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    layerdrop=0.0,
)

for _spec in (
    ModelSpec("tiny-gpt-neo", "gpt_neo", None, _TINY_NEO),
    ModelSpec("tiny-opt", "opt", None, _TINY_OPT),
    ModelSpec("gpt-neo-125m", "gpt_neo", "EleutherAI/gpt-neo-125m"),
    ModelSpec("gpt-neo-1.3b", "gpt_neo", "EleutherAI/gpt-neo-1.3B"),
    ModelSpec("gpt-neo-2.7b", "gpt_neo", "EleutherAI/gpt-neo-2.7B"),
    ModelSpec("opt-125m", "opt", "facebook/opt-125m"),
    ModelSpec("opt-1.3b", "opt", "facebook/opt-1.3b"),
    ModelSpec("opt-2.7b", "opt", "facebook/opt-2.7b"),
):
    MODELS.register(_spec.name)(_spec)

# SOUL's TOFU setting: Llama-2-7B-chat fine-tuned on TOFU `full` (the model unlearning starts from) and the
# retain models fine-tuned on retain90 / 95 / 99 by the same recipe (5 epochs, lr 1e-5), as open-unlearning
# released them. TOFU fine-tuned from NousResearch/Llama-2-7b-chat-hf (its model_config.yaml hf_key: the
# meta-llama weights without the licence gate); locuslab/tofu_ft_llama2-7b is TOFU's own `full` checkpoint
# (model_sources.tofu-llama2-7b-chat: locuslab/tofu_ft_llama2-7b selects it).
LLAMA2_CHAT = "llama2-7b-chat"
TOFU_LLAMA2 = "tofu-llama2-7b-chat"
_OU = "open-unlearning/tofu_Llama-2-7b-chat-hf"
MODELS.register(LLAMA2_CHAT)(ModelSpec(LLAMA2_CHAT, "llama", "NousResearch/Llama-2-7b-chat-hf"))
_RETAIN_SPLITS = ("retain90", "retain95", "retain99")
MODELS.register(TOFU_LLAMA2)(
    ModelSpec(
        TOFU_LLAMA2,
        "llama",
        f"{_OU}_full",
        tofu_split="full",
        pretrained_from=LLAMA2_CHAT,
        tofu_retain={s: f"{TOFU_LLAMA2}-{s}" for s in _RETAIN_SPLITS},
    )
)
for _split in _RETAIN_SPLITS:
    _name = f"{TOFU_LLAMA2}-{_split}"
    MODELS.register(_name)(
        ModelSpec(_name, "llama", f"{_OU}_{_split}", tofu_split=_split, pretrained_from=LLAMA2_CHAT)
    )


def retain_split(forget_split: str) -> str:
    """TOFU's retain split of a forget split: forget10 -> retain90."""
    return f"retain{100 - int(forget_split.removeprefix('forget'))}"


def tofu_sources(cfg) -> dict[str, tuple[str, bool]]:
    """Where the TOFU study's base and retain models come from: {which: (registry model, fine-tune it?)}.
    A pretrained model (tofu_split None) is fine-tuned here on `full` and on the retain split (TOFU's recipe,
    `tofu.finetune`); a released checkpoint fine-tuned on `full` is the base model as it is, and the retain
    model is the released one for this forget split (`tofu.retain: released`) or, by the recipe, the model it
    was fine-tuned from trained on the retain split (`tofu.retain: recipe`, or no released retain model)."""
    t = cfg.tofu
    spec = MODELS.get(t.model)
    if spec.tofu_split is None:
        return {"base": (t.model, True), "retain": (t.model, True)}
    if spec.tofu_split != "full":
        raise ValueError(
            f"tofu.model = {t.model!r} is fine-tuned on TOFU {spec.tofu_split}, not full: it is a "
            f"retain model; name the full one (e.g. {TOFU_LLAMA2})"
        )
    released = spec.tofu_retain.get(retain_split(t.forget_split))
    if t.get("retain", "released") == "released" and released:
        return {"base": (t.model, False), "retain": (released, False)}
    if spec.pretrained_from is None:
        raise ValueError(f"tofu.retain = recipe: model {t.model!r} names no pretrained model to fine-tune")
    return {"base": (t.model, False), "retain": (spec.pretrained_from, True)}


def tofu_models(cfg) -> list[str]:
    """The registry models the TOFU study loads (its pretrained models, or its released checkpoints)."""
    return list(dict.fromkeys(name for name, _ in tofu_sources(cfg).values())) if "tofu" in cfg else []

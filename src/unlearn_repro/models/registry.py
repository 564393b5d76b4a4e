"""Model registry: tiny random-init configs (embedded scale) and the hub ids of the paper's models."""
from __future__ import annotations

from dataclasses import dataclass, field

from unlearn_repro.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str                  # gpt_neo | opt: picks the config class and the pretrained tokenizer
    hub_id: str | None = None    # None: built from `config` and pretrained here on WikiText-2
    config: dict = field(default_factory=dict)

    @property
    def is_tiny(self) -> bool:
        return self.hub_id is None


MODELS: Registry[ModelSpec] = Registry("model")

# Tiny: ~0.9M parameters with a 4k vocabulary (half of them the embedding); no dropout, so CPU runs are
# deterministic. Sized for a 2-core CPU; the architecture is the real GPT-Neo / OPT one.
_TINY_NEO = dict(hidden_size=64, num_layers=4, num_heads=4, attention_types=[[["global", "local"], 2]],
                 window_size=32, intermediate_size=256, max_position_embeddings=128,
                 embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0)
_TINY_OPT = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, ffn_dim=256,
                 word_embed_proj_dim=64, max_position_embeddings=128, dropout=0.0, attention_dropout=0.0,
                 activation_dropout=0.0, layerdrop=0.0)

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

"""unlearn-repro: second-order machine unlearning for LLMs, reproduced end to end."""

__version__ = "0.1.0"

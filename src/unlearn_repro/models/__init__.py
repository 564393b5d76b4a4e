"""Models: one builder for tiny config-made models and hub checkpoints; tokenizers; checkpoint io."""

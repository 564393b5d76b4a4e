"""Unlearning methods, one file each, registered by name. Loss-based methods hand a loss to the shared
training loop (train.py); Newton-type methods supply an update built from the inverse Fisher."""
from unlearn_repro.methods.base import METHODS, Context, Method  # noqa: F401
from unlearn_repro.methods import (  # noqa: F401  (registers the methods)
    retrain, finetune, gradient_ascent, fisher_removal, fisher_forgetting)

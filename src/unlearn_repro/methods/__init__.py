"""Unlearning methods, one file each, registered by name when this package is imported: every module
here is imported, so a new method is a new file (plus its params block), with no list to edit.
Loss-based methods hand an objective to the shared training loop (train.py); Newton-type methods
supply an update built from the inverse Fisher."""

import importlib
import pkgutil

from unlearn_repro.methods.base import METHODS, Context, Method  # noqa: F401

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}")

"""The resolved config's shape: a read-only nested mapping with attribute access, and the merge every
layer and study overlay uses. Below config (which validates against every registry), so the methods and
pipelines can build and overlay configs without importing it."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class Frozen(Mapping):
    """Read-only nested mapping with attribute access (cfg.fisher.block_size)."""

    def __init__(self, data: Mapping[str, Any]):
        self._data = MappingProxyType({k: _freeze(v) for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}; keys: {sorted(self._data)}") from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Frozen({dict(self._data)!r})"

    def to_dict(self) -> dict:
        return {
            k: (v.to_dict() if isinstance(v, Frozen) else list(v) if isinstance(v, tuple) else v)
            for k, v in self._data.items()
        }


def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return Frozen(v)
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def deep_merge(base: dict, override: Mapping) -> dict:
    """Return base with override merged in (dicts recursively, everything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def overlay(cfg: Frozen, over: Mapping) -> Frozen:
    """cfg with a study's values merged over it: the one way a study overrides the shared params (its
    methods' blocks, unlearn, data, ...) for the code it shares with the main study."""
    return Frozen(deep_merge(cfg.to_dict(), over))

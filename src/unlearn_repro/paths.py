"""Where the checkout is: the lowest layer, so that io, config and the rest can all use it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (src/unlearn_repro/paths.py -> ../..)
SCHEMA_PATH = ROOT / "schemas" / "params.schema.yaml"

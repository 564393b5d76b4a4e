"""Errors shared across layers, kept low so that any module may raise or format them."""

from __future__ import annotations


class HubError(RuntimeError):
    """The hub (or the cache standing in for it) could not give what a job needs; the message is one line."""


class DeviceError(RuntimeError):
    """The configured device does not exist here (one line, no traceback)."""


def one_line(e: BaseException, limit: int = 400) -> str:
    """An exception as one short line: its type and the first line of its message (hub errors
    run to pages)."""
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    text = first if isinstance(e, HubError) else f"{type(e).__name__}: {first}" if first else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."

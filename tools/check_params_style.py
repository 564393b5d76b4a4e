"""`make lint`'s check of params.yaml's layout: every line within 110 characters, and block style for anything
nested (a flow-style `{...}` or `[...]` may hold only scalars), so that each value sits on its own line with
room for a comment that says what it means and where it comes from."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

MAX_LINE = 110


def long_lines(text: str) -> list[str]:
    return [
        f"line {i}: {len(line)} characters (at most {MAX_LINE})"
        for i, line in enumerate(text.splitlines(), 1)
        if len(line) > MAX_LINE
    ]


def nested_flow(node: yaml.Node) -> list[str]:
    """Flow-style collections that hold a collection: these are what block style is for."""
    found = []
    children = (
        [v for kv in node.value for v in kv]
        if isinstance(node, yaml.MappingNode)
        else node.value
        if isinstance(node, yaml.SequenceNode)
        else []
    )
    nested = [c for c in children if isinstance(c, yaml.MappingNode | yaml.SequenceNode) and c.value]
    if getattr(node, "flow_style", False) and nested:
        found.append(
            f"line {node.start_mark.line + 1}: a flow-style collection holding another one "
            "(write it in block style)"
        )
    for child in children:
        found += nested_flow(child)
    return found


def problems(text: str) -> list[str]:
    return long_lines(text) + nested_flow(yaml.compose(text))


def main(argv: list[str]) -> int:
    bad = 0
    for path in map(Path, argv):
        for problem in problems(path.read_text()):
            print(f"{path}: {problem}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

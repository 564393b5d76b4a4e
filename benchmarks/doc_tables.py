"""Generated tables in the docs: a block between `<!-- generated from PATH -->` and `<!-- end generated -->`
is PATH's content (a result file written by a benchmark), so no number in it is typed by hand.

    python benchmarks/doc_tables.py [docs/speed-and-memory.md ...]   # refresh every block from its file

speed_guard.py refreshes docs/speed-and-memory.md after a full run; tests/unit/test_speed_guard.py checks
that every block equals its file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "speed-and-memory.md"
BLOCK = re.compile(r"(<!-- generated from (\S+) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(result file, the doc's copy of it) for every generated block of a doc."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def refresh(doc: Path = DOC, root: Path = ROOT) -> list[str]:
    """Rewrite each block of `doc` from its file (a block whose file is missing stays): the files used."""
    used = []

    def fill(m: re.Match) -> str:
        src = root / m.group(2)
        if not src.is_file():
            return m.group(0)
        used.append(m.group(2))
        return m.group(1) + src.read_text() + m.group(4)

    doc.write_text(BLOCK.sub(fill, doc.read_text()))
    return used


if __name__ == "__main__":
    for path in sys.argv[1:] or [str(DOC)]:
        print(f"{path}: {', '.join(refresh(Path(path))) or 'no generated blocks'}")

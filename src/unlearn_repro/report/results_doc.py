"""README.md's results block and docs/results.md, generated from a results folder, so that no number in them
is copied by hand: `python -m unlearn_repro.report.results_doc results/<profile>` rewrites every block,
`--check` fails (naming the first differing line and number) while a block is out of step with the files.

A block is the text between `<!-- results: NAME -->` and `<!-- /results -->`. NAME is `headline` (verdict
counts and a few key claims), `overview` (every claim: report/overview.py) or a file under the results folder
(e.g. `main/tables/ranking.md`), which is included as it is, its headings moved two levels down. The prose
around the blocks is hand-written and carries no run numbers."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from unlearn_repro.paths import ROOT
from unlearn_repro.report import overview

BEGIN = re.compile(r"^<!-- results: (\S+) -->$")
END = "<!-- /results -->"
NUMBER = re.compile(r"[-+−]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


class BlockError(ValueError):
    """A file's blocks cannot be filled: no block, an unclosed one, or a source that is missing."""


def link_prefix(root: Path, page: Path) -> str:
    """How `page` links into the results folder (README.md: results/<p>/, docs/results.md: ../results/<p>/)"""
    return Path(os.path.relpath(Path(root).resolve(), page.resolve().parent)).as_posix() + "/"


def headline(rows: list, root: Path, page: Path, doc: Path) -> str:
    """README.md's block: the verdict counts per paper and the few claims the overview marks as headline."""
    prefix, profile = link_prefix(root, page), Path(root).name
    doc_link = Path(os.path.relpath(doc.resolve(), page.resolve().parent)).as_posix()
    out = [
        f"The committed `{profile}` run ([every claim]({prefix}README.md), [study by study]({doc_link})):",
        "",
        "| paper | claims | verdicts |",
        "|:--|--:|:--|",
    ]
    for paper, title in overview.PAPERS.items():
        mine = [r for r in rows if r.paper == paper]
        out.append(f"| {title} | {len(mine)} | {overview.counts(mine)} |")
    out += [
        "",
        "Key claims:",
        "",
        "| claim | verdict | premise | ours (95 % interval) | paper |",
        "|:--|:--|:--|:--|:--|",
    ]
    for r in (r for r in rows if r.headline):
        cells = (r.claim, f"**{r.verdict}**", r.premise, r.ours, r.theirs)
        out.append("| " + " | ".join(map(overview.md_cell, cells)) + " |")
    return "\n".join(out) + "\n"


def included(root: Path, name: str, page: Path) -> str:
    """A results file as it is, headed by its link, its headings two levels down (they sit in a section)."""
    path = Path(root) / name
    if not path.is_file():
        raise BlockError(f"{page}: block {name!r}: {path} is missing")
    text = re.sub(r"^#", "###", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return f"From [`{name}`]({link_prefix(root, page)}{name}):\n\n{text.rstrip()}\n"


def block(name: str, root: Path, page: Path, doc: Path, rows: list) -> str:
    """A block's body, set off by blank lines (Markdown ends the marker's HTML comment there)."""
    if name == "headline":
        body = headline(rows, root, page, doc)
    elif name == "overview":
        body = overview.markdown_tables(rows, link_prefix(root, page), level="###")
    else:
        body = included(root, name, page)
    return "\n" + body.rstrip("\n") + "\n\n"


def fill(text: str, root: Path, page: Path, doc: Path, rows: list) -> str:
    """`text` with every block's body generated again from the results folder."""
    out, name = [], None
    for line in text.splitlines(keepends=True):
        if name is None:
            out.append(line)
            m = BEGIN.match(line.strip())
            if m:
                name = m.group(1)
                out.append(block(name, root, page, doc, rows))
        elif line.strip() == END:
            out.append(line)
            name = None
    if name is not None:
        raise BlockError(f"{page}: block {name!r} has no closing {END}")
    if not any(BEGIN.match(line.strip()) for line in out):
        raise BlockError(f"{page}: no results block (`<!-- results: NAME -->` ... `{END}`)")
    return "".join(out)


def first_difference(page: Path, found: str, expected: str, root: Path) -> str:
    """Where `found` first departs from what the files give: its line, and the first number that differs."""
    got, want = found.splitlines(), expected.splitlines()
    i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    a, b = (got[i] if i < len(got) else "<end>"), (want[i] if i < len(want) else "<end>")
    msg = f"{page}:{i + 1}: out of step with {root}\n  found:         {a}\n  the files give: {b}"
    nums = [(x, y) for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)) if x != y]
    if nums:
        msg += f"\n  first differing number: {nums[0][0]} here, {nums[0][1]} in the files"
    return msg + "\n  run `python -m unlearn_repro.report.results_doc " + f"{root}` to regenerate"


def run(root: Path, pages: list[Path], doc: Path, check: bool) -> int:
    """Fill (or, with check, compare) every page; 1 at the first page out of step. Nothing is written unless
    every page's blocks could be filled."""
    rows = overview.rows(root)
    texts = {page: page.read_text(encoding="utf-8") for page in pages}
    new = {page: fill(text, root, page, doc, rows) for page, text in texts.items()}
    for page in (p for p in pages if new[p] != texts[p]):
        if check:
            print(first_difference(page, texts[page], new[page], root), file=sys.stderr)
            return 1
        page.write_text(new[page], encoding="utf-8")
        print(f"{page}: results regenerated from {root}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unlearn_repro.report.results_doc", description=__doc__)
    ap.add_argument("results", type=Path, help="a results folder, e.g. results/embedded")
    ap.add_argument("--check", action="store_true", help="fail if a page differs from what the files give")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "results.md")
    a = ap.parse_args(argv)
    try:
        return run(a.results, [a.readme, a.doc], a.doc, a.check)
    except (BlockError, overview.MissingResult) as e:
        print(f"results_doc: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

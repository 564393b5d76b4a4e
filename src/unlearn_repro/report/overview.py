"""The overview: one row per claim of each of the three papers, read from a results/<profile>/ folder, so that
a reader sees every verdict in two minutes: the verdict, its premise, our key number with its interval, the
paper's number and the table behind it. It writes results/<profile>/README.md (the folder's front page on
GitHub) and overview.html (the Snakemake report's landing page shows it).

Every number is copied from the studies' own files as they print it (verdicts.csv, TDEC's Table 1 and
summary, TOFU's tables): nothing is recomputed here. It reads only csv and json, which keeps the CLI fast."""

from __future__ import annotations

import csv
import html
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from unlearn_repro.io import read_json, write_text
from unlearn_repro.report.stats import MISSING, PREMISE_NOT_MET, SEP

# every file the overview reads, relative to results/<profile>/ (the rule's inputs; results_doc's sources)
SOURCES = (
    "verdicts.csv",
    "main/tables/ranking.csv",
    "discussions/tables/weight_kl.csv",
    "tdec/summary/metrics.json",
    "tdec/tables/table1.csv",
    "tofu/summary/metrics.json",
    "tofu/tables/verdicts.csv",
    "tofu/tables/premise.csv",
    "tofu/tables/table1.csv",
    "tofu/tables/table1_tofu.csv",
    "ablations/tables/verdicts.csv",
)
ABLATIONS = SOURCES[-1]  # a folder from a run without the ablations study: its rows say 'not run'
PAPERS = {
    "main": "Second-Order Information Matters (Fisher Removal, Fisher Forgetting): the main paper",
    "tdec": "Towards Robust and Cost-Efficient Knowledge Unlearning (IHL, FLoRA) on TDEC",
    "tofu": "SOUL (Sophia-style second-order unlearning) on TOFU",
}
# the main paper's claims whose table pairs our rank with the paper's (Table 7): claim words -> column, method
PAPER_RANKS = {
    "strongest efficacy": ("efficacy", "Fisher Removal"),
    "least robust in fidelity": ("fidelity", "Gradient Ascent"),
    "Finetuning does not erase": ("efficacy", "Finetuning"),
}
MAIN_HEADLINE = (
    "strongest efficacy"  # the title claim: second-order information makes Fisher Removal erase best
)
# the main study's claims read every run's metrics: their table, by the figure they test (else Table 7)
MAIN_LINKS = (("Fig. 2", "main/tables/runtime.md"), ("Fig. 5", "main/tables/extended_cycles.md"))
TDEC_LABELS = {
    "ga": "GA",
    "gd": "GD",
    "lora_gd": "LoRA + GD",
    "lora_ihl": "LoRA + IHL",
    "flora_gd": "FLoRA + GD",
    "flora_ihl": "FLoRA + IHL",
}
# the FLoRA paper's findings (report/tdec.py: findings) and the Table 1 rows each one compares (a finding's
# own `compared_with` adds its rivals)
TDEC_FINDINGS = {
    "gd_beats_ga": ("GD forgets better than GA (no more epochs, lower PPL)", ("gd", "ga")),
    "lora_gd_often_fails": ("Plain LoRA + GD often fails to forget", ("lora_gd",)),
    "flora_ihl_fewer_epochs_best_utility": (
        "FLoRA + IHL forgets in fewest epochs with the best utility",
        ("flora_ihl",),
    ),
}
TDEC_HEADLINE = "flora_ihl_fewer_epochs_best_utility"  # the paper's proposal
TOFU_CLAIM = "SO (Sophia) forgets more than FO (AdamW) at equal utility"
TOFU_HEADLINE = ("GradDiff", "NPO")  # SOUL's Table 1 pairs FO and SO rows for these losses


class MissingResult(FileNotFoundError):
    """A file the overview reads is absent: its study has not run (or not in this results folder)."""


@dataclass(frozen=True)
class Row:
    paper: str  # a PAPERS key
    claim: str
    verdict: str
    premise: str
    ours: str
    theirs: str
    link: str  # relative to the results folder; "" where there is no table (not run)
    headline: bool = False  # one of the few claims README.md quotes


def need(root: Path, rel: str) -> Path:
    path = Path(root) / rel
    if not path.is_file():
        raise MissingResult(f"{path} is missing: the overview reads it (report/overview.py: SOURCES)")
    return path


def read_csv(root: Path, rel: str) -> list[dict]:
    with need(root, rel).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def paper_side(cell: str) -> str:
    return cell.split(SEP, 1)[1] if SEP in cell else MISSING


def table_link(root: Path, rel: str) -> str:
    """A table's Markdown page where it has one (people read it), else the file itself."""
    md = Path(rel).with_suffix(".md")
    return md.as_posix() if (Path(root) / md).is_file() else rel


# --- the main paper: verdicts.csv ---------------------------------------------------------------------------
def key_number(evidence: str) -> str:
    """The evidence's first clause that carries an interval (± or [low, high], or says it has one seed), else
    all of it: verdicts.py writes the compared numbers with their interval in one clause."""
    clauses = evidence.split("; ")
    marked = [c for c in clauses if "±" in c or "[" in c or "(1 seed" in c]
    return marked[0] if marked else evidence


def source_file(root: Path, source: str) -> str | None:
    """A verdict's source relative to the results folder, when it names one file there (the main study's
    source is a folder of per-method files: none)."""
    parts, name = Path(source).parts, Path(root).name
    if " " in source or name not in parts:
        return None
    return Path(*parts[len(parts) - parts[::-1].index(name) :]).as_posix()


def main_link(root: Path, row: dict) -> str:
    """The claim's table: its source's page, else (per-run metrics) the main table of the figure it tests."""
    rel = source_file(root, row["source"])
    if rel:
        return table_link(root, rel)
    if "metrics/" not in row["source"]:  # not run: no source
        return "verdicts.md"
    return next((link for tag, link in MAIN_LINKS if tag in row["section"]), "main/tables/ranking.md")


def main_paper_number(row: dict, ranking: list[dict], kl: list[dict]) -> str:
    """The paper's number where our table pairs one with ours: Table 7's ranks (ranking.csv's "ours ‖ paper"
    cells), the paper's KL (weight_kl.csv's `paper` column)."""
    for words, (column, method) in PAPER_RANKS.items():
        if words in row["claim"]:
            cells = [f"{r['family']} {paper_side(r[column])}" for r in ranking if r["method"] == method]
            return f"Table 7 {column} rank of {method}: " + ", ".join(cells)
    if row["source"].endswith("weight_kl.csv"):
        paired = [r for r in kl if not math.isnan(number(r.get("paper")))]
        return "KL: " + ", ".join(f"{r['label']} {number(r['paper']):.3g}" for r in paired)
    return MISSING


def main_rows(root: Path) -> list[Row]:
    ranking, kl = (
        read_csv(root, "main/tables/ranking.csv"),
        read_csv(root, "discussions/tables/weight_kl.csv"),
    )
    return [
        Row(
            "main",
            f"{r['section']} {r['claim']}",
            r["verdict"],
            r["premise"],
            key_number(r["evidence"]),
            main_paper_number(r, ranking, kl),
            main_link(root, r),
            headline=MAIN_HEADLINE in r["claim"],
        )
        for r in read_csv(root, "verdicts.csv")
    ]


# --- the FLoRA paper: TDEC findings -------------------------------------------------------------------------
def _fmt(value: float, half: float = math.nan) -> str:
    """As report/tdec.py prints Table 1: one decimal, '± half' over the forget sets where there is one."""
    if math.isnan(value):
        return MISSING
    return f"{value:.1f}" + (f" ± {half:.1f}" if math.isfinite(half) else "")


def tdec_config(row: dict, paper: bool = False) -> str:
    """One Table 1 row as a finding compares it: epochs to forget and PPL (ours or the paper's)."""
    label = TDEC_LABELS.get(row["config"], row["config"])
    if paper:
        return f"{label}: epochs {_fmt(number(row['paper_epochs']))}, PPL {_fmt(number(row['paper_ppl']))}"
    failed = number(row["failed"])
    missed = f" ({failed:.0f}✗ of {number(row['n_sets']):.0f})" if failed > 0 else ""
    ppl = _fmt(number(row["ppl"]), number(row["ppl_half"]))
    return f"{label}: epochs {_fmt(number(row['epochs']))}{missed}, PPL {ppl}"


def tdec_premise(p: dict) -> str:
    t = p["threshold"]
    return (
        f"{'met' if p['holds'] else 'not met'}: forget sets EL10 {100 * p['forget_el10']:.1f} %, "
        f"MA {100 * p['forget_ma']:.1f} % vs the threshold {100 * t['el']:.1f} %, {100 * t['ma']:.1f} %"
    )


def tdec_rows(root: Path) -> list[Row]:
    summary = read_json(need(root, "tdec/summary/metrics.json"))
    table = read_csv(root, "tdec/tables/table1.csv")
    rows = []
    for model, s in summary.items():
        configs = {r["config"]: r for r in table if r["model"] == model}
        for key, f in s["findings"].items():
            text, compared = TDEC_FINDINGS.get(key, (key, ()))
            names = [c for c in (*compared, *f.get("compared_with", ())) if c in configs]
            rows.append(
                Row(
                    "tdec",
                    text + (f" ({model})" if len(summary) > 1 else ""),
                    f.get("verdict") or ("holds" if f["holds"] else "does not hold")
                    if s["premise"]["holds"]
                    else PREMISE_NOT_MET,
                    tdec_premise(s["premise"]),
                    "; ".join(tdec_config(configs[c]) for c in names) or MISSING,
                    "; ".join(tdec_config(configs[c], paper=True) for c in names) or MISSING,
                    "tdec/tables/table1.md",
                    headline=key == TDEC_HEADLINE,
                )
            )
    return rows


# --- SOUL: TOFU verdicts per loss ---------------------------------------------------------------------------
def column(rows: list[dict], prefix: str) -> str:
    """The one column whose header starts with `prefix` (TOFU's headers name their definition after it)."""
    return next(c for c in rows[0] if c.startswith(prefix))


def tofu_premise(root: Path) -> str:
    holds = read_json(need(root, "tofu/summary/metrics.json"))["premise_holds"]
    base, retain = read_csv(root, "tofu/tables/premise.csv")[:2]
    what = ", ".join(
        f"{k} {base[k]} (base) vs {retain[k]} (retain)" for k in ("Forget answer prob", "Forget Rouge-L")
    )
    return f"{'met' if holds else 'not met'}: the base model knows the forget set better: {what}"


def tofu_rows(root: Path) -> list[Row]:
    ours, theirs = read_csv(root, "tofu/tables/table1_tofu.csv"), read_csv(root, "tofu/tables/table1.csv")
    ours_col, theirs_col = column(ours, "Forget acc"), column(theirs, "Forget acc")
    cell = lambda rows, col, name: next((r[col] for r in rows if r["Method"] == name), MISSING)  # noqa: E731
    premise = tofu_premise(root)
    rows = []
    for v in read_csv(root, "tofu/tables/verdicts.csv"):
        loss = v["Loss"]
        fo, so = (cell(ours, ours_col, f"{k}-{loss}") for k in ("FO", "SO"))
        pfo, pso = (paper_side(cell(theirs, theirs_col, f"{k}-{loss}")) for k in ("FO", "SO"))
        rows.append(
            Row(
                "tofu",
                f"{TOFU_CLAIM}: {loss}",
                v[column([v], "SO beats FO")],
                premise,
                f"forget acc FO {fo} → SO {so}",
                f"SOUL's forget acc (its definition) FO {pfo} → SO {pso}",
                "tofu/tables/verdicts.md",
                headline=loss in TOFU_HEADLINE,
            )
        )
    return rows


# --- the ablations (issue 21): each paper's second-order method against its curvature removed ------------
ABLATION_CLAIM = "Ablation: curvature improves the efficacy–utility trade-off"
ABLATIONS_NOT_RUN = {
    "main": "Fisher Removal / Fisher Forgetting against their curvature removed",
    "tofu": "Sophia against its curvature removed",
}


def ablation_rows(root: Path) -> list[Row]:
    """The Newton-type comparisons test the main paper's title claim, Sophia's SOUL's: each row goes to that
    paper's section. Neither paper ran these ablations: no paper number. A results folder from a run without
    the ablations study says 'not run'."""
    if not (Path(root) / ABLATIONS).is_file():
        return [
            Row(paper, f"{ABLATION_CLAIM}: {what}", "not run", MISSING, MISSING, MISSING, "")
            for paper, what in ABLATIONS_NOT_RUN.items()
        ]
    return [
        Row(
            "tofu" if v["comparison"].startswith("sophia_") else "main",
            f"{ABLATION_CLAIM} ({v['comparison']}): {v['second_order']} against its curvature removed",
            v["verdict"],
            v["premise"],
            f"{v['fronts']} ({v['seeds']} seeds)",
            MISSING,
            f"ablations/tables/{v['comparison']}.md",
        )
        for v in read_csv(root, ABLATIONS)
    ]


# --- the page -----------------------------------------------------------------------------------------------
def rows(root: str | Path) -> list[Row]:
    """Every claim, paper by paper (each paper's ablations after its own claims)."""
    root = Path(root)
    found = main_rows(root) + tdec_rows(root) + tofu_rows(root) + ablation_rows(root)
    return sorted(found, key=lambda r: list(PAPERS).index(r.paper))


VERDICTS = ("holds", "does not hold", "tie", "premise not met", "not testable at this scale", "not run")


def counts(rows: list[Row]) -> str:
    """'holds 3, does not hold 5, ...': the verdicts in VERDICTS' order, any other after them."""
    n = Counter(r.verdict for r in rows)
    order = [v for v in VERDICTS if v in n] + sorted(v for v in n if v not in VERDICTS)
    return ", ".join(f"{v} {n[v]}" for v in order)


def md_cell(text: str) -> str:
    """A Markdown table cell's text: its pipes escaped."""
    return text.replace("|", "\\|")


HEADER = ("claim", "verdict", "premise", "ours (95 % interval)", "paper", "table")
INTRO = (
    "One row per claim of each paper: its verdict, its premise (met / not met, with the number that decides "
    "it), our key number as the study's table prints it (mean ± half-width of the 95 % t interval over "
    "seeds, or over forget sets for TDEC; '(1 seed)': no interval), the paper's number where our table pairs "
    "one with it, and the table that holds the rest. Verdicts: holds / does not hold / tie (inside the "
    "interval or the rule's tolerance) / premise not met / not testable at this scale / not run."
)


def markdown_tables(rows: list[Row], prefix: str = "", level: str = "##") -> str:
    """One section per paper: its verdict counts and its claims. `prefix` leads every link (README.md at the
    repository's root links into results/<profile>/)."""
    out = []
    for paper, title in PAPERS.items():
        mine = [r for r in rows if r.paper == paper]
        out += [f"{level} {title}", "", f"{len(mine)} claims; {counts(mine)}.", ""]
        out += ["| " + " | ".join(HEADER) + " |", "|" + ":--|" * len(HEADER)]
        for r in mine:
            link = f"[{Path(r.link).name}]({prefix}{r.link})" if r.link else MISSING
            cells = (r.claim, f"**{r.verdict}**", r.premise, r.ours, r.theirs)
            out.append("| " + " | ".join(map(md_cell, cells)) + f" | {link} |")
        out.append("")
    return "\n".join(out) + "\n"


def markdown(rows: list[Row], profile: str) -> str:
    head = f"# Every claim at the `{profile}` scale\n\n{INTRO}\n\nAll {len(rows)} claims; {counts(rows)}.\n\n"
    foot = (
        "Written by the rule `overview` (rules/verdicts.smk, `src/unlearn_repro/report/overview.py`) from "
        "this folder's files; every verdict's rule: `verdicts.md`, `tdec/summary/metrics.json`, "
        "`tofu/tables/verdicts.md`.\n"
    )
    return head + markdown_tables(rows) + foot


STYLE = (
    ".overview{overflow-x:auto;font-size:12px}.overview table{border-collapse:collapse;min-width:1100px}"
    ".overview td,.overview th{padding:3px 6px;border-bottom:1px solid #ddd;text-align:left;"
    "vertical-align:top}.overview td:nth-child(2){font-weight:bold;white-space:nowrap}"
    ".overview .holds{background:#e3f2e1}.overview .fails{background:#fbe3e1}"
    ".overview .open{background:#f1f1f1}"
)
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails"}  # every other verdict: no conclusion ("open")


def html_page(rows: list[Row], profile: str) -> str:
    """The same tables as a fragment that is also a page: the report's landing page includes it, and its
    Overview item opens it."""
    e = html.escape
    body = [f"<h3>Every claim at the {e(profile)} scale</h3>", f"<p>{e(INTRO)}</p>"]
    for paper, title in PAPERS.items():
        mine = [r for r in rows if r.paper == paper]
        body += [f"<h4>{e(title)}</h4>", f"<p>{len(mine)} claims; {e(counts(mine))}.</p>", "<table>"]
        body.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADER) + "</tr>")
        for r in mine:
            cells = (r.claim, r.verdict, r.premise, r.ours, r.theirs, r.link)
            row = "".join(f"<td>{e(c)}</td>" for c in cells)
            body.append(f'<tr class="{VERDICT_CLASS.get(r.verdict, "open")}">{row}</tr>')
        body.append("</table>")
    return f'<meta charset="utf-8"><style>{STYLE}</style><div class="overview">{"".join(body)}</div>\n'


def write_overview(root: str | Path, profile: str) -> list[Path]:
    """results/<profile>/README.md and overview.html, from the folder's files."""
    root, found = Path(root), rows(root)
    out = [root / "README.md", root / "overview.html"]
    write_text(out[0], markdown(found, profile))
    write_text(out[1], html_page(found, profile))
    return out

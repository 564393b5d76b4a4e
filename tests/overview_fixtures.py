"""A small hand-made results folder with every file the overview reads (report/overview.py: SOURCES), in the
layout and formats the studies' reports write: two main-paper claims, TDEC's findings, two TOFU losses, two
ablations (one per paper's second-order method)."""

import csv
import json
from pathlib import Path

EFFICACY = "Δexp (bits): Fisher Removal -0.52 ± 0.10, best other Gradient Ascent -0.80 ± 0.20; ranks: x"
ONION = "top removal: kept samples' shift +0.300 bits, 40 of 70 rose; difference +0.120 [+0.050, +0.190]"
VERDICTS = [
    {
        "section": "§5.1.4",
        "claim": "Fisher Removal has the strongest efficacy",
        "verdict": "does not hold",
        "evidence": EFFICACY,
        "premise": "met: forget sets' exposure before unlearning 3.10 bits (needs > 1)",
        "source": "results/t/metrics/*.csv (3 files)",
        "rule": "r",
    },
    {
        "section": "§9.3, Fig. 6",
        "claim": "The onion effect: removing the most exposed samples exposes others",
        "verdict": "holds",
        "evidence": ONION,
        "premise": "met: removed samples' exposure ≥ 5.67 bits (needs > 1: outliers)",
        "source": "results/t/discussions/tables/onion.csv",
        "rule": "r",
    },
]
RANKING = [
    {
        "family": "NEO",
        "method": "Fisher Removal",
        "efficacy": "2.62 ± 0.70 ‖ 1.33 ± 0.47",
        "fidelity": "2 ‖ 4",
    },
    {
        "family": "OPT",
        "method": "Fisher Removal",
        "efficacy": "3.12 ± 0.78 ‖ 1.58 ± 0.64",
        "fidelity": "3 ‖ 3",
    },
]
KL = [{"method": "gradient_ascent", "label": "Gradient Ascent", "kl": "0.003", "paper": "1176792.0"}]
TDEC_TABLE = [
    {
        "model": "tiny-gpt-neo",
        "config": c,
        "epochs": e,
        "failed": f,
        "n_sets": "3",
        "ppl": p,
        "ppl_half": h,
        "paper_epochs": pe,
        "paper_ppl": pp,
    }
    for c, e, f, p, h, pe, pp in (
        ("ga", "4.0", "0", "11423.0", "900.0", "17.2", "577.8"),
        ("gd", "5.0", "0", "10675.0", "800.0", "4.6", "54.2"),
        ("lora_gd", "", "3", "12929.0", "", "8.6", "129.4"),
        ("flora_ihl", "3.3", "0", "6411.0", "500.0", "6.0", "24.0"),
    )
]
TDEC_SUMMARY = {
    "tiny-gpt-neo": {
        "premise": {
            "forget_el10": 0.308,
            "forget_ma": 0.872,
            "holds": True,
            "threshold": {"el": 0.025, "ma": 0.239, "source": "held-out rows"},
        },
        "findings": {
            "flora_ihl_fewer_epochs_best_utility": {"holds": True, "compared_with": ["lora_gd"], "rule": "r"},
            "gd_beats_ga": {"holds": False, "rule": "r"},
            "lora_gd_often_fails": {"holds": True, "rule": "r"},
        },
    }
}
TOFU_VERDICTS = [
    {
        "Loss": "GradDiff",
        "Forget acc (likeliest) FO → SO": "0.433 → 0.233",
        "SO beats FO at equal utility": "tie",
    },
    {
        "Loss": "NPO",
        "Forget acc (likeliest) FO → SO": "1.000 → 0.917",
        "SO beats FO at equal utility": "holds",
    },
]
TOFU_OURS = [
    {"Method": "FO-GradDiff", "Forget acc (ours: true answer likeliest)": "0.433 ± 0.336"},
    {"Method": "SO-GradDiff", "Forget acc (ours: true answer likeliest)": "0.233 ± 0.216"},
    {"Method": "FO-NPO", "Forget acc (ours: true answer likeliest)": "1.000 ± 0.000"},
    {"Method": "SO-NPO", "Forget acc (ours: true answer likeliest)": "0.917 ± 0.014"},
]
TOFU_THEIRS = [
    {"Method": m, "Forget acc (SOUL: generated, embedding-judged) ↓": f"0.1 ‖ {p}"}
    for m, p in (("FO-GradDiff", "0.728"), ("SO-GradDiff", "0.102"), ("FO-NPO", "0.16"), ("SO-NPO", "0.16"))
]
ABLATIONS = [  # as report/ablations.py writes ablations/tables/verdicts.csv
    {
        "comparison": "removal",
        "claim": "curvature improves the efficacy–utility trade-off",
        "second_order": "Fisher Removal",
        "verdict": "tie",
        "fronts": "Fisher Removal ties with Fisher Removal (diagonal F^-1); "
        "Fisher Removal dominates Fisher Removal (F^-1 = I/lambda)",
        "premise": "met: cosine = 0.612 (curvature-degenerate above 0.95)",
        "seeds": "3",
    },
    {
        "comparison": "sophia_npo",
        "claim": "curvature improves the efficacy–utility trade-off",
        "second_order": "Sophia",
        "verdict": "premise not met",
        "fronts": "Sophia ties with Sophia, h constant (sign-momentum); "
        "Sophia is dominated by AdamW (first order)",
        "premise": "not met: clip_rate = 0.990 (curvature-degenerate above 0.9)",
        "seeds": "3",
    },
]
TOFU_PREMISE = [
    {"Model": "base (full)", "Forget answer prob": "0.45", "Forget Rouge-L": "0.292"},
    {"Model": "retain", "Forget answer prob": "0.001", "Forget Rouge-L": "0.104"},
]


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def make_results(root: Path) -> Path:
    """results/<profile>/ with every file the overview reads, plus the .md pages its links point to."""
    tables = {
        "verdicts.csv": VERDICTS,
        "main/tables/ranking.csv": RANKING,
        "discussions/tables/weight_kl.csv": KL,
        "discussions/tables/onion.csv": [{"seed": "all", "shift_mean": "0.3"}],
        "tdec/tables/table1.csv": TDEC_TABLE,
        "tofu/tables/verdicts.csv": TOFU_VERDICTS,
        "tofu/tables/premise.csv": TOFU_PREMISE,
        "tofu/tables/table1.csv": TOFU_THEIRS,
        "tofu/tables/table1_tofu.csv": TOFU_OURS,
        "ablations/tables/verdicts.csv": ABLATIONS,
    }
    for rel, rows in tables.items():
        write_csv(root / rel, rows)
    for rel in ("main/tables/ranking.md", "discussions/tables/onion.md", "tdec/tables/table1.md"):
        (root / rel).write_text("## A table\n\n| a | b |\n|--:|--:|\n| 1.5 | 2 |\n")
    for rel, data in (
        ("tdec/summary/metrics.json", TDEC_SUMMARY),
        ("tofu/summary/metrics.json", {"premise_holds": True}),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(data))
    return root

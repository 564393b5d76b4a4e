"""The overview (report/overview.py) on a hand-made results folder: every paper's claims appear with their
verdict, premise, key number with its interval, the paper's number and a link; a missing file is named."""

import pytest

from tests.conftest import ROOT
from tests.overview_fixtures import make_results
from unlearn_repro.report import overview
from unlearn_repro.report.overview import MissingResult, key_number, rows, write_overview


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path / "results" / "t")


def _by_claim(found, words):
    return next(r for r in found if words in r.claim)


def test_each_papers_claims_carry_verdict_premise_numbers_and_link(results):
    found = rows(results)
    assert [r.paper for r in found] == ["main"] * 3 + ["tdec"] * 3 + ["tofu"] * 3
    efficacy = _by_claim(found, "strongest efficacy")
    assert (efficacy.verdict, efficacy.link) == ("does not hold", "main/tables/ranking.md")
    assert efficacy.premise.startswith("met: forget sets' exposure")
    assert (
        efficacy.ours == "Δexp (bits): Fisher Removal -0.52 ± 0.10, best other Gradient Ascent -0.80 ± 0.20"
    )
    assert efficacy.theirs == "Table 7 efficacy rank of Fisher Removal: NEO 1.33 ± 0.47, OPT 1.58 ± 0.64"
    onion = _by_claim(found, "onion effect")
    assert (onion.ours, onion.link) == ("difference +0.120 [+0.050, +0.190]", "discussions/tables/onion.md")

    flora = _by_claim(found, "FLoRA + IHL")
    assert (
        flora.verdict == "holds"
        and flora.premise == "met: forget sets EL10 30.8 %, MA 87.2 % vs the threshold 2.5 %, 23.9 %"
    )
    assert (
        flora.ours
        == "FLoRA + IHL: epochs 3.3, PPL 6411.0 ± 500.0; LoRA + GD: epochs — (3✗ of 3), PPL 12929.0"
    )
    assert flora.theirs == "FLoRA + IHL: epochs 6.0, PPL 24.0; LoRA + GD: epochs 8.6, PPL 129.4"
    assert _by_claim(found, "GD forgets better").verdict == "does not hold"

    npo = _by_claim(found, ": NPO")
    assert (npo.verdict, npo.link) == ("holds", "tofu/tables/verdicts.md")
    assert npo.ours == "forget acc FO 1.000 ± 0.000 → SO 0.917 ± 0.014"
    assert npo.theirs == "SOUL's forget acc (its definition) FO 0.16 → SO 0.16"
    assert npo.premise.startswith("met: ") and "0.45 (base) vs 0.001 (retain)" in npo.premise
    assert [r.claim for r in found if r.headline][0] == "§5.1.4 Fisher Removal has the strongest efficacy"

    # each paper's ablation after its own claims: its verdict and premise as the ablations report wrote them
    removal, sophia = found[2], found[-1]
    assert (
        removal.claim.startswith("Ablation: curvature improves")
        and "(removal): Fisher Removal" in removal.claim
    )
    assert (removal.verdict, removal.link, removal.theirs) == ("tie", "ablations/tables/removal.md", "—")
    assert removal.ours.endswith("Fisher Removal dominates Fisher Removal (F^-1 = I/lambda) (3 seeds)")
    assert (sophia.verdict, sophia.premise.split(":")[0]) == ("premise not met", "not met")


def test_readme_and_html_show_every_row(results):
    readme, page = write_overview(results, "t")
    text, html_text = readme.read_text(), page.read_text()
    assert text.startswith("# Every claim at the `t` scale")
    assert "All 9 claims; holds 4, does not hold 2, tie 2, premise not met 1." in text
    assert "| [ranking.md](main/tables/ranking.md) |" in text and "**tie**" in text
    for r in rows(results):
        assert r.ours.replace("|", "\\|") in text
        assert r.claim.replace("'", "&#x27;") in html_text


def test_key_number_is_the_clause_with_the_interval():
    assert key_number("a 1.0; b 2.0 ± 0.1; c 3.0 ± 0.2") == "b 2.0 ± 0.1"
    assert key_number("KS p per method: A 0.5, B 0.01") == "KS p per method: A 0.5, B 0.01"
    assert key_number("x +0.10 (1 seed) bits") == "x +0.10 (1 seed) bits"


def test_a_results_folder_without_the_ablations_says_not_run(results):
    (results / "ablations/tables/verdicts.csv").unlink()
    missing = [r for r in rows(results) if r.claim.startswith("Ablation")]
    assert [(r.paper, r.verdict, r.link) for r in missing] == [
        ("main", "not run", ""),
        ("tofu", "not run", ""),
    ]
    readme, _ = write_overview(results, "t")
    assert "| **not run** | — | — | — | — |" in readme.read_text()


def test_a_missing_file_is_named(results):
    (results / "tofu" / "tables" / "verdicts.csv").unlink()
    with pytest.raises(MissingResult, match=r"tofu/tables/verdicts\.csv is missing"):
        rows(results)


def test_the_claim_words_the_overview_matches_are_in_the_registered_claims():
    """PAPER_RANKS and MAIN_HEADLINE find claims by their words: they must stay in report/verdicts.py."""
    source = (ROOT / "src" / "unlearn_repro" / "report" / "verdicts.py").read_text()
    assert all(words in source for words in (*overview.PAPER_RANKS, overview.MAIN_HEADLINE))


def test_a_tdec_finding_whose_premise_failed_draws_no_conclusion(results):
    import json

    path = results / "tdec/summary/metrics.json"
    summary = json.loads(path.read_text())
    summary["tiny-gpt-neo"]["premise"]["holds"] = False  # the forget sets were never memorized
    path.write_text(json.dumps(summary))
    found = [r for r in rows(results) if r.paper == "tdec"]
    assert {r.verdict for r in found} == {"premise not met"}
    assert all(r.premise.startswith("not met: ") for r in found)

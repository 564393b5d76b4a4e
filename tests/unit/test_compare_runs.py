"""benchmarks/compare_runs.py on two hand-made results folders: identical, changed (how many numbers, the
largest change, counted by hand), added and removed files; figures are not compared."""

import csv
import importlib.util
import json

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "benchmarks" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_each_file_is_identical_changed_added_or_removed(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        _write(root, "main/tables/main.csv", "method,mean,low\nga,-0.5,-0.75\nfr,0.25,nan\n")
        _write(root, "main/figures/runtime.png", "not compared")
    _write(old, "tofu/summary/metrics.json", json.dumps({"seed 1": {"forget": 0.5, "utility": 2e-3}}))
    _write(new, "tofu/summary/metrics.json", json.dumps({"seed 1": {"forget": 0.5, "utility": 2.5e-3}}))
    _write(new, "main/figures/runtime.png", "changed, but a figure")
    _write(old, "tdec/tables/old.csv", "a\n1\n")
    _write(new, "privacy/tables/means.csv", "a\n1\n")
    _write(old, "main/tables/runtime.csv", "method,cell,runtime_s\nga,1.3 ± 1.4,2.5\nfr,2.0 ± 0.5,7.25\n")
    _write(new, "main/tables/runtime.csv", "method,cell,runtime_s\nga,1.3 ± 1.4,2.75\nfr,2.0 ± 0.5,7.25\n")
    _write(
        old, "tdec/summary/provenance.json", json.dumps({"git_commit": "6e6197d", "rows": 3, "wall_s": 1.5})
    )
    _write(
        new, "tdec/summary/provenance.json", json.dumps({"git_commit": "9552321", "rows": 3, "wall_s": 2.0})
    )
    _write(old, "privacy/tables/points.csv", "eps,acc\n1,0.5\n8,0.75\n")
    _write(new, "privacy/tables/points.csv", "eps,acc\n1,0.5\n8,0.625\n16,0.7\n")

    out = tmp_path / "cmp"
    assert compare_runs.main([str(old), str(new), "--out", str(out)]) == 0
    rows = {r["file"]: r for r in csv.DictReader(out.with_suffix(".csv").open())}
    assert set(rows) == {
        "main/tables/main.csv",
        "tofu/summary/metrics.json",
        "tdec/tables/old.csv",
        "privacy/tables/means.csv",
        "privacy/tables/points.csv",
        "main/tables/runtime.csv",
        "tdec/summary/provenance.json",
    }
    assert rows["main/tables/main.csv"]["status"] == "identical"
    changed = rows["tofu/summary/metrics.json"]  # the seed in a key is no number of the file
    assert (changed["status"], changed["changed"], float(changed["largest_change"])) == ("differs", "1", 5e-4)
    timed = rows["main/tables/runtime.csv"]  # only a measured time changed; the cell's numbers did not
    assert (timed["status"], timed["times_changed"]) == ("same numbers", "1")
    provenance = rows["tdec/summary/provenance.json"]  # a commit is a string, not a number
    assert (provenance["status"], provenance["times_changed"]) == ("same numbers", "1")
    assert rows["tdec/tables/old.csv"]["status"] == "removed"
    assert rows["privacy/tables/means.csv"]["status"] == "added"
    assert rows["privacy/tables/points.csv"]["changed"] == "4 -> 6 numbers"
    md = out.with_suffix(".md").read_text()
    assert "| main | 2 | 1 | 1 | 0 | 0 | 0 |" in md and "| privacy | 2 | 0 | 0 | 1 | 1 | 0 |" in md
    assert "| tofu/summary/metrics.json | differs | 1 | 0.0005 |  |" in md
    assert "main/tables/main.csv |" not in md  # identical files are counted, not listed


def test_nan_equals_nan_and_a_missing_folder_is_named(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\nnan\n1.5\n")
    b.write_text("x \nnan\n1.5\n")  # other bytes, the same numbers
    assert compare_runs.compare_file(a, b)["status"] == "same numbers"
    b.write_text("x\nnan\n1.25\n")
    assert compare_runs.compare_file(a, b) == {"status": "differs", "changed": 1, "largest_change": 0.25}
    try:
        compare_runs.main([str(tmp_path / "none"), str(tmp_path)])
    except SystemExit as e:
        assert "none: not a results folder" in str(e)
    else:
        raise AssertionError("a missing folder must stop the comparison")


def test_each_claims_verdict_is_compared_from_the_overview_pages(tmp_path):
    """The overview pages' verdicts, claim by claim: a changed one listed (a pipe escaped in a claim kept), a
    claim on one page only counted with an empty side."""
    old, new = tmp_path / "old", tmp_path / "new"
    head = "| claim | verdict | premise |\n|:--|:--|:--|\n"
    _write(
        old,
        "README.md",
        head + "| A holds \\| B | **holds** | met |\n| C | **tie** | met |\n| D | **holds** | x |\n",
    )
    _write(new, "README.md", head + "| A holds \\| B | **does not hold** | met |\n| C | **tie** | met |\n")
    out = tmp_path / "cmp"
    assert compare_runs.main([str(old), str(new), "--out", str(out)]) == 0
    claims = {r["claim"]: r for r in csv.DictReader(out.with_name("cmp.verdicts.csv").open())}
    assert (claims["A holds \\| B"]["old"], claims["A holds \\| B"]["new"]) == ("holds", "does not hold")
    assert claims["C"]["same"] == "True" and (claims["D"]["new"], claims["D"]["same"]) == ("", "False")
    md = out.with_suffix(".md").read_text()
    assert (
        "1 of 3 the same" in md
        and "| A holds \\| B | holds | does not hold |" in md
        and "| D | holds | – |" in md
    )

"""The speed guard (`make benchmark`): targets' verdicts, paired medians over interleaved repeats, a benchmark
that dies counting as a FAIL, and the guard's exit status."""

import importlib.util
import sys

import pytest

from tests.conftest import ROOT


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and the guard's `import targets` look it up there
    spec.loader.exec_module(module)
    return module


targets = _load("targets")
doc_tables = _load("doc_tables")
speed_guard = _load("speed_guard")


@pytest.mark.parametrize(
    "ratio, op, bound, verdict",
    [
        (1.19, "<=", 1.2, True),
        (1.21, "<=", 1.2, False),
        (5.0, ">=", 5.0, True),
        (4.9, ">=", 5.0, False),
        (float("nan"), "<=", 1.2, False),
        (float("nan"), ">=", 0.0, False),
    ],
)
def test_target_verdicts(ratio, op, bound, verdict):
    assert targets.Target("b", "t", ratio, op, bound).passed is verdict


def test_unknown_comparison_is_an_error():
    with pytest.raises(ValueError):
        _ = targets.Target("b", "t", 1.0, "<", 2.0).passed


def test_paired_median_divides_within_each_repeat():
    # repeat 1: a 1 s, b 3 s; repeat 2 (a slow spell): a 4 s, b 8 s; repeat 3: a 1 s, b 2.5 s
    durations = iter([1, 3, 4, 8, 1, 2.5])
    clock = {"t": 0.0}

    def perf_counter():
        return clock["t"]

    def make():
        def fn():
            clock["t"] += next(durations)

        return fn

    ratios, raw = targets.paired_median([make(), make()], 3, clock=perf_counter)
    assert raw == [[1, 3], [4, 8], [1, 2.5]]
    assert ratios == [1.0, 2.5]  # median of 3, 2, 2.5; the ratio of the sums would be 2.25


def _fake_benchmark(tmp_path, monkeypatch, body):
    (tmp_path / "fake.py").write_text(body)
    monkeypatch.setitem(speed_guard.BENCHMARKS, "fake", ("fake.py", [str(tmp_path)], []))


def test_a_benchmark_that_dies_is_a_fail_and_an_old_result_is_not_read(tmp_path, monkeypatch):
    _fake_benchmark(tmp_path, monkeypatch, "import sys\nsys.exit(3)\n")
    targets.write([targets.Target("fake", "old", 1.0, "<=", 2.0)], tmp_path / "targets_fake_cpu.csv")
    rows, _ = speed_guard.run("fake", False, scripts=tmp_path, out_dir=tmp_path)
    assert [r["verdict"] for r in rows] == ["FAIL"] and "exit status 3" in rows[0]["target"]


def test_guard_exits_1_on_a_fail_and_writes_its_table(tmp_path, monkeypatch):
    body = f"""import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import targets
rows = [targets.Target("fake", "fast", 1.1, "<=", 1.2), targets.Target("fake", "slow", 7.0, ">=", 5.0),
        targets.Target("fake", "slower", 1.3, "<=", 1.2)]
targets.write(rows, Path(sys.argv[1]) / "targets_fake_cpu.csv")
"""
    _fake_benchmark(tmp_path, monkeypatch, body)
    monkeypatch.setattr(speed_guard, "HERE", tmp_path)
    monkeypatch.setattr(speed_guard, "OUT", tmp_path)
    assert speed_guard.main(["--only", "fake"]) == 1
    md = (tmp_path / "speed_guard.md").read_text()
    assert "| fake | slower | 1.3 | <= 1.2 | **FAIL** |" in md and "2 of 3 targets pass" in md
    assert [r["verdict"] for r in targets.read(tmp_path / "speed_guard.csv")] == ["PASS", "PASS", "FAIL"]


def test_doc_blocks_are_refreshed_from_their_files(tmp_path):
    (tmp_path / "r.md").write_text("| a |\n|--:|\n| 2 |\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n<!-- generated from r.md -->\n| a |\n| 1 |\n<!-- end generated -->\nmore\n"
        "<!-- generated from gone.md -->\nkept\n<!-- end generated -->\n"
    )
    assert doc_tables.refresh(doc, tmp_path) == ["r.md"]
    assert doc_tables.blocks(doc.read_text()) == [("r.md", "| a |\n|--:|\n| 2 |\n"), ("gone.md", "kept\n")]


def test_the_docs_generated_tables_equal_their_result_files():
    found = doc_tables.blocks(doc_tables.DOC.read_text())
    assert found, "docs/speed-and-memory.md has no generated tables"
    for path, text in found:
        assert (ROOT / path).read_text() == text, f"{path} changed: run python benchmarks/doc_tables.py"


def test_cpu_benchmarks_time_cpu_not_waiting():
    assert targets.timer("cpu") is targets.time.process_time
    assert targets.timer("cuda") is targets.time.perf_counter

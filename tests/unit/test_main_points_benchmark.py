"""benchmarks/main_points.py on a hand-made results folder: the privacy point at the main setting is
compared with the main run's cycle 1 (the other grid values are not), and a changed value fails."""

import importlib.util
import json

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("main_points_bench", ROOT / "benchmarks" / "main_points.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _folder(tmp_path, exposure):
    cycle = {"exposure": 2.5, "accuracy": 0.1, "test_nll": 4.0, "curvature": {"cosine": 0.5}}
    cycle["diverged"] = False
    _json(tmp_path / "runs/fisher_removal/lambada/tiny-opt/seed0/metrics.json", {"cycles": [cycle]})
    main = {**cycle, "value": 5e-5, "exposure": exposure, "runtime_s": 3.0}
    other = {**cycle, "value": 1e-4, "exposure": 9.0, "runtime_s": 3.0}
    doc = {"method": "fisher_removal", "dataset": "lambada", "model": "tiny-opt", "seed": 0}
    doc["points"] = [main, other]
    _json(tmp_path / "privacy/unlearn/fisher_removal/lambada/tiny-opt/seed0.json", doc)
    return tmp_path


def test_the_main_setting_point_is_compared_and_a_change_fails(tmp_path, capsys):
    same = _folder(tmp_path / "same", 2.5)
    assert bench.main([str(same), "--out", str(tmp_path / "same_out")]) == 0
    rows = list((tmp_path / "same_out.csv").read_text().splitlines())
    assert len(rows) == 1 + 5  # diverged, exposure, accuracy, test_nll, curvature of the 5e-5 point only
    assert "| privacy | 1 | 5 | 5 |" in capsys.readouterr().out
    changed = _folder(tmp_path / "changed", 2.6)
    assert bench.main([str(changed)]) == 1
    row = "| privacy | fisher_removal | lambada/tiny-opt | 0 | exposure | 2.6 | 2.5 |"
    assert row in capsys.readouterr().out

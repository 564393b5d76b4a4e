"""A study's grid point at the main study's own setting is read from the main run's cycle 1
(pipeline/main_points.py); the jobs compute every other value themselves."""

import json
import math

import pytest

from tests.conftest import ROOT
from unlearn_repro.config import load
from unlearn_repro.pipeline import ablations as A
from unlearn_repro.pipeline import main_points as M
from unlearn_repro.pipeline import privacy as P


@pytest.fixture(scope="module")
def cfg():
    return load(ROOT / "params.yaml", "embedded")


def test_only_the_methods_own_values_are_its_main_point(cfg):
    assert cfg.methods.fisher_removal.gamma == 5.0e-5  # the embedded regime rule's pick
    assert M.is_main_point(cfg, "fisher_removal", ["gamma"], 5.0e-5)
    assert not M.is_main_point(cfg, "fisher_removal", ["gamma"], 1.0e-4)
    ff = cfg.methods.fisher_forgetting
    assert ff.mu == ff.sigma == 1.0e-4 and M.is_main_point(cfg, "fisher_forgetting", ["mu", "sigma"], 1.0e-4)
    assert not M.is_main_point(cfg, "fisher_forgetting", ["mu"], 1.0e-3)  # sigma alone stays: not main


def test_main_metrics_names_the_run_only_where_the_main_study_runs_it(cfg, tmp_path):
    path = M.main_metrics(cfg, tmp_path, "fisher_removal", "lambada", "tiny-opt", 1, ["gamma"], [1e-4, 5e-5])
    assert path == [str(tmp_path / "fisher_removal/lambada/tiny-opt/seed1/metrics.json")]
    assert M.main_metrics(cfg, tmp_path, "fisher_removal", "lambada", "tiny-opt", 1, ["gamma"], [1e-4]) == []
    assert "fisher_removal_identity" not in cfg.methods.enabled  # an ablation's variant: never a main run
    assert M.main_metrics(cfg, tmp_path, "fisher_removal_identity", "lambada", "tiny-opt", 1, ["gamma"],
                          [5e-5]) == []  # fmt: skip
    assert M.main_metrics(cfg, tmp_path, "fisher_removal", "lambada", "tiny-opt", 9, ["gamma"], [5e-5]) == []


def _metrics(tmp_path, **row):
    cycle = {"cycle": 1, "accuracy": 0.5, "test_nll": 4.0, "exposure": 2.0, "runtime_s": 1.5, **row}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"cycles": [cycle, {**cycle, "cycle": 2}]}))
    return path


def test_main_cycle_is_not_read_where_the_main_run_diverged(tmp_path):
    assert M.main_cycle(_metrics(tmp_path))["exposure"] == 2.0
    assert M.main_cycle(_metrics(tmp_path, diverged=True)) is None
    assert M.main_cycle(_metrics(tmp_path, test_nll=None)) is None  # a NaN score is null in metrics.json
    assert M.main_cycle(_metrics(tmp_path, exposure=math.inf)) is None
    assert M.main_cycle(None) is None


def test_newton_points_read_the_main_value_and_compute_the_others(cfg, tmp_path, monkeypatch):
    computed = []

    def fake(run_cfg, run_dir, base_eval, reference, tracker, **inputs):
        gamma = run_cfg.methods.fisher_removal.gamma
        computed.append(gamma)
        return {"delta_exp": -gamma, "runtime_s": 9.0, "diverged": False}

    monkeypatch.setattr(A, "_evaluated_cycle1", fake)
    main = _metrics(tmp_path, delta_exp=-0.25, curvature={"cosine": 0.5}, diverged=False)
    out = A.newton_points(
        cfg, comparison="removal", method="fisher_removal", dataset="lambada", model_name="tiny-opt", seed=0,
        finetuned=None, pretrained=None, data_dir=None, reference=None, split_file=None, base_eval=None,
        out=tmp_path / "points.json", tracker=None, main=main,
    )  # fmt: skip
    values = list(cfg.ablations.newton.removal["values"])
    assert computed == [v for v in values if v != 5.0e-5]
    [read] = [p for p in out["points"] if p["value"] == 5.0e-5]
    assert read["delta_exp"] == -0.25 and read["curvature"] == {"cosine": 0.5} and read["runtime_s"] == 1.5
    assert [p["value"] for p in out["points"]] == values  # in the grid's order


def test_privacy_points_read_the_main_value_unless_it_diverged(cfg, tmp_path, monkeypatch):
    computed = []

    def fake(cfg_, run_cfg, run_dir, reference, scoring, tracker, **inputs):
        computed.append(run_cfg.methods.fisher_removal.gamma)
        return {"exposure": 1.0, "accuracy": 0.0, "test_nll": 5.0}, {"runtime_s": 9.0}, False

    class Tracker:
        def log_run(self, *a, **k):
            return None

    monkeypatch.setattr(P, "_audited_cycle1", fake)
    grid = list(cfg.privacy.grids.fisher_removal["values"])
    kw = dict(method="fisher_removal", dataset="lambada", model_name="tiny-opt", seed=0, pretrained=None,
              finetuned=None, data_dir=None, reference=None, split_file=None, tracker=Tracker())  # fmt: skip
    out = P.unlearning_points(cfg, out=tmp_path / "a.json", main=_metrics(tmp_path), **kw)
    assert computed == [v for v in grid if v != 5.0e-5]
    [read] = [p for p in out["points"] if p["value"] == 5.0e-5]
    assert (read["exposure"], read["test_nll"], read["runtime_s"], read["diverged"]) == (2.0, 4.0, 1.5, False)
    computed.clear()
    P.unlearning_points(cfg, out=tmp_path / "b.json", main=_metrics(tmp_path, diverged=True), **kw)
    assert computed == grid  # a diverged main run is not read: the point is computed as before

"""The ablations' grid points are the shared steps' configs with one thing changed (issue 21)."""

import pytest

from tests.conftest import ROOT
from unlearn_repro.config import ConfigError, Frozen, load
from unlearn_repro.pipeline import ablations as A
from unlearn_repro.pipeline.tofu import method_config


def test_sophia_point_swaps_only_the_second_order_slot_and_its_rate():
    cfg = load(ROOT / "params.yaml", "embedded")
    run = method_config(A.sophia_config(cfg, "npo", "sophia_constant", 2.0e-3), "npo", "SO")
    ref = method_config(cfg, "npo", "SO")
    assert run.methods.npo.optimizer == "sophia_constant" and run.methods.npo.lr == 2.0e-3
    assert {k: v for k, v in run.methods.npo.items() if k not in ("optimizer", "lr")} == {
        k: v for k, v in ref.methods.npo.items() if k not in ("optimizer", "lr")
    }
    # the constant-h Sophia: the study's Sophia momentum, rho (embedded re-pick 4000) and eps; only h differs
    const = run.optimizers.sophia_constant
    assert const.rho == 4000.0 == ref.optimizers.sophia.rho
    assert list(const.betas) == list(ref.optimizers.sophia.betas) and const.eps == ref.optimizers.sophia.eps
    adamw = method_config(A.sophia_config(cfg, "npo", "adamw", 5.0e-4), "npo", "SO")
    assert adamw.methods.npo.optimizer == "adamw" and adamw.methods.npo.lr == 5.0e-4


def test_newton_point_sets_the_grid_keys_and_stops_after_cycle_1():
    cfg = load(ROOT / "params.yaml", "embedded")
    run = A.newton_config(cfg, "fisher_forgetting_isotropic", ["mu", "sigma"], 1.0e-4)
    assert run.methods.fisher_forgetting_isotropic.to_dict() == {"mu": 1.0e-4, "sigma": 1.0e-4}
    assert list(run.unlearn.table_cycles) == [1] and list(run.unlearn.extended_datasets) == []
    assert run.fisher == cfg.fisher  # the same damping rule (relative, kappa) as the main study


def test_check_names_a_grid_key_the_method_does_not_have():
    raw = load(ROOT / "params.yaml", "ci").to_dict()
    raw["ablations"]["newton"]["removal"]["keys"] = ["mu"]
    with pytest.raises(ConfigError, match="ablations.newton.removal.keys"):
        A.check(Frozen(raw))
    raw = load(ROOT / "params.yaml", "ci").to_dict()
    raw["ablations"]["seeds"] = [7]
    with pytest.raises(ConfigError, match="ablations.seeds"):
        A.check(Frozen(raw))


def test_a_method_with_its_own_steps_runs_them_the_others_the_shared_values():
    cfg = load(ROOT / "params.yaml", "embedded")
    removal = cfg.ablations.newton.removal
    assert A.grid(removal, "fisher_removal_identity") == list(removal.steps.fisher_removal_identity)
    assert (
        A.grid(removal, "fisher_removal")
        == A.grid(removal, "fisher_removal_diagonal")
        == list(removal["values"])
    )
    assert A.grid(cfg.ablations.newton.forgetting, "fisher_forgetting") == list(
        cfg.ablations.newton.forgetting["values"]
    )

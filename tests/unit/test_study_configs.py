"""Each study builds the config its methods run with from the methods' declarations (Method.study_block /
study_config): what a method receives depends on what it declares, never on its name."""

import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro import config
from unlearn_repro.pipeline import memorization, privacy, tdec, tofu


def _ci(drop_grid_keys=(), **over):
    raw = yaml.safe_load(open(ROOT / "params.yaml"))
    for method in drop_grid_keys:
        del raw["privacy"]["grids"][method]["keys"]
    raw["profiles"]["ci"] = config.deep_merge(raw["profiles"]["ci"], over)
    return config.resolve(raw, "ci")


def test_tofu_gives_any_loss_based_method_its_recipe_by_declaration():
    cfg = _ci(
        tofu={"methods": ["npo"], "gamma": 0.5, "npo_beta": 0.7, "lr": {"inverted_hinge": {"SO": 2e-4}}}
    )
    ihl = tofu.method_config(cfg, "inverted_hinge", "SO").methods.inverted_hinge
    assert (ihl.lr, ihl.optimizer, ihl.epochs, ihl.gamma) == (2e-4, "sophia", cfg.tofu.epochs, 0.5)
    assert "beta" not in ihl  # it has no reference model
    assert tofu.method_config(cfg, "npo", "FO").methods.npo.beta == 0.7
    with pytest.raises(ValueError, match="tofu.lr.inverted_hinge.FO is not set"):
        tofu.method_config(cfg, "inverted_hinge", "FO")


def test_tdec_gives_the_retain_weight_only_to_methods_that_draw_retain_batches():
    cfg = _ci(
        tdec={
            "gamma": 0.25,
            "enabled": ["ga", "npo_lora"],
            "configs": {"npo_lora": {"method": "npo", "adapter": "lora", "lr": 3e-3}},
        }
    )
    runs = tdec.runs(cfg)
    npo = tdec.method_config(cfg, runs["npo_lora"]).methods.npo
    assert (npo.lr, npo.gamma) == (3e-3, 0.25)
    assert (npo.epochs, npo.optimizer) == (cfg.tdec.max_epochs, cfg.tdec.optimizer)
    ga = tdec.method_config(cfg, runs["ga"])
    assert "gamma" not in ga.methods.gradient_ascent and ga.methods.gradient_ascent.lr == runs["ga"]["lr"]
    assert ga.unlearn.forget_batch_size == tdec.forget_batch(cfg)


def test_a_privacy_grid_sets_the_method_s_step_size_unless_it_names_keys():
    cfg = _ci(drop_grid_keys=["npo"], privacy={"methods": ["npo", "fisher_forgetting"]})
    assert "keys" not in cfg.privacy.grids.npo
    assert privacy.grid_keys(cfg, "npo") == ["lr"]  # its step_key
    assert privacy.grid_keys(cfg, "fisher_forgetting") == ["mu", "sigma"]  # its grid's own keys
    privacy.check(cfg)
    point = privacy.point_config(cfg, "npo", ["lr"], 1e-3)
    assert point.methods.npo.lr == 1e-3 and point.methods.npo.beta == cfg.methods.npo.beta
    assert list(point.unlearn.table_cycles) == [1] and list(point.unlearn.extended_datasets) == []
    with pytest.raises(config.ConfigError, match=r"privacy.seeds \[0, 7\] are not all in seeds \[0\]"):
        privacy.check(_ci(privacy={"seeds": [0, 7]}))
    bad = _ci(privacy={"methods": ["retrain"], "grids": {"retrain": {"values": [2]}}})
    with pytest.raises(config.ConfigError, match="privacy.grids.retrain needs `keys`: method 'retrain'"):
        privacy.check(bad)


def test_memorization_repeats_its_base_training_where_a_method_asks_and_keeps_unlearn_cycle_size():
    """Retraining (base_epochs_key) repeats the memorization recipe's epochs; the cycle size is the targets
    split's own record, so the study leaves unlearn.cycle_size alone."""
    cfg = _ci(memorization={"train": {"epochs": 7}, "n_targets": 3})
    scfg = memorization.study_config(cfg)
    assert scfg.methods.retrain.epochs == 7 and scfg.finetune.epochs == 7
    assert scfg.methods.finetune == cfg.methods.finetune
    assert scfg.unlearn.cycle_size == cfg.unlearn.cycle_size != 3
    assert list(scfg.unlearn.table_cycles) == [1] and scfg.unlearn.max_cycles == 1


def test_a_tofu_method_without_its_step_sizes_is_refused_when_the_config_is_read():
    with pytest.raises(config.ConfigError, match=r"tofu.lr.inverted_hinge.FO, tofu.lr.inverted_hinge.SO not"):
        _ci(tofu={"methods": ["npo", "inverted_hinge"]})

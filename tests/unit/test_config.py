import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro import config
from unlearn_repro.data import DATASETS
from unlearn_repro.methods import METHODS
from unlearn_repro.models.registry import MODELS


@pytest.mark.parametrize("profile", ["embedded", "paper", "ci"])
def test_every_profile_resolves(profile):
    cfg = config.load(ROOT / "params.yaml", profile)
    assert cfg.profile == profile and cfg.fisher.block_size in (16, 32, 48)  # paper: 32 fits one 80 GB GPU
    assert cfg.fisher.damping == (1e-3 if profile == "embedded" else 1.0)  # embedded: docs/usage.md


def test_defaults_are_the_papers_hyperparameters(raw_params):
    assert raw_params["methods"]["gradient_ascent"]["lr"] == 5e-5
    assert raw_params["methods"]["fisher_removal"]["gamma"] == 2.5e-4
    assert raw_params["methods"]["fisher_forgetting"] == {"mu": 1e-3, "sigma": 1e-3}
    assert (
        raw_params["fisher"]["damping"],
        raw_params["fisher"]["num_grads"],
        raw_params["fisher"]["block_size"],
    ) == (1.0, 1024, 48)
    assert raw_params["unlearn"]["cycle_size"] == 128


def test_config_is_frozen():
    cfg = config.load(ROOT / "params.yaml")
    with pytest.raises(TypeError):
        cfg.fisher["block_size"] = 3
    with pytest.raises(AttributeError, match="no key 'blok'"):
        _ = cfg.fisher.blok


def _error(raw, **kw) -> str:
    with pytest.raises(config.ConfigError) as e:
        config.resolve(raw, **kw)
    return str(e.value)


def test_typo_key_names_the_key_and_valid_keys(raw_params):
    raw_params["fisher"]["damp"] = 1
    msg = _error(raw_params)
    assert "unknown key 'damp'" in msg and "under fisher" in msg and "damping" in msg


def test_wrong_type_names_the_key(raw_params):
    raw_params["fisher"]["block_size"] = "48"
    assert "key 'fisher.block_size' = '48'" in _error(raw_params)


def test_unknown_names_list_the_valid_choices(raw_params):
    raw_params["models"] = ["gpt-neo-125M"]
    msg = _error(raw_params)
    assert "'models.0'" in msg and "gpt-neo-125m" in msg and "opt-2.7b" in msg
    raw_params["models"] = ["opt-125m"]
    raw_params["methods"]["enabled"] = ["fisher_removl"]
    assert "fisher_removal" in _error(raw_params)
    raw_params["methods"]["enabled"] = ["retrain"]
    raw_params["profiles"]["embedded"]["data"]["tasks"] = ["arc"]
    assert "profile 'embedded'" in _error(raw_params) and "arc_easy" in _error(raw_params)


def test_inconsistent_cycles_are_refused(raw_params):
    raw_params["profiles"]["embedded"]["unlearn"]["max_cycles"] = 6
    assert "leaves no retain set" in _error(raw_params)


def test_unknown_profile(raw_params):
    assert "valid choices: embedded, paper, ci" in _error(raw_params, profile="gpu")


def test_bad_file(tmp_path):
    with pytest.raises(config.ConfigError, match="no such params file"):
        config.load(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("a: [1,")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(tmp_path / "p.yaml")


def test_schema_names_match_the_registries():
    defs = yaml.safe_load((ROOT / "schemas/params.schema.yaml").read_text())["$defs"]
    assert set(defs["model"]["enum"]) == set(MODELS.names())
    assert set(defs["dataset"]["enum"]) == set(DATASETS.names())
    full = config.load_schema()  # method names and blocks come from the registry itself
    assert set(full["$defs"]["method"]["enum"]) == set(METHODS.names())
    assert set(full["properties"]["methods"]["properties"]) == {"enabled", *METHODS.names()}


def test_a_methods_own_schema_checks_its_block(raw_params):
    raw_params["methods"]["npo"]["beta"] = -1
    with pytest.raises(config.ConfigError, match="methods.npo.beta"):
        config.resolve(raw_params)
    raw_params["methods"]["npo"] = {"lr": 1e-3, "optimizer": "adamw", "betta": 0.1, "gamma": 1.0}
    with pytest.raises(config.ConfigError, match="'betta' \\(did you mean 'beta'\\?\\)"):
        config.resolve(raw_params)
    raw_params["methods"]["npo"] = {"lr": 1e-3, "optimizer": "adamw", "gamma": 1.0}
    raw_params["methods"]["enabled"] = ["npo"]
    with pytest.raises(config.ConfigError, match="required property"):
        config.resolve(raw_params)
    raw_params["methods"]["npo"]["beta"] = 0.1
    raw_params["methods"]["npo"]["optimizer"] = "adamm"
    with pytest.raises(config.ConfigError, match="valid choices: adamw, sgd"):
        config.resolve(raw_params)


def test_cli_reports_config_errors(tmp_path, raw_params, capsys):
    from unlearn_repro.cli import main

    raw_params["seeds"] = "zero"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw_params))
    with pytest.raises(SystemExit) as e:
        main(["check-config", "--params", str(tmp_path / "p.yaml")])
    assert "key 'seeds'" in str(e.value) and "p.yaml" in str(e.value)


def test_yaml11_exponent_strings_are_numbers_and_every_profile_is_checked(raw_params):
    raw_params["methods"]["fisher_removal"]["gamma"] = "3e-4"  # YAML 1.1 reads 3e-4 as a string
    raw_params["profiles"]["embedded"]["fisher"]["damping"] = "1E-3"
    cfg = config.resolve(raw_params, "ci")
    assert cfg.methods.fisher_removal.gamma == 3e-4
    raw_params["profiles"]["paper"]["fisher"] = {"damp": 1.0}  # a typo in a profile that is not selected
    with pytest.raises(config.ConfigError, match="profile 'paper'.*unknown key 'damp'"):
        config.resolve(raw_params, "ci")


def test_check_config_survives_a_closed_pipe():
    import subprocess
    import sys

    r = subprocess.run(
        f"{sys.executable} -m unlearn_repro check-config | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.stdout.startswith("profile:") and "BrokenPipe" not in r.stderr


def test_the_loss_based_studies_accept_exactly_the_registry_s_loss_based_methods(raw_params):
    """TOFU's and TDEC's method lists are the registry's loss-based methods: a new one needs no schema edit,
    and a method those studies cannot run (no training recipe) is refused by name."""
    loss = [n for n in METHODS.names() if METHODS.get(n).loss_based]
    assert config.load_schema()["$defs"]["loss_method"]["enum"] == loss
    assert {"gradient_ascent", "npo", "inverted_hinge"} <= set(loss) and "fisher_removal" not in loss
    raw_params["tdec"]["configs"]["npo_full"] = {"method": "npo", "adapter": "full", "lr": 1e-4}
    raw_params["tofu"]["methods"] = ["inverted_hinge"]
    raw_params["tofu"]["lr"]["inverted_hinge"] = {"FO": 1e-5, "SO": 1e-5}
    config.resolve(raw_params)
    raw_params["tofu"]["methods"] = ["fisher_removal"]
    msg = _error(raw_params)
    assert "'tofu.methods.0'" in msg and "'fisher_removal'" in msg
    assert "valid choices: " + ", ".join(loss) in msg
    raw_params["tofu"]["methods"] = ["npo"]
    raw_params["tdec"]["configs"]["fr"] = {"method": "fisher_removal", "adapter": "full", "lr": 1e-4}
    assert "'tdec.configs.fr.method'" in _error(raw_params)

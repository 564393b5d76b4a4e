"""The config layers every entry point resolves: params.yaml < its profile block < each --configfile <
--config; errors name the layer that set the bad value; a user's value a later layer replaces is reported."""

import hashlib
import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import BIN, ENV, ROOT
from unlearn_repro import config

PARAMS = ROOT / "params.yaml"


def _file(tmp_path, name, values) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values) if isinstance(values, dict) else values)
    return str(path)


def _resolve(*files, overrides=None, profile=None):
    return config.resolve_layers(PARAMS, files, overrides, profile)


def test_each_layer_wins_over_the_one_before(tmp_path, raw_params):
    paper = raw_params["profiles"]["paper"]
    # level 1: the profile block over params.yaml's top level
    assert _resolve(profile="paper").cfg.fisher.max_memory_gb == paper["fisher"]["max_memory_gb"] != 16
    # level 2: a user's top-level keys over the profile block (the profile block set device and models)
    user = _file(
        tmp_path,
        "u.yaml",
        {"profile": "paper", "device": "cpu", "models": ["gpt-neo-125m"], "fisher": {"chunk": 3}},
    )
    layered = _resolve(user)
    assert (
        paper["device"] != "cpu" and layered.cfg.device == "cpu" and layered.cfg.models == ("gpt-neo-125m",)
    )
    assert layered.cfg.fisher.chunk == 3 and layered.cfg.profile == "paper"
    assert layered.cfg.fisher.max_memory_gb == paper["fisher"]["max_memory_gb"]  # what the user left alone
    assert layered.origin["device"] == user and layered.origin["fisher.max_memory_gb"].endswith(
        "(profile 'paper')"
    )
    # level 3: a later configfile over an earlier one, and its own profile block over its top level
    later = _file(
        tmp_path, "v.yaml", {"device": "auto", "profiles": {"paper": {"seeds": [0, 4]}}, "seeds": [0]}
    )
    layered = _resolve(user, later)
    assert layered.cfg.device == "auto" and layered.cfg.seeds == (0, 4)
    # level 4: --config over everything
    layered = _resolve(user, later, overrides={"device": "cuda", "fisher": {"chunk": "4"}})
    assert layered.cfg.device == "cuda" and layered.cfg.fisher.chunk == 4


def test_a_replaced_user_value_is_reported_with_both_sources(tmp_path):
    user = _file(tmp_path, "u.yaml", {"profile": "paper", "device": "cpu", "seeds": [0]})
    layered = _resolve(user, overrides={"device": "cuda", "seeds": [0]})
    assert layered.warnings == [f"key 'device' = 'cpu' from {user} is overridden by 'cuda' from --config"]
    assert _resolve(user).warnings == []  # the profile block never overrides a user's key
    # params.yaml given again as a configfile (as `--configfile params.yaml mine.yaml`) stays the base
    assert _resolve(str(PARAMS), user).cfg.device == "cpu"


def test_nested_config_values_are_yaml_numbers():
    """Snakemake's --config parses `fisher={chunk: 4}` with YAML's base loader: every scalar a string."""
    assert config.parse_overrides(
        {
            "fisher": {"chunk": "4", "damping": "1e-3", "storage": "bf16"},
            "data": {"max_test": "null"},
            "seeds": ["0", "1"],
        }
    ) == {
        "fisher": {"chunk": 4, "damping": 1e-3, "storage": "bf16"},
        "data": {"max_test": None},
        "seeds": [0, 1],
    }
    assert config.parse_config_args(["fisher={chunk: 4}", "device=cpu", "seeds=[0, 1]", "threads=2"]) == {
        "fisher": {"chunk": 4},
        "device": "cpu",
        "seeds": [0, 1],
        "threads": 2,
    }
    # a top-level string stays as given (YAML would read `no` as false, `1:30` as 90, `a #b` as 'a')
    assert config.parse_config_args(["run=no", "t=1:30", "name=a #b"]) == {
        "run": "no",
        "t": "1:30",
        "name": "a #b",
    }
    assert config.parse_overrides({"device": "null"}) == {"device": "null"}
    with pytest.raises(config.ConfigError, match="KEY=VALUE"):
        config.parse_config_args(["device"])


def test_errors_name_the_layer_that_set_the_value(tmp_path):
    user = _file(tmp_path, "u.yaml", {"fisher": {"chunk": "four"}})
    with pytest.raises(config.ConfigError, match=f"^{user}: key 'fisher.chunk'"):
        _resolve(user)
    with pytest.raises(config.ConfigError, match="^--config: key 'fisher.block_size'"):
        _resolve(overrides={"fisher": {"block_size": "big"}})
    with pytest.raises(config.ConfigError, match=f"^{user}: unknown key 'damp'"):
        _resolve(_file(tmp_path, "u.yaml", {"fisher": {"damp": 1}}))


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(tmp_path, bad):
    user = _file(tmp_path, "u.yaml", f"methods:\n  gradient_ascent:\n    lr: {bad}\n")
    with pytest.raises(config.ConfigError, match="methods.gradient_ascent.lr.*must be a finite number"):
        _resolve(user)
    with pytest.raises(config.ConfigError, match="--config: key 'fisher.damping'.*finite"):
        _resolve(overrides={"fisher": {"damping": float(bad.replace(".", ""))}})


def test_empty_and_malformed_files_are_named_with_the_line(tmp_path):
    with pytest.raises(config.ConfigError, match="e.yaml: the file is empty"):
        _resolve(_file(tmp_path, "e.yaml", ""))
    with pytest.raises(config.ConfigError, match=r"m.yaml:3: not valid YAML"):
        _resolve(_file(tmp_path, "m.yaml", "seeds: [0]\ndevice: cpu\n  models: x\n"))
    with pytest.raises(config.ConfigError, match=r"params.yaml:3: not valid YAML.*sequence at line 2"):
        config.resolve_layers(_file(tmp_path, "params.yaml", "profile: ci\nseeds: [0\n"))


def test_a_profile_folder_whose_selection_was_lost_is_refused():
    """`snakemake --profile profiles/paper --config x=y`: the command line's --config
    replaces the profile's."""
    config.check_profile_flag(["snakemake", "--profile", str(ROOT / "profiles/paper")], "paper")
    config.check_profile_flag(["snakemake", "--profile", str(ROOT / "profiles/default")], "embedded")
    with pytest.raises(config.ConfigError, match="selects params profile 'paper'.*add profile=paper"):
        config.check_profile_flag(["snakemake", f"--profile={ROOT / 'profiles/slurm'}"], "embedded")


def test_snakemake_and_the_cli_resolve_the_same_layers(tmp_path):
    user = _file(tmp_path, "u.yaml", {"profile": "ci", "seeds": [0, 5], "fisher": {"chunk": 2}})
    env = {k: v for k, v in ENV.items() if k != "UNLEARN_CONFIG"}
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlearn_repro",
            "check-config",
            "--configfile",
            user,
            "--config",
            "fisher={chunk: 3}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    shown = yaml.safe_load(cli.stdout)
    assert shown["seeds"] == [0, 5] and shown["fisher"]["chunk"] == 3 and shown["profile"] == "ci"
    assert "overridden by 3 from --config" in cli.stderr
    smk = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-n",
            "--quiet",
            "--cores",
            "1",
            "--configfile",
            user,
            "--config",
            "fisher={chunk: 3}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert smk.returncode == 0, smk.stderr[-2000:]
    assert "overridden by 3 from --config" in smk.stderr
    # the jobs' config file (content-addressed) holds exactly what the CLI resolved
    text = json.dumps(shown, sort_keys=True, indent=1)
    assert (
        ROOT / ".snakemake/unlearn_config" / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    ).exists()


def test_check_hub_reads_a_users_configfile(tmp_path):
    """A GPU user's first check: `check-hub --profile paper --configfile mine.yaml` with top-level keys."""
    from tests import hub_fixtures as fx

    folder = fx.local_model(tmp_path / "neo", "gpt_neo", ["a small corpus of words"] * 20)
    user = _file(
        tmp_path,
        "mine.yaml",
        {
            "models": ["gpt-neo-125m"],
            "model_sources": {"gpt-neo-125m": str(folder)},
            "data": {
                "tasks": ["piqa"],
                "hub_paths": {
                    "piqa": str(fx.piqa(tmp_path / "piqa")),
                    "echr": str(fx.echr(tmp_path / "echr")),
                },
            },
            "unlearn": {"extended_datasets": ["piqa"]},
            "discussions": {"dataset": "piqa"},
        },
    )
    env = {
        **{k: v for k, v in ENV.items() if k != "UNLEARN_CONFIG"},
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "unlearn_repro",
            "check-hub",
            "--profile",
            "paper",
            "--configfile",
            user,
            "--out",
            str(tmp_path / "report.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    items = {x["item"]: x for x in json.loads((tmp_path / "report.json").read_text())}
    ok = " ".join(name for name, x in items.items() if x["ok"])
    assert "data piqa" in ok and "data echr" in ok and f"model gpt-neo-125m: {folder}" in ok, r.stdout
    assert "opt-125m" not in " ".join(items)  # the user's `models`, not the profile's
    assert f"params.yaml < {user}" in r.stderr

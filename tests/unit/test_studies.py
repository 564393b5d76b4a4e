"""The study declarations (src/unlearn_repro/studies/): each names a rule file that exists and a target, its
params block reaches the schema, and dvc.yaml's study stages are generated from them."""

import re

import pytest
import yaml

from tests.conftest import ROOT
from unlearn_repro import config, dvc_yaml
from unlearn_repro.studies import STUDIES, DvcStage, Study


def _shared_rule_files() -> set[str]:
    """The rule files the Snakefile includes by name (the steps every study shares)."""
    return set(re.findall(r'^include: "(rules/\w+\.smk)"', (ROOT / "Snakefile").read_text(), re.MULTILINE))


def test_every_rule_file_is_shared_or_a_declared_study():
    studies = {STUDIES.get(n).rule_file for n in STUDIES.names()}
    on_disk = {f"rules/{p.name}" for p in (ROOT / "rules").glob("*.smk")}
    assert not studies & _shared_rule_files(), "a study's rule file is also included by name in the Snakefile"
    shared = _shared_rule_files()
    assert len(shared) == 5, shared
    assert on_disk == studies | shared, f"rule files no one includes: {on_disk - studies - shared}"


def test_each_study_has_a_target_rule_in_its_rule_file():
    for name in STUDIES.names():
        study = STUDIES.get(name)
        assert re.search(rf"^rule {study.target}:", (ROOT / study.rule_file).read_text(), re.MULTILINE), study


def test_a_study_block_reaches_the_schema_and_a_bad_value_is_named(raw_params):
    assert config.load_schema()["properties"]["tdec"] is STUDIES.get("tdec").schema
    assert "discussions" in config.load_schema()["required"]
    raw_params["tofu"]["epochs"] = 0
    with pytest.raises(config.ConfigError, match=r"key 'tofu.epochs' = 0 is invalid"):
        config.validate(raw_params)


def test_a_study_block_may_not_replace_a_core_key():
    schema = config.load_schema()
    with pytest.raises(config.ConfigError, match="study 'fisher' declares a params block"):
        config._add_block(schema, "fisher", {"type": "object"}, required=False)


def test_dvc_stage_text_wraps_and_quotes_what_yaml_needs():
    deps = ("results/${profile}/models",) + tuple(f"src/m{i}.py" for i in range(30))
    study = Study(
        "toy",
        "a toy",
        dvc=DvcStage(deps=deps, params=("toy", "profile"), outs=("toy/runs",), plots=("toy/figures",)),
    )
    text = dvc_yaml.stage(study)
    assert all(len(line) <= dvc_yaml.WIDTH for line in text.splitlines())
    parsed = yaml.safe_load("stages:\n" + text)["stages"]["toy"]
    assert parsed["deps"][0] == "results/${profile}/models" and len(parsed["deps"]) == 31
    assert parsed["outs"] == [{"results/${profile}/toy/runs": {"persist": True}}] and "metrics" not in parsed
    assert parsed["cmd"].endswith("profiles/default toy")


def test_dvc_yaml_without_the_mark_is_refused_by_name():
    with pytest.raises(ValueError, match="x/dvc.yaml: no line .* after the hand-written stages"):
        dvc_yaml.updated("stages:\n  a: {cmd: x}\n", "x/dvc.yaml")

"""The params.yaml layout check of `make lint` (tools/check_params_style.py) on hand-made files."""

import importlib.util

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("check_params_style", ROOT / "tools" / "check_params_style.py")
style = importlib.util.module_from_spec(spec)
spec.loader.exec_module(style)


def test_block_style_and_flat_flow_collections_pass():
    text = "seeds: [0, 1, 2]  # scalars may stay on one line\nempty: {}\nblock:\n  a: 1\n  b: [x, y]\n"
    assert style.problems(text) == []


def test_a_nested_flow_collection_is_named_with_its_line():
    text = "top: 1\nprofiles:\n  ci: {tofu: {model: tiny}, seeds: [0]}\n"
    assert style.problems(text) == [
        "line 3: a flow-style collection holding another one (write it in block style)"
    ]


def test_a_long_line_is_named_with_its_length():
    text = "a: 1\nb: " + "x" * 120 + "\n"
    assert style.problems(text) == ["line 2: 123 characters (at most 110)"]


def test_the_repository_params_file_passes():
    assert style.problems((ROOT / "params.yaml").read_text()) == []

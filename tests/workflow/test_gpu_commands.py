"""Every rule that asks for a GPU runs a command that pins its job to a free GPU (and no other does)."""

import re

from tests.conftest import ROOT
from unlearn_repro.cli import GPU_COMMANDS


def _rules():
    """(rule name, its text) for every rule of every rule file."""
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:)", smk.read_text()):
            if block.startswith("rule "):
                yield block.split(":", 1)[0][5:], block


def test_gpu_rules_and_pinned_commands_agree():
    wants_gpu, commands = set(), set()
    for name, text in _rules():
        used = set(re.findall(r"\{params\.cli\} ([a-z][a-z-]*)", text))
        commands |= used
        if "gpu=gpu_resources" in text:
            assert used, f"rule {name} asks for a GPU but runs no `python -m unlearn_repro` command"
            wants_gpu |= used
    assert wants_gpu <= GPU_COMMANDS, (
        f"GPU rules whose commands are not pinned: {sorted(wants_gpu - GPU_COMMANDS)}"
    )
    assert GPU_COMMANDS <= commands, f"GPU_COMMANDS names unknown commands: {sorted(GPU_COMMANDS - commands)}"


def test_every_rule_command_is_declared_once_and_the_parser_needs_no_torch():
    import subprocess
    import sys

    from unlearn_repro.commands import COMMANDS

    used = {c for _, text in _rules() for c in re.findall(r"\{params\.cli\} ([a-z][a-z-]*)", text)}
    assert used <= set(COMMANDS.names()), (
        f"rules run undeclared commands: {sorted(used - set(COMMANDS.names()))}"
    )
    code = (
        "import sys; from unlearn_repro.cli import build_parser; build_parser().parse_args(['splits', "
        "'--dataset', 'd', '--data', 'x', '--seed', '0', '--out', 'o']); print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "False", r.stderr  # handlers import their modules when they run

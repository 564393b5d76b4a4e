"""The import graph of src/unlearn_repro (module- and function-level imports, read with ast): no circles,
and no arrow from a lower layer to a higher one. The layers are the design's (docs/design.md, "Layers");
a new top-level module must be given one here."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "unlearn_repro"
LAYERS = [  # lowest first: a module may import its own layer and those below
    ["paths", "errors", "registry", "progress", "frozen"],
    ["io", "numerics", "batches", "gpus", "allocator"],
    [
        "models",
        "data",
        "losses",
        "objectives",
        "optim",
        "fisher",
        "lora",
        "metrics",
        "hub",
        "tracking",
        "passes",
    ],
    ["train", "dp"],
    ["methods"],
    # the composition layer: config validates against every registry (methods, optimizers, studies), the
    # studies declare their commands, hub_check gathers every study's data sets
    ["config", "commands", "studies", "dvc_yaml", "publish", "hub_check", "pipeline", "report"],
    ["cli", "job", "jobserver", "__main__", "__init__"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(node: ast.AST, package: str, known: dict) -> list[str]:
    """The project modules an import statement reaches (`from pkg import mod` reaches pkg.mod, not pkg)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name.startswith("unlearn_repro"):
            out.append(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges[name] = {
            target
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in imported(node, package, known)
            if target != name
        }
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> int:
    top = (module.split(".")[1:] or ["__init__"])[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} has no layer: add {top!r} to LAYERS in {Path(__file__).name}")


def test_no_import_circles():
    assert cycles(graph()) == []


def test_no_arrow_from_a_lower_layer_to_a_higher_one():
    up = [f"{a} -> {b}" for a, outs in graph().items() for b in outs if layer(b) > layer(a)]
    assert up == []


@pytest.mark.parametrize(
    "edges, expected",
    [({"a": {"b"}, "b": {"c"}, "c": set()}, []), ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]])],
)
def test_the_cycle_finder_finds_a_planted_circle(edges, expected):
    assert cycles(edges) == expected


def test_imports_are_resolved_to_modules_not_packages():
    known = {"unlearn_repro.report": None, "unlearn_repro.report.tdec": None}
    node = ast.parse("from unlearn_repro.report import tdec").body[0]
    assert imported(node, "unlearn_repro.pipeline", known) == ["unlearn_repro.report.tdec"]
    relative = ast.parse("from .tdec import x").body[0]
    assert imported(relative, "unlearn_repro.report", known) == ["unlearn_repro.report.tdec"]


HEAVY = (
    "torch",
    "transformers",
    "datasets",
    "opacus",
    "peft",
    "sentence_transformers",
    "mlflow",
    "matplotlib",
    "huggingface_hub",
)


def _fresh(argv: list[str], cwd=None, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """`python *argv` in a fresh process on this checkout's package, with `env` set: what a job or a DAG build
    imports, without the modules this test process already holds."""
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent), **env},
    )


def _resolved_ci(folder: Path, overrides: dict | None = None) -> str:
    """The ci profile's config as the Snakefile hands it to its jobs (UNLEARN_CONFIG)."""
    from unlearn_repro import config

    layered = config.resolve_layers(ROOT / "params.yaml", (), overrides, "ci")
    return str(config.write_resolved(layered.cfg, folder))


def test_the_cli_config_and_study_declarations_start_light():
    """`--help`, a config error and the study declarations never wait for the heavy libraries: those are
    imported inside the functions that need them (each such import says why)."""
    code = (
        "import sys, unlearn_repro.cli, unlearn_repro.config, unlearn_repro.studies, unlearn_repro.hub; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    r = _fresh(["-c", code])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("command", "torch_loaded", "exit_status"), [("light", "False", 0), ("liar", "True", 1)]
)
def test_a_command_declared_without_torch_runs_without_it_or_fails(
    command, torch_loaded, exit_status, tmp_path
):
    """A data or bookkeeping command (commands.py `torch=False`: prepare-data, splits, collect, ...) skips
    torch's import and set-up (~2 s of each such job run on its own); one that imports torch anyway would
    compute without the job's threads and deterministic kernels, so the CLI fails it, naming the fix. As a
    job runs it: with the config Snakemake resolved (validating params.yaml loads the method registry)."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch' in sys.modules))\n"
        "from unlearn_repro import cli\n"
        "from unlearn_repro.commands import command\n"
        "command('light', 'x', tracked=False, torch=False)(lambda a, c, t: None)\n"
        "command('liar', 'x', tracked=False, torch=False)(lambda a, c, t: __import__('torch'))\n"
        f"cli.main([{command!r}])\n"
    )
    r = _fresh(["-c", code], timeout=120, UNLEARN_CONFIG=_resolved_ci(tmp_path))
    assert (r.returncode, r.stdout.split()[-1:]) == (exit_status, [torch_loaded]), r.stderr[-2000:]
    if exit_status:
        assert "commands.py declares it torch=False" in r.stderr and "declare it torch=True" in r.stderr


def test_every_command_declared_without_torch_runs_without_it(tmp_path, mirror):
    """Each command declared torch=False, run as a job runs on its own (a fresh process, the resolved ci
    config) on small real inputs: the CLI would fail one that imports torch. A command newly declared
    torch=False needs its run here (the tokenizer was declared so once and imports torch through
    transformers' tokenizer classes; a DAG run caught it, no test did)."""
    from unlearn_repro.commands import COMMANDS

    resolved = _resolved_ci(tmp_path, {"data": {"mirror_dir": str(mirror)}})
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        '{"dataset": "arc_easy", "model": "tiny-gpt-neo", "method": "gradient_ascent", "seed": 0, '
        '"params": {}, "cycles": [{"cycle": 1, "delta_exp": -0.5, "accuracy": 0.4}]}'
    )
    runs = {  # in this order: splits reads what prepare-data wrote
        "check-config": [],
        "prepare-data": ["--dataset", "arc_easy", "--out", str(tmp_path / "arc")],
        "splits": ["--dataset", "arc_easy", "--data", str(tmp_path / "arc"), "--seed", "0"],
        "collect": ["--out", str(tmp_path / "metrics.csv"), str(metrics)],
    }
    runs["splits"] += ["--out", str(tmp_path / "split.json")]
    assert sorted(runs) == sorted(n for n in COMMANDS.names() if not COMMANDS.get(n).torch)
    for command, args in runs.items():
        r = _fresh(
            ["-m", "unlearn_repro", command, *args], cwd=tmp_path, timeout=120, UNLEARN_CONFIG=resolved
        )
        assert r.returncode == 0, f"{command}: {r.stderr[-2000:]}"
    assert (tmp_path / "split.json").is_file() and "gradient_ascent" in (tmp_path / "metrics.csv").read_text()


def test_the_dag_build_imports_no_model_library_beyond_torch():
    """A DAG build (each `snakemake` call: the tests, `make reproduce`, a dry run) imports the study
    declarations, pipeline planners and report outputs and calls them. torch comes with the method registry
    and matplotlib with the report modules; transformers, scipy's statistics and the other heavy libraries
    are imported where a job uses them (~1.3 s of each DAG build here). Checked on a real dry run of the
    default target and the cross-paper benchmark, at its exit."""
    heavy = (*HEAVY, "scipy.stats")
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('LOADED', sorted(m for m in {heavy!r} if m in sys.modules), "
        "file=sys.stderr))\n"
        "from snakemake.cli import main\n"
        "main(['all', 'crossbench', '-n', '--config', 'profile=ci'])\n"
    )
    r = _fresh(["-c", code], cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LOADED ['matplotlib', 'torch']" in r.stderr, r.stderr[-2000:]

"""params.yaml -> one validated, frozen, attribute-access config.

The JSON Schema in schemas/params.schema.yaml is the single description of every key (types, ranges,
valid names). A config is built from layers, each later one winning (docs/configuration.md):

    params.yaml  <  its `profiles.<profile>` block  <  each --configfile, in order  <  --config

(a user's file may hold top-level keys and its own `profiles.<profile>` block, which follows them). The
Snakefile and every `python -m unlearn_repro` command resolve the same layers; errors name the layer (file or
--config) that set the bad value, and a user's value that a later layer replaces is reported.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from unlearn_repro.frozen import Frozen, deep_merge
from unlearn_repro.io import write_text
from unlearn_repro.models.registry import MODELS, tofu_sources
from unlearn_repro.paths import SCHEMA_PATH
from unlearn_repro.studies import STUDIES


class ConfigError(ValueError):
    """A params.yaml problem, with the file and the key in the message."""


def load_schema() -> dict:
    """schemas/params.schema.yaml completed from the registries: the method and optimizer names, each
    registered method's own params block and each study's (declared in its file), so a new method or study
    edits no schema."""
    # heavy: the methods and optimizers import torch, and the CLI loads config before any command runs
    from unlearn_repro.methods import METHODS
    from unlearn_repro.methods.base import loss_based_names
    from unlearn_repro.optim import OPTIMIZERS

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    schema["$defs"]["method"] = {"enum": METHODS.names()}
    schema["$defs"]["loss_method"] = {"enum": loss_based_names()}
    schema["$defs"]["optimizer"] = {"enum": OPTIMIZERS.names()}
    blocks = schema["properties"]["methods"]["properties"]
    for name in METHODS.names():
        blocks[name] = METHODS.get(name).schema
    for study in map(STUDIES.get, STUDIES.names()):
        _add_block(schema, study.name, study.schema, study.required)
    return schema


def _add_block(schema: dict, name: str, block: dict | None, required: bool) -> None:
    """A study's params block `name:` into the top-level schema (a name the schema already has is refused)."""
    if block is None:
        return
    if name in schema["properties"]:
        raise ConfigError(
            f"study {name!r} declares a params block, but {SCHEMA_PATH} already has a key {name!r}"
        )
    schema["properties"][name] = block
    if required:
        schema["required"].append(name)


def _subschema(schema: dict, root: dict, path) -> dict:
    node = schema
    for key in path:
        while "$ref" in node:
            node = _resolve_ref(root, node["$ref"])
        node = node.get("properties", {}).get(key, {})
    while "$ref" in node:
        node = _resolve_ref(root, node["$ref"])
    return node


def _resolve_ref(root: dict, ref: str) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _describe(error: jsonschema.ValidationError, schema: dict, source) -> str:
    """One line naming the layer that set the bad key (`source`: a name, or a function of the key path)."""
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        path += tuple(sorted(set(error.instance) - set(error.schema.get("properties", {}))))[:1]
    source = source(path) if callable(source) else source
    if error.validator == "type" and _non_finite(error.instance):
        return f"{source}: key '{key}' = {error.instance!r} is invalid: it must be a finite number"
    if error.validator == "additionalProperties":
        allowed = sorted(_subschema(schema, schema, list(error.absolute_path)).get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hints = [
            f"{e!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(e, allowed, 1)) else repr(e)
            for e in extra
        ]
        where = key if error.absolute_path else "the top level"
        return f"{source}: unknown key {', '.join(hints)} under {where}; valid keys: {', '.join(allowed)}"
    if error.validator == "enum":
        return (
            f"{source}: key '{key}' has invalid value {error.instance!r}; valid choices: "
            f"{', '.join(map(str, error.validator_value))}"
        )
    if error.validator == "propertyNames":
        return f"{source}: key '{key}' has an invalid name: {error.message}"
    if error.validator == "required":
        return f"{source}: {error.message} (under {key})"
    return f"{source}: key '{key}' = {error.instance!r} is invalid: {error.message}"


_YAML11_FLOAT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+$")


def numbers(raw: Any) -> Any:
    """A copy with YAML 1.1's exponent-without-dot strings ('3e-4') read as the numbers the user meant."""
    if isinstance(raw, Mapping):
        return {k: numbers(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [numbers(v) for v in raw]
    if isinstance(raw, str) and _YAML11_FLOAT.match(raw):
        return float(raw)
    return raw


def _finite_number(checker, value) -> bool:
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(value, "number") and not _non_finite(value)


def _non_finite(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


# the schema's `number` is a finite one: a rate of .nan or .inf is refused by name, not trained with
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)


def validate(raw: Mapping, source: str = "params.yaml") -> None:
    """Raise ConfigError naming the key (and valid choices) for the first schema violation, in the top
    level or in any profile block merged over it (a typo in `paper` fails under `ci` too)."""
    raw = numbers(raw)
    schema = load_schema()
    validator = _Validator(schema)
    _validate(validator, schema, raw, source)
    for name, block in (raw.get("profiles") or {}).items():
        if isinstance(block, Mapping):
            _validate(validator, schema, _merged(raw, name), f"{source} (profile {name!r})")


def _merged(raw: Mapping, name: str) -> dict:
    """The top level with profile `name`'s block deep-merged over it."""
    merged = deep_merge(_top(raw), _block(raw, name))
    merged["profile"] = name
    return merged


def _top(raw: Mapping) -> dict:
    return {k: v for k, v in raw.items() if k != "profiles"}


def _block(raw: Mapping, name: str) -> dict:
    return dict((raw.get("profiles") or {}).get(name) or {})


def _validate(validator, schema: dict, raw: Mapping, source) -> None:
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        # enum errors hide inside oneOf/anyOf: prefer the most specific one
        while best.context:
            best = sorted(best.context, key=lambda e: -len(e.absolute_path))[0]
        raise ConfigError(_describe(best, schema, source))


def resolve(raw: Mapping, profile: str | None = None, source: str = "params.yaml") -> Frozen:
    """Validate raw params (every profile merged over the defaults is validated too), then merge the
    selected profile over the defaults."""
    raw = numbers(raw)
    validate(raw, source)
    name = profile or raw["profile"]
    profiles = raw.get("profiles", {})
    if name not in profiles and name != raw["profile"]:
        raise ConfigError(f"{source}: profile {name!r} is not defined; valid choices: {', '.join(profiles)}")
    cfg = Frozen(_merged(raw, name))
    _check_consistency(cfg, source)
    return cfg


@dataclass
class Layer:
    """The values one source sets: params.yaml, its profile block, a user's --configfile (or its profile
    block), or --config. `user`: set by the person running it, so replacing it is worth a warning."""

    source: str
    values: dict
    user: bool = False


@dataclass
class Layered:
    """A resolved config, where each key came from, and the user's values a later layer replaced."""

    cfg: Frozen
    origin: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def read_params(path: str | Path) -> dict:
    """A params file as a mapping; a missing, empty or malformed file is named (with the line)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context_mark", None)
        if context is not None and getattr(e, "context", None):
            problem += f" ({e.context} at line {context.line + 1})"
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of params keys (as in params.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return numbers(raw)


def parse_overrides(values: Mapping | None) -> dict:
    """--config values with their nested scalars read as YAML: Snakemake parses a nested value
    (`fisher={chunk: 4}`) with YAML's base loader, which leaves every scalar in it a string ('4'). A top-level
    value keeps what Snakemake made of it (int, float, bool, else the string as given)."""

    def nested(v):
        if isinstance(v, Mapping):
            return {k: nested(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [nested(x) for x in v]
        if isinstance(v, str) and v.strip():
            try:
                return yaml.safe_load(v)
            except yaml.YAMLError:
                return v
        return v

    return numbers(
        {k: nested(v) if isinstance(v, (Mapping, list, tuple)) else v for k, v in dict(values or {}).items()}
    )


def parse_config_args(args) -> dict:
    """`KEY=VALUE` pairs (the CLI's --config) read as Snakemake reads its own: int, float, true/false, a YAML
    mapping or list, else the string as given."""
    out = {}
    for arg in args or ():
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"--config {arg!r}: expected KEY=VALUE")
        out[key] = _scalar(value)
    return parse_overrides(out)


def _scalar(value: str):
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value.lstrip()[:1] in ("{", "["):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    return value


def layers(
    params: str | Path = "params.yaml",
    configfiles=(),
    overrides: Mapping | None = None,
    profile: str | None = None,
) -> list[Layer]:
    """params.yaml < its profile block < each user file (its top level, then its profile block) < --config.
    params.yaml given again as a --configfile is the base, not a user layer."""
    base = read_params(params)
    validate(base, str(params))
    users = [(str(f), read_params(f)) for f in configfiles if not _same_file(f, params)]
    cli = parse_overrides(overrides)
    name = (
        profile
        or cli.get("profile")
        or next((u["profile"] for _, u in reversed(users) if "profile" in u), None)
        or base["profile"]
    )
    defined = set(base.get("profiles") or {}) | {n for _, u in users for n in (u.get("profiles") or {})}
    if name not in defined and name != base["profile"]:
        raise ConfigError(
            f"{params}: profile {name!r} is not defined; valid choices: {', '.join(sorted(defined))}"
        )
    out = [Layer(str(params), _top(base)), Layer(f"{params} (profile {name!r})", _block(base, name))]
    for f, u in users:
        out += [Layer(f, _top(u), True), Layer(f"{f} (profile {name!r})", _block(u, name), True)]
    out.append(Layer("--config", cli, True))
    return [layer for layer in out if layer.values]


def check_profile_flag(argv, profile: str) -> None:
    """Refuse a run whose `--profile` folder selects a params profile the resolved config lost: a --config on
    Snakemake's command line replaces the profile's whole `config:` list (profile=paper with it), and the
    jobs would then quietly compute another profile."""
    argv = list(argv)
    folders = [a.split("=", 1)[1] for a in argv if a.startswith("--profile=")]
    folders += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--profile"]
    if not folders and os.environ.get("SNAKEMAKE_PROFILE"):
        folders = [os.environ["SNAKEMAKE_PROFILE"]]
    for folder in folders:
        path = _profile_file(folder)
        entries = (yaml.safe_load(path.read_text()) or {}).get("config") or [] if path else []
        wanted = [
            e.split("=", 1)[1].strip() for e in entries if isinstance(e, str) and e.startswith("profile=")
        ]
        if wanted and wanted[0] != profile:
            raise ConfigError(
                f"{path} selects params profile {wanted[0]!r} (its `config:`), but the resolved "
                f"profile is {profile!r}: a --config on the command line replaces the profile's "
                f"`config:` list; add profile={wanted[0]} to your --config, or put your values in "
                "a --configfile"
            )


def _profile_file(name: str) -> Path | None:
    """The config file of a Snakemake profile given by path or by name (searched as Snakemake does)."""
    roots = [Path(name)] + [
        Path(d).expanduser() / "snakemake" / name
        for d in (os.environ.get("XDG_CONFIG_HOME", "~/.config"), "/etc/xdg")
    ]
    for root in roots:
        for file in ("config.v8+.yaml", "config.yaml"):
            if (root / file).is_file():
                return root / file
    return None


def _same_file(a, b) -> bool:
    return Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()


def _leaves(d: Mapping, prefix: tuple = ()):
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,), v


def _get(d: Mapping, path: tuple):
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def merge(layer_list: list[Layer]) -> tuple[dict, dict, list[str]]:
    """Deep-merge the layers in order; each leaf key's layer; a warning per user value replaced later."""
    merged, origin, warnings = {}, {}, []
    for layer in layer_list:
        for path, value in _leaves(layer.values):
            before = origin.get(path)
            if before is not None and before.user and before is not layer and _get(merged, path) != value:
                warnings.append(
                    f"key '{'.'.join(map(str, path))}' = {_get(merged, path)!r} from {before.source} "
                    f"is overridden by {value!r} from {layer.source}"
                )
            origin[path] = layer
        merged = deep_merge(merged, layer.values)
    return merged, origin, warnings


def resolve_layers(
    params: str | Path = "params.yaml",
    configfiles=(),
    overrides: Mapping | None = None,
    profile: str | None = None,
) -> Layered:
    """The one resolution every entry point uses (Snakefile, check-hub, download, check-config): layers
    merged, validated with each error naming the layer that set the key, then the cross-key checks."""
    layer_list = layers(params, configfiles, overrides, profile)
    merged, origin, warnings = merge(layer_list)
    merged.pop("profiles", None)
    merged["profile"] = profile or _get(merged, ("profile",))
    label = " + ".join(dict.fromkeys(layer.source.split(" (profile")[0] for layer in layer_list))

    def source_of(path: tuple) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in origin:
                return origin[path[:n]].source
        return label

    schema = load_schema()
    _validate(_Validator(schema), schema, merged, source_of)
    cfg = Frozen(merged)
    _check_consistency(cfg, label)
    return Layered(cfg, {".".join(map(str, k)): v.source for k, v in origin.items()}, warnings)


def _check_consistency(cfg: Frozen, source: str) -> None:
    u = cfg.unlearn
    if max(u.table_cycles) > u.max_cycles:
        raise ConfigError(
            f"{source}: unlearn.table_cycles {list(u.table_cycles)} exceeds unlearn.max_cycles={u.max_cycles}"
        )
    if cfg.data.max_train is not None and u.max_cycles * u.cycle_size >= cfg.data.max_train:
        raise ConfigError(
            f"{source}: unlearn.max_cycles * unlearn.cycle_size = {u.max_cycles * u.cycle_size} "
            f"leaves no retain set in data.max_train = {cfg.data.max_train}"
        )
    bad = [d for d in u.extended_datasets if d not in cfg.data.tasks]
    if bad:
        raise ConfigError(
            f"{source}: unlearn.extended_datasets has {bad} not in data.tasks {list(cfg.data.tasks)}"
        )
    # heavy: the methods and optimizers import torch, and the CLI loads config before any command runs
    from unlearn_repro.methods import METHODS

    for m in cfg.methods.enabled:
        missing = [k for k in METHODS.get(m).schema.get("required", []) if k not in cfg.methods.get(m, {})]
        if missing:
            raise ConfigError(f"{source}: methods.{m} needs {', '.join(missing)} (method {m!r} is enabled)")
    d = cfg.discussions
    if d.model not in cfg.models or d.dataset not in cfg.data.tasks or d.seed not in cfg.seeds:
        raise ConfigError(
            f"{source}: discussions uses model {d.model!r}, data set {d.dataset!r}, seed {d.seed}: each must "
            f"be one of models {list(cfg.models)}, data.tasks {list(cfg.data.tasks)}, seeds {list(cfg.seeds)}"
        )
    bad = [m for m in u.extended_models if m not in cfg.models]
    if bad:
        raise ConfigError(f"{source}: unlearn.extended_models has {bad} not in models {list(cfg.models)}")
    if "tdec" in cfg:
        t = cfg.tdec
        # tdec.reasoning_tasks are scored where this run prepares them (those in data.tasks): not checked
        bad = [m for m in t.models if m not in cfg.models] + [c for c in t.enabled if c not in t.configs]
        if bad:
            raise ConfigError(
                f"{source}: tdec uses {bad}: tdec.models must be in models {list(cfg.models)}, tdec.enabled "
                f"in tdec.configs {list(t.configs)}"
            )
        _check_tdec_ablation(t, source)
    if "tofu" in cfg:
        _check_tofu(cfg, source)
    if "memorization" in cfg:
        _check_memorization(cfg, source)


def _check_tdec_ablation(t: Frozen, source: str) -> None:
    """Figure 4's methods (tdec.ablation.configs) are configurations of tdec.configs that train through an
    adapter: the figure varies the adapter's target modules, which a full-parameter run has none of."""
    for name in t.ablation.configs:
        if name not in t.configs:
            raise ConfigError(
                f"{source}: key 'tdec.ablation.configs' has invalid value {name!r}: not a configuration of "
                f"tdec.configs; valid choices: {', '.join(t.configs)}"
            )
        if t.configs[name].adapter == "full":
            adapted = [c for c, v in t.configs.items() if v.adapter != "full"]
            raise ConfigError(
                f"{source}: key 'tdec.ablation.configs' has invalid value {name!r}: its adapter is full, "
                f"so it has no target modules to vary; valid choices (LoRA / FLoRA): {', '.join(adapted)}"
            )


def _check_tofu(cfg: Frozen, source: str) -> None:
    """A pretrained tofu.model must be one of `models` (fine-tuned on TOFU here, as those are); a released
    TOFU checkpoint (models.registry: tofu_split) is loaded as published and need not be. Every method of
    tofu.methods needs its step sizes."""
    if MODELS.get(cfg.tofu.model).tofu_split is None and cfg.tofu.model not in cfg.models:
        raise ConfigError(
            f"{source}: tofu.model = {cfg.tofu.model!r} is not in models {list(cfg.models)} (its "
            "pretrained model is built by the base_model rule of those models)"
        )
    try:
        tofu_sources(cfg)
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    # a method joins TOFU with its step sizes: tofu.lr.<method>.<kind> for each kind
    unset = [
        f"tofu.lr.{m}.{k}"
        for m in cfg.tofu.methods
        for k in cfg.tofu.optimizers
        if k not in cfg.tofu.lr.get(m, {})
    ]
    if unset:
        raise ConfigError(f"{source}: {', '.join(unset)} not set (the step sizes of tofu.methods)")


def _check_memorization(cfg: Frozen, source: str) -> None:
    m = cfg.memorization
    # memorization.methods: those of them that are enabled run (as the privacy study's), so a run that enables
    # fewer methods still builds; a model must be one of this run's models (its pretrained model
    # is built there)
    bad = [x for x in (m.models or ()) if x not in cfg.models]
    if bad:
        raise ConfigError(f"{source}: memorization.models has {bad} not in models {list(cfg.models)}")
    if not m.prefix_tokens + m.suffix_tokens <= m.min_target_tokens < m.max_length:
        raise ConfigError(
            f"{source}: memorization needs prefix_tokens + suffix_tokens ({m.prefix_tokens} + "
            f"{m.suffix_tokens}) <= min_target_tokens ({m.min_target_tokens}) < max_length ({m.max_length})"
        )


def write_resolved(cfg: Frozen, folder: str | Path) -> Path:
    """The resolved config as `<folder>/<content hash>.json`: what the Snakefile hands its jobs, so that a
    job computes with exactly the values Snakemake resolved (profile, --configfile, --config included)."""

    text = json.dumps(cfg.to_dict(), sort_keys=True, indent=1)
    path = Path(folder) / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.exists():
        write_text(path, text)
    return path.resolve()


def load_resolved(path: str | Path) -> Frozen:
    """A config written by `write_resolved` (already validated and merged by the Snakefile)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: resolved config missing (UNLEARN_CONFIG); rerun snakemake to rewrite it")
    return Frozen(json.loads(path.read_text()))


def load(path: str | Path = "params.yaml", profile: str | None = None) -> Frozen:
    """Read, validate and resolve a params file."""
    return resolve_layers(path, profile=profile).cfg

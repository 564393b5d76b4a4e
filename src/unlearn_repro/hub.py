"""Where models and data come from on the paper path, and the two commands that prepare a cluster for it:
`download` (fetch everything the selected profile needs into the Hugging Face cache, $HF_HOME; run it on a
login node when the compute nodes are offline) and `check-hub` (load one row of each data set, showing its hub
columns beside the normalized ones, and find each model's config, weights and tokenizer files where a job
would load them; say per item ok / failing and why, before any job starts).

A model's source is `model_sources.<name>` when set (a local folder in the hub's file layout, or
`org/name@revision`), else its registry hub id."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unlearn_repro.errors import HubError, one_line

PRETRAIN_CORPUS = "wikitext2"  # the tiny models' pretraining corpus (hub models come pretrained)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def probe_hub(timeout_s: float = 5.0) -> str | None:
    """Why the hub cannot be reached (DNS, refused, timeout), or None. Without this, every item waits out the
    libraries' retries (minutes) before failing. Behind a proxy (HTTPS_PROXY) the libraries' own route counts."""
    import socket
    from urllib.parse import urlparse

    if offline() or any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return None
    except OSError as e:
        return f"{host}: {one_line(e)}"


def go_offline(reason: str) -> None:
    """Read the cache only from now on (as HF_HUB_OFFLINE=1), in this process and the libraries it loaded."""
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    for module, attrs in (("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
                          ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))):
        if module in sys.modules:
            for attr in attrs:
                setattr(sys.modules[module], attr, True)
    print(f"[hub] unreachable ({reason}): reading the cache only", flush=True)


def cache_dir() -> str:
    """The Hugging Face cache every loader reads ($HF_HOME, default ~/.cache/huggingface)."""
    return os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))


@dataclass(frozen=True)
class ModelSource:
    """What `from_pretrained` is given for one model: a hub id (+ revision) or a local folder."""
    path: str
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.path).is_dir()

    def __str__(self) -> str:
        return self.path + (f"@{self.revision}" if self.revision else "")


def model_source(cfg, name: str) -> ModelSource:
    """`model_sources.<name>` (a folder, or `org/name@revision`, or `@revision` for the registry id), else the
    registry's hub id. A configured folder that does not exist is an error naming the key (not a hub lookup)."""
    from unlearn_repro.models.registry import MODELS

    spec = MODELS.get(name)
    value = (cfg.get("model_sources") or {}).get(name) if hasattr(cfg, "get") else None
    if not value:
        if spec.hub_id is None:
            raise ValueError(f"model {name!r} is built from its config here; it has no hub id")
        return ModelSource(spec.hub_id)
    looks_local = value.startswith(("/", ".", "~")) or Path(value).expanduser().exists()
    if looks_local:
        folder = Path(value).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: model_sources.{name} is not a model folder (no config.json)")
        return ModelSource(str(folder))
    repo, _, revision = value.partition("@")
    return ModelSource(repo or spec.hub_id, revision or None)


def needed_datasets(cfg) -> list[str]:
    """The data sets the main study prepares (`prepare-data`): its tasks, the exposure reference corpus, and
    WikiText-2 only when a tiny model is pretrained here (hub models come pretrained)."""
    from unlearn_repro.models.registry import MODELS

    corpora = {cfg.data.reference_corpus} - {"heldout"}
    if any(MODELS.get(m).is_tiny for m in cfg.models):
        corpora.add(PRETRAIN_CORPUS)
    return list(cfg.data.tasks) + sorted(corpora)


def study_datasets(cfg) -> dict[str, list[str]]:
    """The data sets each study of the default target reads, as its declaration says (studies/<name>.py
    `datasets`; discussions and privacy read the main study's tasks and declare none)."""
    from unlearn_repro.studies import STUDIES

    studies = [STUDIES.get(name) for name in STUDIES.names()]
    return {s.name: list(s.datasets(cfg)) for s in studies if s.datasets is not None}


def all_datasets(cfg) -> list[str]:
    """Every data set of the default target, once each: what `download` fetches and `check-hub` checks."""
    return list(dict.fromkeys(name for names in study_datasets(cfg).values() for name in names))


def needed_models(cfg) -> list[str]:
    """The hub models of the default target: those of `models` (every study's models are among them, checked
    in config; tiny ones are built here from their configs) and the TOFU study's released checkpoints (SOUL's
    Llama-2-7B-chat fine-tuned on TOFU and its retain model, or the model the recipe fine-tunes)."""
    from unlearn_repro.models.registry import MODELS, tofu_models

    return [m for m in dict.fromkeys([*cfg.models, *tofu_models(cfg)]) if not MODELS.get(m).is_tiny]


def _data_location(cfg, name: str) -> str:
    from unlearn_repro.data.registry import DATASETS

    spec = DATASETS.get(name)
    local = cfg.data.hub_paths.get(name)
    if spec.hub_id is None:
        return f"{Path(cfg.data.mirror_dir) / spec.mirror_folder} (no hub release: data.mirror_dir)"
    if local:
        return f"{local} (data.hub_paths)"
    return spec.hub_id + (f" [{spec.hub_config}]" if spec.hub_config else "") + (
        f"@{spec.hub_revision}" if spec.hub_revision else "")


def _without_hub(cfg, name: str) -> str:
    """A data set with no hub release (TDEC) is read from its mirror folder at every scale: check its files."""
    from unlearn_repro.data.registry import DATASETS, check_mirror

    spec = DATASETS.get(name)
    try:
        check_mirror(cfg.data.mirror_dir, [name])
    except FileNotFoundError as e:
        raise HubError(f"{one_line(e)}; {name} has no hub release: get it from {spec.release}") from None
    return f"{len(spec.mirror_files)} files in the mirror folder (nothing to fetch)"


def _first_row(cfg, name: str) -> tuple[dict, dict]:
    """The first usable raw row of the data set's first hub split and its normalized form: both column sets are
    shown, so the hub's real column names (not only what the normalizer made of them) are confirmed."""
    from unlearn_repro.data.registry import DATASETS, hub_rows

    spec = DATASETS.get(name)
    split = next(iter(spec.hub_splits))
    config, hub_split = spec.hub_location(split)
    rows = hub_rows(cfg.data.hub_paths.get(name) or spec.hub_id, config, hub_split, spec.hub_revision,
                    spec.hub_data_dir, streaming=True)
    for i, raw in enumerate(rows):
        out = spec.from_hub(dict(raw), i)
        if out:
            return dict(raw), out[0] if isinstance(out, list) else out
        if i > 50:
            break
    raise ValueError(f"no usable row in the first rows of split {hub_split!r}")


WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # one file, or sharded: <name>.index.json + its shards
TOKENIZER = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))  # any one of these sets


def _model_folder(src: ModelSource) -> Path | None:
    """The folder a job would load: the local one, else the cached snapshot; None online when the cache has
    none (the job would fetch it; the hub's file list is checked instead). Offline and uncached: HubError."""
    if src.is_local:
        return Path(src.path)
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(src.path, revision=src.revision, local_files_only=True))
    except Exception:  # noqa: BLE001 (not cached: LocalEntryNotFoundError, or a revision the cache lacks)
        if offline():
            raise HubError(f"not in the cache (no snapshot of {src.path} at {src.revision or 'main'})") from None
        return None


def _hub_files(src: ModelSource) -> set[str]:
    from huggingface_hub import HfApi
    try:
        return set(HfApi().list_repo_files(src.path, revision=src.revision))
    except Exception as e:  # noqa: BLE001 (unknown repo or revision, unreachable: one line)
        raise HubError(one_line(e)) from None


def _weight_files(files: set[str], folder: Path | None) -> list[str]:
    """The weight files a job loads, or HubError naming the missing one (a sharded model: every shard)."""
    import json

    for name in WEIGHTS:
        if name in files:
            return [name]
        index = f"{name}.index.json"
        if index in files:
            if folder is None:  # the hub lists the index: its shards come with it
                stem, ext = name.split(".")
                return [index] + sorted(f for f in files if f.startswith(stem + "-") and f.endswith("." + ext))
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            missing = [f for f in shards if f not in files]
            if missing:
                raise HubError(f"missing {missing[0]} (weights shard {shards.index(missing[0]) + 1} of "
                               f"{len(shards)} in {index})")
            return [index] + shards
    raise HubError(f"missing {WEIGHTS[0]} (no weights: neither {' nor '.join(WEIGHTS)}, sharded or not)")


def _tokenizer_files(files: set[str]) -> list[str]:
    for group in TOKENIZER:
        if set(group) <= files:
            return list(group)
    raise HubError(f"missing tokenizer.json (no tokenizer files: {' or '.join(' + '.join(g) for g in TOKENIZER)})")


def model_files(src: ModelSource) -> tuple[str, list[str]]:
    """Where a job would load the model from, and the files it needs there (config, weights, tokenizer), each
    present; a partial cache (say only config.json) is a HubError naming the first missing file."""
    folder = _model_folder(src)
    if folder is None:
        files, where = _hub_files(src), "on the hub (not cached: a job fetches it)"
    else:
        files = {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}
        where = "local folder" if src.is_local else f"cached in {folder}"
    if "config.json" not in files:
        raise HubError("missing config.json")
    return where, ["config.json", *_weight_files(files, folder), *_tokenizer_files(files)]


def _model_config(cfg, name: str):
    from transformers import AutoConfig

    src = model_source(cfg, name)
    try:
        return AutoConfig.from_pretrained(src.path, revision=src.revision)
    except (OSError, ValueError) as e:  # not cached + offline, unreachable, unknown repo or revision
        raise HubError(f"model {name} ({src}): {one_line(e)}") from None


def _each_item(cfg, data_detail, model_detail) -> list[tuple[str, bool, str]]:
    """(item, ok, detail) for every data set and model the profile needs: `data_detail(spec)` and
    `model_detail(name, source)` return an item's detail or raise; a failing item is its line, not a crash."""
    from unlearn_repro.data.registry import DATASETS, choose_source

    if (why := probe_hub()) is not None:
        go_offline(why)  # every item then fails at once, naming itself, instead of after minutes of retries
    results = []

    def one(item, detail, failed_item=None):
        try:
            results.append((item, True, detail()))
        except Exception as e:  # noqa: BLE001 (a report, not a crash: every item gets its line)
            results.append((failed_item or item, False, one_line(e)))
    if choose_source(cfg.data.source, cfg.data.mirror_dir) == "hub":
        for name in all_datasets(cfg):
            spec = DATASETS.get(name)
            one(f"data {name}: {_data_location(cfg, name)}",
                lambda: _without_hub(cfg, spec.name) if spec.hub_id is None else data_detail(spec))
    for name in needed_models(cfg):
        try:
            src = model_source(cfg, name)
        except Exception as e:  # noqa: BLE001
            results.append((f"model {name}", False, one_line(e)))
            continue
        one(f"model {name}: {src}", lambda: model_detail(name, src), failed_item=f"model {name}")
    return results


def check_hub(cfg) -> list[tuple[str, bool, str]]:
    """(item, ok, detail) for every data set and model the profile needs: each data set's first row (its hub
    columns and the normalized ones), each model's files as a job loads them (config, weights, tokenizer)."""
    def data(spec):
        raw, normalized = _first_row(cfg, spec.name)
        return f"hub columns {', '.join(sorted(raw))} -> columns {', '.join(sorted(normalized))}"

    def model(name, src):
        where, files = model_files(src)
        conf = _model_config(cfg, name)
        return f"{conf.model_type}, hidden size {getattr(conf, 'hidden_size', '?')}; {where}: {', '.join(files)}"
    return _each_item(cfg, data, model)


def download(cfg) -> list[tuple[str, bool, str]]:
    """Fetch every hub model (config, safetensors weights, tokenizer files) and data set the profile needs
    into the cache ($HF_HOME); local folders are only checked. (item, ok, detail) per item."""
    from unlearn_repro.data.registry import hub_rows

    def data(spec):
        n = 0
        for split in spec.hub_splits:
            config, hub_split = spec.hub_location(split)
            n += len(hub_rows(cfg.data.hub_paths.get(spec.name) or spec.hub_id, config, hub_split,
                              spec.hub_revision, spec.hub_data_dir))
        return f"{n} rows in {len(spec.hub_splits)} split(s)"

    def model(name, src):
        if src.is_local:
            _model_config(cfg, name)
            return "local folder (nothing to fetch)"
        from huggingface_hub import snapshot_download
        try:
            path = snapshot_download(src.path, revision=src.revision,
                                     allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
        except Exception as e:  # noqa: BLE001 (offline, unreachable, unknown repo: one line)
            raise HubError(one_line(e)) from None
        return f"in {path}"
    return _each_item(cfg, data, model)


def report(results: list[tuple[str, bool, str]], title: str) -> str:
    lines = [f"[{title}] cache: {cache_dir()}{' (HF_HUB_OFFLINE=1)' if offline() else ''}"]
    lines += [f"  {'ok  ' if ok else 'FAIL'}  {item}: {detail}" for item, ok, detail in results]
    bad = sum(not ok for _, ok, _ in results)
    lines.append(f"[{title}] {len(results) - bad} ok, {bad} failing" + (
        "" if not bad else " (on an offline compute node: run `python -m unlearn_repro download --profile "
        "<profile>` on a login node with the same HF_HOME, or point model_sources / data.hub_paths at local files)"))
    return "\n".join(lines)

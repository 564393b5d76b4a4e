"""Where models and data come from on the paper path: a model's source (`model_sources.<name>` when set, a
local folder in the hub's file layout or `org/name@revision`, else its registry hub id), the files a job loads
from it, the data sets and models the main target needs, and the hub's reachability and cache. The
`download` and `check-hub` commands, which gather every study's needs, are hub_check.py's."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from unlearn_repro.errors import HubError, one_line
from unlearn_repro.models.registry import MODELS, tofu_models

PRETRAIN_CORPUS = "wikitext2"  # the tiny models' pretraining corpus (hub models come pretrained)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def probe_hub(timeout_s: float = 5.0) -> str | None:
    """Why the hub cannot be reached (DNS, refused, timeout), or None. Without this, every item waits out the
    libraries' retries (minutes) before failing. Behind a proxy (HTTPS_PROXY) the libraries'
    own route counts."""
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
    os.environ["HF_HUB_OFFLINE"] = "1"
    for module, attrs in (
        ("huggingface_hub.constants", ("HF_HUB_OFFLINE",)),
        ("datasets.config", ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")),
    ):
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
    registry's hub id. A configured folder that does not exist is an error naming the key (not
    a hub lookup)."""
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
    corpora = {cfg.data.reference_corpus} - {"heldout"}
    if any(MODELS.get(m).is_tiny for m in cfg.models):
        corpora.add(PRETRAIN_CORPUS)
    return list(cfg.data.tasks) + sorted(corpora)


def needed_models(cfg) -> list[str]:
    """The hub models of the default target: those of `models` (every study's models are among them, checked
    in config; tiny ones are built here from their configs) and the TOFU study's released checkpoints (SOUL's
    Llama-2-7B-chat fine-tuned on TOFU and its retain model, or the model the recipe fine-tunes)."""
    return [m for m in dict.fromkeys([*cfg.models, *tofu_models(cfg)]) if not MODELS.get(m).is_tiny]


WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # one file, or sharded: <name>.index.json + its shards
TOKENIZER = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))  # any one of these sets


def _model_folder(src: ModelSource) -> Path | None:
    """The folder a job would load: the local one, else the cached snapshot; None online when the cache has
    none (the job would fetch it; the hub's file list is checked instead). Offline and uncached: HubError."""
    if src.is_local:
        return Path(src.path)
    from huggingface_hub import snapshot_download  # heavy: imported only on the hub path

    try:
        return Path(snapshot_download(src.path, revision=src.revision, local_files_only=True))
    except Exception:  # noqa: BLE001 (not cached: LocalEntryNotFoundError, or a revision the cache lacks)
        if offline():
            raise HubError(
                f"not in the cache (no snapshot of {src.path} at {src.revision or 'main'})"
            ) from None
        return None


def _hub_files(src: ModelSource) -> set[str]:
    from huggingface_hub import HfApi  # heavy: imported only on the hub path

    try:
        return set(HfApi().list_repo_files(src.path, revision=src.revision))
    except Exception as e:  # noqa: BLE001 (unknown repo or revision, unreachable: one line)
        raise HubError(one_line(e)) from None


def _weight_files(files: set[str], folder: Path | None) -> list[str]:
    """The weight files a job loads, or HubError naming the missing one (a sharded model: every shard)."""
    for name in WEIGHTS:
        if name in files:
            return [name]
        index = f"{name}.index.json"
        if index in files:
            if folder is None:  # the hub lists the index: its shards come with it
                stem, ext = name.split(".")
                return [index] + sorted(
                    f for f in files if f.startswith(stem + "-") and f.endswith("." + ext)
                )
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            missing = [f for f in shards if f not in files]
            if missing:
                raise HubError(
                    f"missing {missing[0]} (weights shard {shards.index(missing[0]) + 1} of "
                    f"{len(shards)} in {index})"
                )
            return [index] + shards
    raise HubError(f"missing {WEIGHTS[0]} (no weights: neither {' nor '.join(WEIGHTS)}, sharded or not)")


def _tokenizer_files(files: set[str]) -> list[str]:
    for group in TOKENIZER:
        if set(group) <= files:
            return list(group)
    raise HubError(
        f"missing tokenizer.json (no tokenizer files: {' or '.join(' + '.join(g) for g in TOKENIZER)})"
    )


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


def model_config(cfg, name: str):
    from transformers import AutoConfig  # heavy: imported only on the hub path

    src = model_source(cfg, name)
    try:
        return AutoConfig.from_pretrained(src.path, revision=src.revision)
    except (OSError, ValueError) as e:  # not cached + offline, unreachable, unknown repo or revision
        raise HubError(f"model {name} ({src}): {one_line(e)}") from None

"""The two commands that prepare a cluster for the paper path: `download` (fetch everything the selected
profile needs into the Hugging Face cache, $HF_HOME; run it on a login node when the compute nodes are
offline) and `check-hub` (load one row of each data set, showing its hub columns beside the normalized ones,
and find each model's config, weights and tokenizer files where a job would load them; say per item ok /
failing and why, before any job starts). They gather what every study of the default target needs (its
declaration's `datasets`), so this module sits above the studies; where one model or data set comes
from is hub.py's."""

from __future__ import annotations

from pathlib import Path

from unlearn_repro.data.registry import DATASETS, check_mirror, choose_source, hub_rows
from unlearn_repro.hub import (
    HubError,
    cache_dir,
    go_offline,
    model_config,
    model_files,
    model_source,
    needed_models,
    offline,
    one_line,
    probe_hub,
)
from unlearn_repro.studies import STUDIES


def study_datasets(cfg) -> dict[str, list[str]]:
    """The data sets each study of the default target reads, as its declaration says (studies/<name>.py
    `datasets`; discussions and privacy read the main study's tasks and declare none)."""
    studies = [STUDIES.get(name) for name in STUDIES.names()]
    return {s.name: list(s.datasets(cfg)) for s in studies if s.datasets is not None}


def all_datasets(cfg) -> list[str]:
    """Every data set of the default target, once each: what `download` fetches and `check-hub` checks."""
    return list(dict.fromkeys(name for names in study_datasets(cfg).values() for name in names))


def _data_location(cfg, name: str) -> str:
    spec = DATASETS.get(name)
    local = cfg.data.hub_paths.get(name)
    if spec.hub_id is None:
        return f"{Path(cfg.data.mirror_dir) / spec.mirror_folder} (no hub release: data.mirror_dir)"
    if local:
        return f"{local} (data.hub_paths)"
    return (
        spec.hub_id
        + (f" [{spec.hub_config}]" if spec.hub_config else "")
        + (f"@{spec.hub_revision}" if spec.hub_revision else "")
    )


def _without_hub(cfg, name: str) -> str:
    """A data set with no hub release (TDEC) is read from its mirror folder at every scale:
    check its files."""
    spec = DATASETS.get(name)
    try:
        check_mirror(cfg.data.mirror_dir, [name])
    except FileNotFoundError as e:
        raise HubError(f"{one_line(e)}; {name} has no hub release: get it from {spec.release}") from None
    return f"{len(spec.mirror_files)} files in the mirror folder (nothing to fetch)"


def _first_row(cfg, name: str) -> tuple[dict, dict]:
    """The first usable raw row of the data set's first hub split and its normalized form: both column sets
    are shown, so the hub's real column names (not only what the normalizer made of them) are confirmed."""
    spec = DATASETS.get(name)
    split = next(iter(spec.hub_splits))
    config, hub_split = spec.hub_location(split)
    rows = hub_rows(
        cfg.data.hub_paths.get(name) or spec.hub_id,
        config,
        hub_split,
        spec.hub_revision,
        spec.hub_data_dir,
        streaming=True,
    )
    for i, raw in enumerate(rows):
        out = spec.from_hub(dict(raw), i)
        if out:
            return dict(raw), out[0] if isinstance(out, list) else out
        if i > 50:
            break
    raise ValueError(f"no usable row in the first rows of split {hub_split!r}")


def _each_item(cfg, data_detail, model_detail) -> list[tuple[str, bool, str]]:
    """(item, ok, detail) for every data set and model the profile needs: `data_detail(spec)` and
    `model_detail(name, source)` return an item's detail or raise; a failing item is its line, not a crash."""
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
            one(
                f"data {name}: {_data_location(cfg, name)}",
                lambda spec=spec: _without_hub(cfg, spec.name) if spec.hub_id is None else data_detail(spec),
            )
    for name in needed_models(cfg):
        try:
            src = model_source(cfg, name)
        except Exception as e:  # noqa: BLE001
            results.append((f"model {name}", False, one_line(e)))
            continue
        one(
            f"model {name}: {src}",
            lambda name=name, src=src: model_detail(name, src),
            failed_item=f"model {name}",
        )
    return results


def check_hub(cfg) -> list[tuple[str, bool, str]]:
    """(item, ok, detail) for every data set and model the profile needs: each data set's first row (its hub
    columns and the normalized ones), each model's files as a job loads them (config, weights, tokenizer)."""

    def data(spec):
        raw, normalized = _first_row(cfg, spec.name)
        return f"hub columns {', '.join(sorted(raw))} -> columns {', '.join(sorted(normalized))}"

    def model(name, src):
        where, files = model_files(src)
        conf = model_config(cfg, name)
        return (
            f"{conf.model_type}, hidden size {getattr(conf, 'hidden_size', '?')}; {where}: {', '.join(files)}"
        )

    return _each_item(cfg, data, model)


def download(cfg) -> list[tuple[str, bool, str]]:
    """Fetch every hub model (config, safetensors weights, tokenizer files) and data set the profile needs
    into the cache ($HF_HOME); local folders are only checked. (item, ok, detail) per item."""

    def data(spec):
        n = 0
        for split in spec.hub_splits:
            config, hub_split = spec.hub_location(split)
            n += len(
                hub_rows(
                    cfg.data.hub_paths.get(spec.name) or spec.hub_id,
                    config,
                    hub_split,
                    spec.hub_revision,
                    spec.hub_data_dir,
                )
            )
        return f"{n} rows in {len(spec.hub_splits)} split(s)"

    def model(name, src):
        if src.is_local:
            model_config(cfg, name)
            return "local folder (nothing to fetch)"
        # heavy: imported only on the hub path
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(
                src.path,
                revision=src.revision,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
            )
        except Exception as e:  # noqa: BLE001 (offline, unreachable, unknown repo: one line)
            raise HubError(one_line(e)) from None
        return f"in {path}"

    return _each_item(cfg, data, model)


def report(results: list[tuple[str, bool, str]], title: str) -> str:
    lines = [f"[{title}] cache: {cache_dir()}{' (HF_HUB_OFFLINE=1)' if offline() else ''}"]
    lines += [f"  {'ok  ' if ok else 'FAIL'}  {item}: {detail}" for item, ok, detail in results]
    bad = sum(not ok for _, ok, _ in results)
    lines.append(
        f"[{title}] {len(results) - bad} ok, {bad} failing"
        + (
            ""
            if not bad
            else " (on an offline compute node: run `python -m unlearn_repro download --profile "
            "<profile>` on a login node with the same HF_HOME, or point model_sources / data.hub_paths at "
            "local files)"
        )
    )
    return "\n".join(lines)

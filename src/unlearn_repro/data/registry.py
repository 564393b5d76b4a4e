"""The data-set registry and the one place that decides between the offline mirror and the hub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_repro.errors import HubError, one_line
from unlearn_repro.registry import Registry

KINDS = ("multiple_choice", "cloze", "text", "qa", "token_ids")


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one data set from the mirror folder and from the hub, and normalize it."""

    name: str
    kind: str
    mirror_folder: str
    mirror_splits: dict[str, Callable[[Path], list[dict]]]  # split -> reader of the mirror's own format
    hub_id: str | None
    hub_config: str | None
    hub_splits: dict[str, str] = field(default_factory=dict)  # our split -> the hub's split ("config:split"
    # where each split is its own config, as TOFU)
    from_hub: Callable[[dict, int], dict | list[dict] | None] | None = None  # hub row -> row(s)
    mirror_files: tuple[str, ...] = ()  # files the mirror readers open (checked before any job runs)
    hub_revision: str | None = None  # a branch / tag / commit without loading scripts (refs/convert/parquet)
    hub_data_dir: str | None = (
        None  # the config's folder on that revision (the parquet branch: <config>/<split>/)
    )
    release: str | None = (
        None  # where a data set without a hub release is published (its files go in the mirror)
    )

    def hub_location(self, split: str) -> tuple[str | None, str]:
        """(config, hub split) of one of our splits."""
        hub = self.hub_splits[split]
        config, _, name = hub.rpartition(":")
        return (config or self.hub_config), name


DATASETS: Registry[DatasetSpec] = Registry("data set")


def register(spec: DatasetSpec) -> DatasetSpec:
    assert spec.kind in KINDS, spec.kind
    return DATASETS.register(spec.name)(spec)


def choose_source(source: str, mirror_dir: str | Path) -> str:
    """`auto` reads the mirror when its folder exists, else the hub."""
    if source == "auto":
        return "mirror" if Path(mirror_dir).is_dir() else "hub"
    return source


def check_mirror(mirror_dir: str | Path, names, key: str = "data.mirror_dir") -> None:
    """Before any job runs: the mirror folder and each needed data set's folder exist and are not empty,
    so a mistyped path fails at once, naming the path and the key to fix, and no prepared data is touched."""
    root = Path(mirror_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root.resolve()}: the offline data mirror is missing (params.yaml `{key}`, "
            "with `data.source: mirror`)"
        )
    for name in names:
        spec = DATASETS.get(name)
        folder = root / spec.mirror_folder
        if not spec.mirror_splits:
            raise FileNotFoundError(
                f"data set {name!r} has no offline mirror; use `data.source: hub` or `data.hub_paths.{name}`"
            )
        if not folder.is_dir() or not any(folder.iterdir()):
            raise FileNotFoundError(
                f"{folder.resolve()}: mirror folder of data set {name!r} is missing or empty "
                f"(params.yaml `{key}` = {mirror_dir})"
            )
        missing = [f for f in spec.mirror_files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{folder.resolve()}: data set {name!r} needs {', '.join(missing)} in its mirror "
                f"folder (params.yaml `{key}` = {mirror_dir})"
            )


def available_splits(spec: DatasetSpec, source: str) -> list[str]:
    """The splits load_split can read for this source (the mirror's for a data set with no hub release)."""
    return list(spec.mirror_splits if source == "mirror" or spec.hub_id is None else spec.hub_splits)


def load_split(
    name: str, split: str, source: str, mirror_dir: str | Path, hub_path: str | None = None
) -> list[dict]:
    """Rows of one split in the internal schema; KeyError if this source lacks the split. A data set with no
    hub release (`hub_id` None: TDEC) is read from the mirror whatever the source."""
    spec = DATASETS.get(name)
    if source == "mirror" or spec.hub_id is None:
        if split not in spec.mirror_splits:
            raise KeyError(
                f"{name}: the mirror has no {split!r} split (has: {', '.join(spec.mirror_splits)})"
            )
        folder = Path(mirror_dir) / spec.mirror_folder
        if not folder.is_dir():
            where = f"; it has no hub release: get it from {spec.release}" if spec.release else ""
            raise FileNotFoundError(
                f"{folder}: mirror folder of data set {name!r} is missing "
                f"(data.mirror_dir = {mirror_dir}){where}"
            )
        rows = spec.mirror_splits[split](folder)
        if not rows:
            raise ValueError(f"{folder}: the mirror's {split!r} split of data set {name!r} has no rows")
        return rows
    if split not in spec.hub_splits:
        raise KeyError(f"{name}: the hub release has no {split!r} split (has: {', '.join(spec.hub_splits)})")
    rows = []
    config, hub_split = spec.hub_location(split)
    for i, raw in enumerate(
        hub_rows(hub_path or spec.hub_id, config, hub_split, spec.hub_revision, spec.hub_data_dir)
    ):
        out = spec.from_hub(raw, i)
        if out is None:
            continue
        rows.extend(out if isinstance(out, list) else [out])
    return rows


LOCAL_FORMATS = (("parquet", "parquet"), ("jsonl", "json"), ("json", "json"), ("csv", "csv"))


def local_hub_file(folder: Path, config: str | None, split: str) -> tuple[Path, str]:
    """(file, builder) of one split in a local folder of the hub's own files: <split>.<ext>, or
    <config>/<split>.<ext> where each split is its own config (TOFU's forget10/train)."""
    names = ([f"{config}/{split}", config] if config else []) + [split]
    for name in names:
        for ext, builder in LOCAL_FORMATS:
            if (folder / f"{name}.{ext}").is_file():
                return folder / f"{name}.{ext}", builder
    raise FileNotFoundError(
        f"{folder}: none of {', '.join(n + '.{parquet,jsonl,json,csv}' for n in names)} in this "
        "hub-format folder (data.hub_paths)"
    )


def hub_rows(
    path: str,
    config: str | None,
    split: str,
    revision: str | None = None,
    data_dir: str | None = None,
    streaming: bool = False,
):
    """Rows as `datasets` serves them (no loading scripts: `datasets` 4+ refuses them); a local folder of the
    hub's files stands in (see `local_hub_file`). A hub that cannot be reached raises HubError, one line."""
    import datasets  # heavy: imported only on the hub path

    local = Path(path)
    if local.is_dir():
        f, builder = local_hub_file(local, config, split)
        return datasets.load_dataset(builder, data_files={split: str(f)}, split=split, streaming=streaming)
    try:
        return datasets.load_dataset(
            path,
            None if data_dir else config,
            split=split,
            revision=revision,
            data_dir=data_dir,
            streaming=streaming,
        )
    except (ConnectionError, OSError, RuntimeError, ValueError) as e:  # offline, unreachable, not cached, a
        # loading script, an unknown config or split
        where = f"{path}" + (f" [{config}]" if config else "") + (f"@{revision}" if revision else "")
        raise HubError(f"data set {where} split {split!r}: {one_line(e)}") from None


def training_text(row: dict, kind: str) -> str:
    """The text a language model is trained on (and exposure is measured on) for one row."""
    if kind == "multiple_choice":
        return row["query"] + row["choices"][row["gold"]]
    if kind == "cloze":
        return row["context"] + " " + row["continuation"]
    if kind == "qa":
        return f"Question: {row['question']}\nAnswer: {row['answer']}"
    if kind == "text":
        return row["text"]
    raise ValueError(f"rows of kind {kind!r} have no training text")

"""Deterministic splits: train/test for the tasks (derived where a split is missing) and the
disjoint forget cycles of `cycle_size` training samples that unlearning removes one cycle at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from unlearn_repro.data.registry import DATASETS, available_splits, choose_source, load_split
from unlearn_repro.io import atomic_dir, file_hash, git_commit, read_json, write_json, write_jsonl

DATA_SEED = 1234  # fixed: the task splits never change with the experiment seeds


def derive_split(n: int, test_fraction: float, seed: int = DATA_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded permutation of range(n) cut into (train, test); test gets round(n * fraction) rows."""
    if n < 2:
        raise ValueError(f"cannot derive a train/test split from {n} rows")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def cap(rows: list, limit: int | None, seed: int = DATA_SEED) -> list:
    """At most `limit` rows, a seeded random subset kept in the original order."""
    if limit is None or len(rows) <= limit:
        return rows
    keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])
    return [rows[i] for i in keep]


def prepare_task(name: str, cfg, out_dir: str | Path) -> dict:
    """Write <out_dir>/{train,test}.jsonl + meta.json for one task; return the meta."""
    d = cfg.data
    source = choose_source(d.source, d.mirror_dir)
    spec = DATASETS.get(name)
    have = available_splits(spec, source)
    hub_path = d.hub_paths.get(name)

    def load(split):
        return load_split(name, split, source, d.mirror_dir, hub_path)

    test_split = "test" if "test" in have else "validation" if "validation" in have else None
    how = {}
    if "train" in have and test_split is not None:
        train, test = load("train"), load(test_split)
        how = {"train": "train", "test": test_split}
    else:
        only = test_split or have[0]
        rows = load(only)
        tr, te = derive_split(len(rows), d.test_fraction)
        train, test = [rows[i] for i in tr], [rows[i] for i in te]
        how = {
            "train": f"derived from {only}",
            "test": f"derived from {only}",
            "derivation": f"seeded permutation (seed {DATA_SEED}), test fraction {d.test_fraction}",
        }
    n_train_full, n_test_full = len(train), len(test)
    kept = cap(list(range(len(train))), d.max_train)
    # never trained on: training rows left out by the cap, and every test row (exposure's `heldout` reference)
    left_out = set(range(len(train))) - set(kept)
    heldout = [r for i, r in enumerate(train) if i in left_out] + test
    train, test = [train[i] for i in kept], cap(test, d.max_test)
    meta = {
        "dataset": name,
        "kind": spec.kind,
        "source": source,
        "origin": str(Path(d.mirror_dir) / spec.mirror_folder)
        if source == "mirror"
        else (hub_path or spec.hub_id),
        "splits": how,
        "rows_before_cap": {"train": n_train_full, "test": n_test_full},
        "rows": {"train": len(train), "test": len(test), "heldout": len(heldout)},
        "caps": {"train": d.max_train, "test": d.max_test},
        "git_commit": git_commit(),
    }
    _write_prepared(out_dir, train, test, heldout, meta)
    return meta


def prepare_corpus(name: str, cfg, out_dir: str | Path) -> dict:
    """Write a text corpus as <out_dir>/{train,test,heldout}.jsonl: train (pretraining), test, and heldout
    (= test: the rows never trained on, the same file every prepared data set has)."""
    d = cfg.data
    source = choose_source(d.source, d.mirror_dir)
    spec = DATASETS.get(name)
    have = available_splits(spec, source)
    train_split = "train" if "train" in have else "validation"
    test_split = "test" if "test" in have else "validation"
    hub_path = d.hub_paths.get(name)
    train = load_split(name, train_split, source, d.mirror_dir, hub_path) if train_split in have else []
    test = load_split(name, test_split, source, d.mirror_dir, hub_path)
    meta = {
        "dataset": name,
        "kind": spec.kind,
        "source": source,
        "splits": {"train": train_split, "test": test_split},
        "rows": {"train": len(train), "test": len(test), "heldout": len(test)},
        "git_commit": git_commit(),
    }
    _write_prepared(out_dir, train, test, test, meta)
    return meta


def prepare(name: str, cfg, out_dir: str | Path) -> dict:
    """Prepare one data set and keep a copy of it as the last good data, outside the job's declared outputs
    (`.<name>.last_good` beside them). A re-preparation that fails leaves its outputs missing, never the old
    data in their place: Snakemake would record the failed job as finished with the new params."""
    out_dir = Path(out_dir)
    backup = out_dir.with_name(f".{out_dir.name}.last_good")
    try:
        meta = (prepare_corpus if DATASETS.get(name).kind == "text" else prepare_task)(name, cfg, out_dir)
    except BaseException:
        if backup.is_dir():
            print(
                f"[prepare-data] failed: {out_dir} is left for the rerun to make; the last good data is in "
                f"{backup}",
                flush=True,
            )
        raise
    with atomic_dir(backup) as tmp:
        shutil.copytree(out_dir, tmp, dirs_exist_ok=True)
    return meta


def mirror_content(mirror_dir: str | Path, name: str) -> dict[str, str]:
    """The identity of a data set's mirror copy: {file: sha256} of the files its readers open (every file of
    its folder where the registry names none), so a mirror moved or named by another path reruns nothing."""
    folder = Path(mirror_dir) / DATASETS.get(name).mirror_folder
    files = DATASETS.get(name).mirror_files or sorted(
        str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()
    )
    return {f: file_hash(folder / f) for f in files}


def data_identity(cfg, name: str, keys) -> dict:
    """What data read from the mirror or the hub is made of (a rule's rerun trigger): the `keys` of data:, and
    the mirror's content, never its path: the same mirror named by another path, or moved, reruns nothing."""
    d = {k: v for k, v in cfg.data.to_dict().items() if k in keys}
    if choose_source(cfg.data.source, cfg.data.mirror_dir) == "mirror":
        d["mirror_content"] = mirror_content(cfg.data.mirror_dir, name)
    return d


def _write_prepared(out_dir: str | Path, train: list, test: list, heldout: list, meta: dict) -> None:
    """All files of a prepared data set appear together (one rename) or not at all."""
    with atomic_dir(out_dir) as tmp:
        for split, rows in (("train", train), ("test", test), ("heldout", heldout)):
            write_jsonl(tmp / f"{split}.jsonl", rows)
        write_json(tmp / "meta.json", meta)


def forget_cycles(n_train: int, cycle_size: int, max_cycles: int, seed: int) -> list[list[int]]:
    """`max_cycles` disjoint, seeded sets of `cycle_size` training indices; cycle k's D- is cycles[:k]."""
    if max_cycles * cycle_size >= n_train:
        raise ValueError(
            f"{max_cycles} cycles of {cycle_size} samples need more than {n_train} training rows "
            "(some must remain as D+)"
        )
    perm = np.random.default_rng(seed).permutation(n_train)
    return [sorted(perm[k * cycle_size : (k + 1) * cycle_size].tolist()) for k in range(max_cycles)]


def write_forget_cycles(cfg, dataset: str, data_dir: str | Path, seed: int, out: str | Path) -> None:
    """A task's forget cycles for one seed, with what made them (the splits rule's output)."""
    n = read_json(Path(data_dir) / "meta.json")["rows"]["train"]
    u = cfg.unlearn
    print(f"[splits] cycle_size {u.cycle_size}, max_cycles {u.max_cycles}", flush=True)
    write_json(
        out,
        {
            "dataset": dataset,
            "seed": seed,
            "n_train": n,
            "cycle_size": u.cycle_size,
            "cycles": forget_cycles(n, u.cycle_size, u.max_cycles, seed),
        },
    )

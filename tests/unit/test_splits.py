import numpy as np
import pytest

from unlearn_repro.data.splits import cap, derive_split, forget_cycles


def test_forget_cycles_are_disjoint_sized_and_seeded():
    cycles = forget_cycles(1000, 128, 6, seed=3)
    flat = [i for c in cycles for i in c]
    assert [len(c) for c in cycles] == [128] * 6 and len(set(flat)) == len(flat) and max(flat) < 1000
    assert cycles == forget_cycles(1000, 128, 6, seed=3)
    assert cycles != forget_cycles(1000, 128, 6, seed=4)
    # more cycles extend the fewer: cycle k is the same whatever max_cycles is
    assert forget_cycles(1000, 128, 2, seed=3) == cycles[:2]


def test_forget_cycles_need_a_retain_set():
    with pytest.raises(ValueError, match="need more than 256"):
        forget_cycles(256, 128, 2, seed=0)


def test_derive_split_and_cap():
    tr, te = derive_split(10, 0.2)
    assert len(te) == 2 and sorted(np.concatenate([tr, te]).tolist()) == list(range(10))
    assert cap(list(range(10)), None) == list(range(10))
    kept = cap(list(range(100)), 7)
    assert len(kept) == 7 and kept == sorted(kept) and kept == cap(list(range(100)), 7)


def test_data_identity_is_the_mirror_content_not_its_path(tmp_path, mirror, monkeypatch):
    """The rerun trigger of a prepared data set: the same files under another path are the same data."""
    import shutil

    from unlearn_repro.config import Frozen
    from unlearn_repro.data.splits import data_identity

    shutil.copytree(mirror / "lambada", tmp_path / "m" / "lambada")
    monkeypatch.chdir(tmp_path)

    def identity(mirror_dir):
        return data_identity(
            Frozen({"data": {"source": "mirror", "mirror_dir": str(mirror_dir), "max_train": 9}}),
            "lambada",
            ("source", "max_train"),
        )

    same = identity("m")
    assert same == identity(tmp_path / "m") == identity(mirror) and "mirror_dir" not in same
    assert same["max_train"] == 9 and set(same["mirror_content"]) == {"test.jsonl"}
    with open(tmp_path / "m/lambada/test.jsonl", "a") as f:
        f.write("\n")
    assert identity("m") != same

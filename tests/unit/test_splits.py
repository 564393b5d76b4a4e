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

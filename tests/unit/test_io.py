"""Atomic writes keep the umask's permissions; the run-directory lock."""

import os
import stat

import pytest

from unlearn_repro.io import DirLock, LockLost, atomic_dir, write_text


@pytest.fixture
def group_umask():
    old = os.umask(0o002)  # a shared group or SLURM project directory
    yield
    os.umask(old)


def test_atomic_outputs_get_the_umask_permissions(tmp_path, group_umask):
    """mkstemp / mkdtemp make 0600 / 0700: collaborators could not read the results."""
    write_text(tmp_path / "a.json", "{}")
    with atomic_dir(tmp_path / "d") as tmp:
        write_text(tmp / "x.jsonl", "")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o775
    assert stat.S_IMODE((tmp_path / "d/x.jsonl").stat().st_mode) == 0o664


def test_a_newer_dir_lock_takes_over_and_the_old_holder_notices(tmp_path, capsys):
    with DirLock(tmp_path) as old:
        old.check()
        with DirLock(tmp_path) as new:
            assert f"took over from job pid {os.getpid()}" in capsys.readouterr().out
            new.check()
            with pytest.raises(LockLost, match="stopping without writing"):
                old.check()
            (tmp_path / ".lock").unlink()  # the directory was cleared
            with pytest.raises(LockLost, match=str(tmp_path / ".lock")):
                new.check()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stray lock file of the take-over


def test_a_released_dir_lock_leaves_an_empty_file(tmp_path):
    """The lock file stays (removing it would race a waiting job) but empty: a DVC-tracked directory's hash
    does not change with the pid of the job that last ran there."""
    with DirLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
    assert (tmp_path / ".lock").read_text() == ""

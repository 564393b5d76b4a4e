"""Atomic artifact writing, provenance (git commit, file hashes) and small json helpers."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unlearn_repro.paths import ROOT


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp dir beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0700: collaborators could not read the results
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class LockLost(RuntimeError):
    """This job no longer holds its directory's lock: it must stop without writing."""


class DirLock:
    """One job at a time in a directory: fcntl.flock on <dir>/.lock, with the holder's pid inside (the kernel
    releases it when the holder dies, even by kill -9). The newest job wins: one that finds the lock held (by
    a left-over job of a killed snakemake: Snakemake itself never runs a job twice at once) takes it over by
    putting a new lock file in place, and the old holder, which calls `check()` before each write, stops
    without writing; a job never mixes its writes with another's."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.path = self.dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> DirLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            fd = self._take_over()
            print(
                f"[lock] {self.dir}: took over from job pid {holder} (left over from a killed snakemake?); "
                "it stops before its next write (docs/faults.md)",
                flush=True,
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def _take_over(self) -> int:
        """A new lock file, locked, renamed over the held one in one step."""
        fresh = self.dir / f".lock.new-{os.getpid()}"
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(fresh, self.path)
        return fd

    def check(self) -> None:
        """Raise LockLost unless <dir>/.lock is still the file this job locked."""
        try:
            same = os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise LockLost(
                f"{self.path}: this job lost its lock (a newer job took the directory over, or it was "
                "removed): stopping without writing"
            )

    def __exit__(self, *exc) -> None:
        os.ftruncate(self.fd, 0)  # an empty file left: the directory's content (a DVC output) does not vary
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None


def umask() -> int:
    """The process umask: from /proc (thread-safe), else by setting it and back (there is no getter)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temp file + os.replace)."""
    write_bytes(path, text.encode())


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o666 & ~umask())  # mkstemp makes it 0600, whatever the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json_text(obj))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (run the rule that makes it first)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def write_jsonl(path: str | Path, rows) -> None:
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not valid JSON: {e}") from None
    return rows


def map_jsonl(path: str | Path, normalize) -> list:
    """normalize(row, i) over a jsonl file's rows (None results dropped). A row missing a field names the
    file, the line and the field; an empty file names the file."""
    path = Path(path)
    out, i = [], 0
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                x = normalize(row, i)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: not valid JSON: {e}") from None
            except (KeyError, IndexError, TypeError) as e:
                fields = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise ValueError(
                    f"{path}:{line_no}: bad row, missing or malformed field {e} (has: {fields})"
                ) from None
            i += 1
            if x is not None:
                out.append(x)
    if i == 0:
        raise ValueError(f"{path}: the file is empty (no rows)")
    return out


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialize {type(o).__name__}")


def file_hash(path: str | Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str:
    """The code version of an artifact: HEAD's hash, '+dirty' when src/ has uncommitted changes; in a copy
    without .git (make verify's workspace), the commit the copy was made from (UNLEARN_GIT_COMMIT)."""
    if os.environ.get("UNLEARN_GIT_COMMIT"):
        return os.environ["UNLEARN_GIT_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

"""allocator.keep_freed_memory against the kernel's own count of page faults: a 48 MiB block freed and
allocated again is served from the process's memory (no new faults) once the thresholds are set, and from
fresh pages (a fault per 4 KiB page) without them. Each case in a process of its own: malloc's state."""

import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import ctypes, resource, sys
from unlearn_repro import allocator
ok = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 48 << 20

def touched():
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)  # every page written, as a tensor's values would be
    return p

libc.free(touched())
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
libc.free(touched())
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    ok, faults = r.stdout.split()
    return ok, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_a_freed_block_is_reused_instead_of_faulted_in_again():
    pages = (48 << 20) // 4096
    assert _faults("default")[1] > pages // 2  # fresh zeroed pages from the kernel
    ok, faults = _faults("keep")
    assert ok == "True" and faults < pages // 50

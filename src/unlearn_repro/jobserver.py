"""A fork server for the pipeline's jobs: torch, transformers and this package imported once per workflow run.

Every job is a `python -m unlearn_repro <command>` process, and importing torch + transformers costs 3-5 s of
CPU before its first model step: about a third of a `ci` run's CPU time. The workflow starts this server once
(`onstart` in the Snakefile, without waiting for its preload: jobs before it accepts run in their own
process); each job's client (`python -m unlearn_repro.job ...`, stdlib only) hands it the
command line, working directory, environment and its own stdin / stdout / stderr (SCM_RIGHTS), and the server
forks a child that runs the command exactly as `python -m unlearn_repro` would, writing straight into the
job's log. The child's exit status is the client's.

Why a fork is the same computation: the parent only imports (no torch op runs, no thread pool or CUDA context
exists before the fork); the child gets the job's environment and working directory before the command
starts, sets its threads, seeds and device itself as a fresh process does, and CUDA is first touched in the
child. Faults: the client that cannot reach a server runs the command in-process (the same code); a client
that dies takes its child with it (the connection closes and the server kills the child's process group);
a child whose server dies is killed by the kernel (PR_SET_PDEATHSIG); the server exits with its workflow
(its parent's pid) or after `IDLE_S` without a job.
"""

from __future__ import annotations

import array
import atexit
import ctypes
import importlib
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from unlearn_repro import numerics  # stdlib only: the client (job.py) imports this module

SOCKET_ENV = "UNLEARN_JOBSERVER"
# the fewest jobs a run starts a server for: its preload (~10 s of CPU) costs about what three jobs spend
# importing torch and transformers on their own (~3 s each), so a run of fewer (a data preparation, a
# report, most of the tests' small DAGs) runs each job in its own process
MIN_JOBS = 4
IDLE_S = 3600.0
REQUEST_TIMEOUT_S = 10.0
# imported before the first fork: what the jobs would otherwise each import
PRELOAD = (
    "torch",
    "transformers",
    "scipy.stats",  # imported at first use by the statistics (report/stats.py, metrics/tofu.py)
    "runpy",
    "unlearn_repro.cli",
    "unlearn_repro.pipeline.base_models",
    "unlearn_repro.pipeline.unlearning",
    "unlearn_repro.pipeline.evaluation",
    "unlearn_repro.pipeline.tdec",
    "unlearn_repro.pipeline.tofu",
    "unlearn_repro.pipeline.memorization",
    "unlearn_repro.pipeline.privacy",
    "unlearn_repro.pipeline.discussions",
    # imported lazily inside a job, ~1.5 s of CPU per job when each child imports them itself (measured on the
    # embedded evaluate job: 1,862 modules after the list above): MLflow and its SQL store (every job logs a
    # run), torch._dynamo (torch.use_deterministic_algorithms imports it), the model classes, peft, opacus.
    # None starts a thread or opens a file at import (tests/unit/test_jobserver.py checks the thread count).
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "torch._dynamo",
    "transformers.models.gpt_neo.modeling_gpt_neo",
    "transformers.models.opt.modeling_opt",
    "peft",
    "opacus",
)
# the classes the jobs take from transformers' lazy top module (`transformers.AutoModelForCausalLM`, ...),
# resolved before the fork: the modules that use them import transformers inside those functions, so that a
# Snakefile planning the jobs never loads it, and a forked job finds them loaded
PRELOAD_NAMES = ("AutoModelForCausalLM", "AutoTokenizer", "PreTrainedTokenizerFast", "GenerationMixin",
                 "GPTNeoConfig", "OPTConfig", "LlamaConfig")  # fmt: skip


def _send_msg(sock: socket.socket, obj, fds=()) -> None:
    data = json.dumps(obj).encode()
    header = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(sock, [header], list(fds))
        sock.sendall(data)
    else:
        sock.sendall(header + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        buf += chunk
    return buf


def _recv_request(sock: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(sock, 4, 3)
    if len(header) < 4:
        header += _recv_exact(sock, 4 - len(header))
    (n,) = struct.unpack("!I", header)
    return json.loads(_recv_exact(sock, n)), fds


# --- the server --------------------------------------------------------------------------------------------
def serve(path: str, parent_pid: int | None = None, idle_s: float = IDLE_S) -> None:
    """Preload, listen on the Unix socket `path`, fork a child per request until the parent exits or idles."""
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.{os.getpid()}.tmp"
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)  # clients see the socket only when it accepts
    sel = selectors.DefaultSelector()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "child")
    jobs: dict[int, socket.socket] = {}  # child pid -> its client's connection
    last = time.monotonic()
    try:
        while True:
            for key, _ in sel.select(timeout=5.0):
                if key.data == "accept":
                    pid, conn = _accept(listener, jobs)
                    if pid:
                        jobs[pid] = conn
                        sel.register(conn, selectors.EVENT_READ, pid)
                elif key.data == "child":
                    os.read(wake_r, 4096)
                else:  # a client spoke or went away: its job is abandoned
                    sel.unregister(key.fileobj)
                    _kill(key.data)
            for pid, status in _reaped(jobs):
                conn = jobs.pop(pid)
                try:
                    sel.unregister(conn)
                except KeyError:  # abandoned: unregistered when its client went away
                    pass
                _finish(conn, status)
            if jobs:
                last = time.monotonic()
            if (parent_pid and not _alive(parent_pid)) or (not jobs and time.monotonic() - last > idle_s):
                return
    finally:
        for pid in jobs:
            _kill(pid)
        _remove(path)


def _remove(path: str) -> None:
    """Unlink the socket `path` if it is there: the server and `stop` both remove it, in either order."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _preload() -> None:
    numerics.pin()  # the pinned CPU code path, before torch is imported
    for key in THREAD_ENV:  # the libraries start with one thread; each job sets its own
        os.environ[key] = "1"
    before = set(os.environ)
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # the job that needs it fails the same way, in its own log
            print(f"[jobserver] preload {name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    for name in PRELOAD_NAMES:
        try:
            getattr(sys.modules["transformers"], name)
        except Exception as e:
            print(
                f"[jobserver] preload transformers.{name}: {type(e).__name__}: {e}",
                file=sys.stderr,
                flush=True,
            )
    PRELOAD_ENV.update({k: v for k, v in os.environ.items() if k not in before})


# variables a preloaded library set at import (torch._dynamo: TORCHINDUCTOR_CACHE_DIR): a fresh process's
# import sets them the same way, so a job without them is no mismatch, and its child gets them
PRELOAD_ENV: dict[str, str] = {}


# read once at import by the preloaded libraries: a job whose value differs runs in its own process
IMPORT_TIME_ENV = (
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TOKENIZERS_",
    "TORCH",
    "PYTORCH_",
    "MKL_",
    "ATEN_",
    "ONEDNN_",
    "DNNL_",
    "OMP_",
    "KMP_",
    "OPENBLAS_",
    "CUDA_",
    "PYTHON",
    "UNLEARN_NUMERICS",
)


# Snakemake sets these per job from the rule's `threads`; the child applies them to the loaded libraries
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "GOTO_NUM_THREADS",
)


def _env_mismatch(env: dict) -> str | None:
    """The first import-time variable whose value in the job differs from the server's, if any."""
    keys = {k for k in set(env) | set(os.environ) if k.startswith(IMPORT_TIME_ENV) and k not in THREAD_ENV}
    keys -= {k for k in PRELOAD_ENV if k not in env}
    return next((k for k in sorted(keys) if env.get(k) != os.environ.get(k)), None)


def _accept(listener: socket.socket, jobs: dict) -> tuple[int | None, socket.socket | None]:
    """Start the job a client asks for: (child pid, its connection), or (None, None) when it cannot be started
    here. Nothing one client does (dying mid-request, a malformed request, a failed fork) stops the server or
    the jobs of the others: a client that gets no reply runs its job itself."""
    try:
        conn, _ = listener.accept()
    except OSError as e:  # out of descriptors: the client falls back
        print(f"[jobserver] accept: {e}", file=sys.stderr, flush=True)
        return None, None
    fds: list[int] = []
    try:
        conn.settimeout(REQUEST_TIMEOUT_S)  # a stalled client must not hold up the others
        request, fds = _recv_request(conn)
        if (key := _env_mismatch(request["env"])) is not None:
            _send_msg(conn, {"fallback": f"{key} differs from the job server's"})
            raise _NoJob
        pid = os.fork()
    except Exception as e:
        if not isinstance(e, _NoJob):
            print(f"[jobserver] a request failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        for fd in fds:
            os.close(fd)
        conn.close()
        return None, None
    if pid == 0:
        listener.close()
        for other in jobs.values():
            other.close()
        _run_child(request, fds, conn)
    try:
        os.setpgid(pid, pid)  # the job's own process group at once (the child sets it too): a kill reaches it
    except OSError:  # already set by the child, or the child is gone
        pass
    for fd in fds:
        os.close(fd)
    conn.settimeout(None)
    return pid, conn


class _NoJob(Exception):
    """The request was answered without starting a job."""


def _run_child(request: dict, fds: list[int], conn: socket.socket) -> None:
    """The job: its own session, its client's fds as 0/1/2, its environment and directory; then the CLI."""
    code = 1
    try:
        conn.close()
        os.setpgid(0, 0)  # its own process group: killing the job kills what it started
        _die_with_parent()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        for key, value in PRELOAD_ENV.items():
            os.environ.setdefault(key, value)
        _limit_threads(os.environ)
        _fresh_random_state()
        code = _run_module(request.get("module", "unlearn_repro"), request["argv"])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        # Snakemake's benchmark files measure the client; the job's own CPU time and peak memory are here
        print(
            f"[job] cpu {usage.ru_utime + usage.ru_stime:.1f} s, max rss {usage.ru_maxrss / 1024:.0f} MB "
            "(forked by the job server)",
            file=sys.stderr,
        )
    finally:
        try:
            atexit._run_exitfuncs()  # what the interpreter runs at a normal exit (os._exit skips it)
        except BaseException:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _fresh_random_state() -> None:
    """The random states a new process starts with: torch's default seed (a fresh process's first draws are
    the same every run), numpy's global generator from the OS (as a fresh process's); Python's `random` is
    reseeded at fork by the interpreter itself."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.random.default_generator.manual_seed(torch.initial_seed())
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _limit_threads(env) -> None:
    """The job's thread count in the OpenMP and BLAS libraries the server loaded (a fresh process reads it
    from its environment when they load); torch's own pool is set by the CLI from `threads`."""
    n = next((env[k] for k in THREAD_ENV if env.get(k, "").isdigit()), None)
    if n is not None:
        # not stdlib: the job client (job.py) imports this module, stdlib only
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(n))


def _run_module(module: str, argv: list[str]) -> int:
    """`python -m MODULE ARGV` in this process: its exit status as the interpreter would give it."""
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _reaped(jobs: dict) -> list[tuple[int, int]]:
    done = []
    for pid in list(jobs):
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got, status = pid, 1 << 8
        if got:
            done.append((pid, os.waitstatus_to_exitcode(status)))
    return done


def _finish(conn: socket.socket, code: int) -> None:
    try:
        _send_msg(conn, {"exit": code if code >= 0 else 128 - code})
    except OSError:
        pass
    conn.close()


def _kill(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the group; the child alone if its group is not set yet
        try:
            kill(pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- the client --------------------------------------------------------------------------------------------
def submit(path: str, argv: list[str], module: str = "unlearn_repro") -> int | None:
    """Run `python -m MODULE ARGV` through the server at `path`: its exit status, or None when there is no
    server to run it."""
    numerics.pin()  # the environment a fresh process gives torch
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        print(
            f"[job] runs in its own process: no job server accepts at {path} (yet)",
            file=sys.stderr,
            flush=True,
        )
        return None
    umask = os.umask(0)
    os.umask(umask)
    with sock:
        try:
            _send_msg(
                sock,
                {"module": module, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask},
                fds=array.array("i", [0, 1, 2]),
            )
        except OSError:
            return None
        try:
            (n,) = struct.unpack("!I", _recv_exact(sock, 4))
            reply = json.loads(_recv_exact(sock, n))
        except (ConnectionError, OSError, ValueError):
            print("error: the job server ended before this job did (rerun it)", file=sys.stderr, flush=True)
            return 1
    if "fallback" in reply:
        print(f"[job] runs in its own process: {reply['fallback']}", file=sys.stderr, flush=True)
        return None
    return int(reply["exit"])


class Workflow:
    """The server of one local workflow run: `start()` in Snakemake's onstart (not for a cluster executor: its
    jobs run elsewhere), `stop()` when it ends. UNLEARN_JOBSERVER=off runs every job as its own process.

    `start()` does not wait for the preload (~10 s of CPU): until the server accepts, a job runs in its own
    process (the client's fallback, the same code), so a run of a few light jobs (data preparation, splits)
    starts at once and one that ends first takes the half-loaded server down with it."""

    def __init__(self):
        self.path = os.path.join(
            tempfile.gettempdir(), f"unlearn-jobs-{os.getpid()}-{os.urandom(4).hex()}.sock"
        )
        self.proc = None

    def start(self, jobs: int | None = None) -> None:
        """`jobs`: how many jobs the run has to run; below MIN_JOBS no server starts (its preload would cost
        more than those jobs' own imports)."""
        if os.environ.get(SOCKET_ENV, "").strip().lower() in ("off", "0", "false", "no"):
            return
        if jobs is not None and jobs < MIN_JOBS:
            os.environ.pop(SOCKET_ENV, None)  # not an outer run's server: this run's jobs start on their own
            print(
                f"[jobserver] {jobs} job(s) to run: each in its own process (a server from {MIN_JOBS})",
                file=sys.stderr,
                flush=True,
            )
            return
        self.proc = spawn(self.path, os.getpid())
        os.environ[SOCKET_ENV] = self.path
        print(
            f"[jobserver] jobs fork from server {self.proc.pid} ({self.path}) once it has preloaded; "
            "until then each runs in its own process",
            file=sys.stderr,
            flush=True,
        )

    def stop(self) -> None:
        stop(self.proc.pid if self.proc else None, self.path)


def spawn(path: str, parent_pid: int) -> subprocess.Popen:
    """Start a server for this workflow run; it listens at `path` once its preload is done."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    _remove(path)
    return subprocess.Popen(
        [sys.executable, "-m", "unlearn_repro.jobserver", path, str(parent_pid)],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def start(path: str, parent_pid: int, wait_s: float = 120.0) -> int | None:
    """`spawn`, then wait until the server accepts: its pid, or None if it did not start."""
    proc = spawn(path, parent_pid)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(path):
            return proc.pid
        time.sleep(0.1)
    proc.kill()
    return None


def end_idle_timers() -> None:
    """At the end of a run (the Snakefile's onsuccess / onerror): cancel Snakemake's pending re-selection.
    Its scheduler re-selects jobs on a non-daemon threading.Timer of `max-jobs-per-timespan`'s timespan (20 s
    in profiles/default), so a finished run otherwise waits up to that long before its process exits: in
    every small DAG (a data preparation, most of the tests) longer than its jobs ran."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def stop(pid: int | None, path: str) -> None:
    """End the server `pid` and remove its socket."""
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _remove(path)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)

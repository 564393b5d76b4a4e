"""The job server (jobserver.py): a job forked from it computes what a fresh `python -m` process computes,
in the client's directory, environment and file descriptors, with the client's exit status; a killed client
takes its job with it; a client without a usable server runs the job itself."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT
from unlearn_repro import jobserver

MODULE = "tests.jobserver_job"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env_before = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    path = str(tmp_path_factory.mktemp("js") / "server.sock")
    pid = jobserver.start(path, os.getpid())
    assert pid, "the job server did not start"
    yield path
    jobserver.stop(pid, path)
    os.environ.clear()
    os.environ.update(env_before)


def _client(path, *argv, threads="1", mark="m", cwd=None, env=None):
    code = (
        f"import sys; from unlearn_repro.jobserver import submit; r = submit({path!r}, {list(argv)!r}, "
        f"{MODULE!r}); print('FALLBACK' if r is None else '', file=sys.stderr); sys.exit(r or 0)"
    )
    env = {**os.environ, "JOB_MARK": mark, "OMP_NUM_THREADS": threads, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.umask(0o027),
    )


def _fresh(*argv, threads="1", mark="m", cwd=None):
    env = {**os.environ, "JOB_MARK": mark, "OMP_NUM_THREADS": threads}
    return subprocess.run(
        [sys.executable, "-m", MODULE, *argv],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=120,
        preexec_fn=lambda: os.umask(0o027),
    )


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_forked_job_computes_what_a_fresh_process_computes(server, tmp_path, threads):
    forked = _client(server, threads=threads, mark="a", cwd=tmp_path)
    fresh = _fresh(threads=threads, mark="a", cwd=tmp_path)
    assert forked.returncode == fresh.returncode == 0, forked.stderr + fresh.stderr
    assert "FALLBACK" not in forked.stderr and "forked by the job server" in forked.stderr
    assert forked.stdout == fresh.stdout  # the same weights, to the bit
    assert forked.stdout.splitlines()[1] == f"{tmp_path} a 0o27"  # the client's directory, environment, umask


def test_exit_status_and_messages_are_the_clients(server):
    r = _client(server, "exit", "boom: the job failed")
    assert r.returncode == 1 and "boom: the job failed" in r.stderr and "FALLBACK" not in r.stderr


def test_a_killed_client_takes_its_job_with_it(server, tmp_path):
    pid_file = tmp_path / "pid"
    code = (
        f"from unlearn_repro.jobserver import submit; submit({server!r}, ['sleep', {str(pid_file)!r}], "
        f"{MODULE!r})"
    )
    client = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    job = int(pid_file.read_text())
    client.send_signal(signal.SIGKILL)
    client.wait()
    for _ in range(100):
        try:
            os.kill(job, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"job {job} outlived its killed client")


def test_without_a_usable_server_the_client_runs_the_job_itself(server, tmp_path):
    assert jobserver.submit(str(tmp_path / "none.sock"), []) is None
    # a variable the preloaded libraries read at import differs: the job needs a process of its own
    r = _client(server, env={"HF_HUB_OFFLINE": "1" if os.environ.get("HF_HUB_OFFLINE") != "1" else "0"})
    assert r.returncode == 0 and "FALLBACK" in r.stderr and "HF_HUB_OFFLINE differs" in r.stderr


def test_the_workflow_runs_its_jobs_through_the_server():
    """`python -m unlearn_repro.job` is every rule's command (rules/common.smk), and the Snakefile starts and
    stops one server per run."""
    assert 'CLI = "python -m unlearn_repro.job"' in (ROOT / "rules/common.smk").read_text()
    snakefile = (ROOT / "Snakefile").read_text()
    assert "JOBSERVER.start(jobs=" in snakefile and snakefile.count("JOBSERVER.stop()") == 2


def test_the_workflow_does_not_wait_for_the_preload_and_its_first_jobs_run_on_their_own(monkeypatch, capsys):
    """Workflow.start() returns while the server still imports torch (~10 s of CPU): a job submitted then runs
    in its own process (submit: None, said in the job's log), and stop() takes the half-loaded server down."""
    monkeypatch.setenv(jobserver.SOCKET_ENV, "")  # restored after the test: start() sets it
    workflow = jobserver.Workflow()
    began = time.monotonic()
    workflow.start()
    assert time.monotonic() - began < 2.0 and os.environ[jobserver.SOCKET_ENV] == workflow.path
    assert not os.path.exists(workflow.path)  # still preloading
    assert jobserver.submit(workflow.path, ["--help"]) is None
    assert f"runs in its own process: no job server accepts at {workflow.path}" in capsys.readouterr().err
    workflow.stop()
    assert workflow.proc.wait(timeout=30) == -signal.SIGTERM


def test_a_finished_run_cancels_snakemakes_pending_reselection():
    """Snakemake's scheduler re-selects on a non-daemon Timer of max-jobs-per-timespan's timespan (20 s in
    profiles/default): pending at the end of a run, it would keep the process alive that long."""
    fired = []
    timer = threading.Timer(60.0, lambda: fired.append(1))
    timer.start()
    jobserver.end_idle_timers()
    timer.join(timeout=5.0)
    assert not timer.is_alive() and not fired
    snakefile = (ROOT / "Snakefile").read_text()
    assert snakefile.count("end_idle_timers()") == 2  # onsuccess and onerror


def test_a_run_of_few_jobs_starts_no_server(monkeypatch, capsys):
    """Below MIN_JOBS jobs a server's preload would cost more than it saves: each job runs on its own, not
    on the server an enclosing run named in the environment."""
    monkeypatch.setenv(jobserver.SOCKET_ENV, "/tmp/an-outer-runs-server.sock")
    workflow = jobserver.Workflow()
    workflow.start(jobs=jobserver.MIN_JOBS - 1)
    assert workflow.proc is None and jobserver.SOCKET_ENV not in os.environ
    assert f"{jobserver.MIN_JOBS - 1} job(s) to run: each in its own process" in capsys.readouterr().err
    workflow.stop()  # nothing to stop


def test_a_bad_or_vanished_client_leaves_the_server_and_other_jobs_running(server, tmp_path):
    import json
    import socket
    import struct

    for request in (b"\x00\x00\x00\x05nojson", b"\x00\x00\x00\x02{}"):  # malformed; no env
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(server)
            s.sendall(request)
    # a request the server answers with a fallback, from a client already gone (a broken pipe for the server)
    body = json.dumps(
        {"argv": [], "cwd": str(tmp_path), "umask": 18, "env": {"HF_HOME": "/elsewhere"}}
    ).encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server)
        s.sendall(struct.pack("!I", len(body)) + body)
    r = _client(server)
    assert r.returncode == 0 and "FALLBACK" not in r.stderr and "forked by the job server" in r.stderr, (
        r.stderr
    )


def test_the_preload_imports_every_module_and_starts_no_thread():
    """A fork copies one thread only: a library that started a thread (or failed to import) at preload
    would leave the child without it; MLflow's telemetry (a thread sending records) is off. Run in a process
    of its own, as the server does."""
    code = (
        "import sys, threading\n"
        "from unlearn_repro import jobserver\n"
        "jobserver._preload()\n"
        "missing = [m for m in jobserver.PRELOAD if m not in sys.modules]\n"
        "missing += [n for n in jobserver.PRELOAD_NAMES if n not in vars(sys.modules['transformers'])]\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "print(threading.active_count(), missing, get_telemetry_client())\n"
    )
    # as in a user's shell: MLflow's telemetry turns itself off under pytest or CI, so those variables go
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST") and k not in ("CI", "MLFLOW_DISABLE_TELEMETRY")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "[jobserver] preload" not in r.stderr, r.stderr
    assert r.stdout.split() == ["1", "[]", "None"], r.stdout  # no thread, every module, no telemetry


def test_a_job_skips_dynamos_exit_table_unless_its_log_is_heard():
    """torch._dynamo's exit hook (a compile-time table logged at INFO) is dropped when its logger would not
    emit, and kept when it would (TORCH_LOGS or a user's logging config). Each in a process of its own."""
    code = (
        "import atexit, logging, sys, torch._dynamo.utils as u\n"
        "from unlearn_repro import cli\n"
        "u.compile_times = lambda **kw: print('TABLE') or ''\n"
        "u.log.setLevel(getattr(logging, sys.argv[1]))\n"
        "cli._drop_unheard_exit_hooks()\n"
        "atexit._run_exitfuncs()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    env.pop("TORCH_LOGS", None)
    out = {}
    for level in ("INFO", "WARNING"):
        r = subprocess.run(
            [sys.executable, "-c", code, level], capture_output=True, text=True, env=env, timeout=300
        )
        assert r.returncode == 0, r.stderr
        out[level] = r.stdout.split()
    assert out == {"INFO": ["TABLE"], "WARNING": []}, out


def test_stop_tolerates_a_socket_the_server_removed_first(tmp_path, monkeypatch):
    """On SIGTERM the server unlinks its socket while `stop` does the same: the second one finds it gone
    (a CI run failed on this race in the module fixture's teardown)."""
    sock = tmp_path / "gone.sock"
    sock.touch()

    def seen_then_gone(path):  # the check sees the socket; the server unlinks it before stop() does
        present = os.path.lexists(path)
        if str(path) == str(sock) and present:
            os.unlink(path)
        return present

    monkeypatch.setattr(jobserver.os.path, "exists", seen_then_gone)
    jobserver.stop(None, str(sock))  # no FileNotFoundError
    monkeypatch.undo()
    sock.touch()
    jobserver.stop(None, str(sock))
    assert not sock.exists()  # a socket still there is removed

"""tools/supervisor.py, the one process supervisor of the demo and the tests, on real processes: readiness
by URL and by predicate, a failure naming the log's tail, and a stop that leaves no child of the group."""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

from tools.supervisor import ServiceError, Supervisor, supervised

# a parent that forks a child ignoring nothing, then both sleep; the parent prints when it is up
FAMILY = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']);"
          " print('child', child.pid, flush=True); time.sleep(300)")


def _child_pid(log) -> int:
    for line in log.read_text().splitlines():
        if line.startswith("child "):
            return int(line.split()[1])
    return 0


def test_ready_by_predicate_and_the_stop_leaves_no_child(tmp_path):
    log = tmp_path / "family.log"
    with Supervisor(grace=5) as sup:
        proc = sup.start("family", [sys.executable, "-c", FAMILY], log=log, banner="--- first start",
                         ready=lambda: _child_pid(log) > 0, timeout=30, poll=0.1)
        child = _child_pid(log)
        assert proc.alive() and child in proc.group_pids()
        assert os.getpgid(child) == proc.pid, "the child is in the process group the supervisor started"
    assert not proc.alive()
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert log.read_text().startswith("--- first start\n")


def test_ready_by_url(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    began = time.monotonic()
    with supervised("http server", args, log=tmp_path / "http.log", ready=f"http://127.0.0.1:{port}/",
                    timeout=30, poll=0.1) as proc:
        assert proc.alive()
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    assert not proc.alive()
    assert time.monotonic() - began < 20, "the stop used SIGTERM, not the grace period"


def test_a_process_that_exits_before_ready_is_named_with_its_log_tail(tmp_path):
    log = tmp_path / "broken.log"
    script = "import sys; print('line one'); print('the cause: port 1 refused', file=sys.stderr); sys.exit(3)"
    with Supervisor() as sup, pytest.raises(ServiceError) as err:
        sup.start("broken", [sys.executable, "-c", script], log=log, ready=lambda: False, timeout=30, poll=0.1)
    message = str(err.value)
    assert "broken exited with code 3" in message and str(log) in message
    assert "the cause: port 1 refused" in message


def test_a_timeout_names_the_log_tail_and_stops_the_process(tmp_path):
    log = tmp_path / "slow.log"
    with Supervisor(grace=5) as sup:
        with pytest.raises(ServiceError) as err:
            sup.start("slow", [sys.executable, "-c", "print('still warming up', flush=True); import time; time.sleep(300)"],
                      log=log, ready=lambda: False, timeout=1, poll=0.1)
        assert "not slow ready after 1s" in str(err.value) and "still warming up" in str(err.value)
        assert "slow" not in sup.processes, "a process that never got ready is stopped"


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    log = tmp_path / "stubborn.log"
    sup = Supervisor(grace=1)
    proc = sup.start("stubborn", [sys.executable, "-c", script], log=log, ready=lambda: "up" in log.read_text(),
                     timeout=30, poll=0.1)
    began = time.monotonic()
    sup.stop_all()
    assert not proc.alive() and proc.popen.returncode == -9
    assert time.monotonic() - began < 10


def test_a_name_runs_once(tmp_path):
    with Supervisor(grace=2) as sup:
        sup.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "s.log")
        with pytest.raises(ServiceError, match="sleeper is already running"):
            sup.start("sleeper", [sys.executable, "-c", "pass"], log=tmp_path / "s.log")

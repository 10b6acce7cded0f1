"""The one process supervisor of the demo and the tests: named processes, each in its own process group
with its output in a log file, a readiness check, and a stop that leaves no child behind.

    with Supervisor() as sup:
        server = sup.start("mlflow server", [...], log=logs / "mlflow.log", ready="http://127.0.0.1:5000/health")
        sup.start("worker", [...], log=logs / "worker.log", ready=lambda: registered())
        ...
    # every process group got SIGTERM, then SIGKILL after the grace period

- ``start`` runs the command with ``start_new_session`` (its own process group), appending its stdout
  and stderr to ``log`` (after an optional banner line), and, given ``ready`` (an HTTP URL that must
  answer below 500, or a predicate), waits until it is ready: a process that exits first, or a timeout,
  raises :class:`ServiceError` naming the process, its log and the log's last lines, and the process is
  stopped. A predicate may raise to abandon the start (the process is stopped, the exception propagates).
- ``wait_until`` waits for a condition over several processes (the Airflow services' health), failing
  as soon as any of them exits.
- ``stop`` sends SIGTERM to the process group, waits ``grace`` seconds, then SIGKILLs the group, so
  the children a service forks (gunicorn/uvicorn workers, Spark executors) go with it.
- Every process still running when the interpreter exits is stopped (``atexit``), and SIGTERM (a
  ``kill`` of the demo or of pytest) becomes ``SystemExit(143)`` so that context managers and ``atexit``
  run (installed only where SIGTERM still has its default action, from the main thread).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Ready = str | Callable[[], bool]

_LIVE: weakref.WeakSet[Supervisor] = weakref.WeakSet()
_INSTALLED = False


class ServiceError(RuntimeError):
    """A supervised process did not start, died, or did not become ready; the message names it, its
    log file and the log's last lines."""


def log_tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of ``log`` ('' when it does not exist)."""
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def http_answers(url: str, timeout: float = 3) -> bool:
    """Whether ``url`` answers an HTTP GET with a status below 500."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Process:
    """A started, named process: the leader of its own process group."""

    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        """ServiceError, naming the log and its tail, when the process has exited."""
        if not self.alive():
            raise ServiceError(f"{self.name} exited with code {self.popen.returncode}; log: {self.log}\n"
                               f"{log_tail(self.log)}")

    def group_pids(self) -> set[int]:
        """The process and every descendant still running (psutil)."""
        import psutil

        pids = {self.pid}
        with contextlib.suppress(psutil.NoSuchProcess):
            pids |= {child.pid for child in psutil.Process(self.pid).children(recursive=True)}
        return pids

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the process group, then SIGKILL to it after ``grace`` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # the group may outlive its leader (a child that ignored SIGTERM): SIGKILL whatever is left
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()


class Supervisor:
    """Named processes started together and stopped together (in reverse order of start)."""

    def __init__(self, grace: float = 20) -> None:
        self.grace = grace
        self.processes: dict[str, Process] = {}
        self._lock = threading.Lock()
        _LIVE.add(self)
        _install_exit_handlers()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def start(self, name: str, args: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
              cwd: Path | str | None = None, banner: str | None = None, ready: Ready | None = None,
              timeout: float = 120, poll: float = 0.5) -> Process:
        """Start ``args`` as ``name`` in its own process group, output appended to ``log``; with ``ready``
        wait for it (see the module's docstring). ``env`` is the whole environment (default: this one)."""
        if name in self.processes and self.processes[name].alive():
            raise ServiceError(f"{name} is already running (PID {self.processes[name].pid})")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            if banner:
                out.write(f"{banner}\n".encode())
                out.flush()
            try:
                popen = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
            except OSError as exc:
                raise ServiceError(f"{name} could not be started ({args[0]}): {exc}") from exc
        proc = Process(name, popen, log)
        with self._lock:
            self.processes[name] = proc
        if ready is not None:
            try:
                self.wait_until(ready, timeout=timeout, poll=poll, what=f"{name} ready", watch=[proc])
            except BaseException:
                self.stop(name)
                raise
        return proc

    def wait_until(self, ready: Ready, *, timeout: float, poll: float = 0.5, what: str = "ready",
                   watch: Sequence[Process] | None = None) -> None:
        """Until ``ready`` (a URL answering below 500, or a predicate) holds; ServiceError as soon as a
        watched process (default: all of this supervisor's) exits, or after ``timeout`` seconds."""
        check = (lambda: http_answers(ready)) if isinstance(ready, str) else ready
        watched = list(self.processes.values()) if watch is None else list(watch)
        deadline = time.monotonic() + timeout
        while True:
            for proc in watched:
                proc.check()
            if check():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}: {p.log}\n{log_tail(p.log)}" for p in watched)
                raise ServiceError(f"not {what} after {timeout:.0f}s; logs:\n{logs}")
            time.sleep(poll)

    def check(self) -> None:
        """ServiceError naming the first process that has exited."""
        for proc in list(self.processes.values()):
            proc.check()

    def stop(self, name: str, grace: float | None = None) -> None:
        with self._lock:
            proc = self.processes.pop(name, None)
        if proc is not None:
            proc.stop(self.grace if grace is None else grace)

    def stop_all(self, grace: float | None = None) -> None:
        """Stop every process, the last started first: TERM all groups, wait ``grace`` in all, KILL the rest."""
        with self._lock:
            procs = list(reversed(self.processes.values()))
            self.processes.clear()
        for proc in procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + (self.grace if grace is None else grace)
        for proc in procs:
            proc.stop(max(deadline - time.monotonic(), 0.1))


@contextlib.contextmanager
def supervised(name: str, args: Sequence[str], **kwargs):
    """One process for the length of a ``with`` block: ``Supervisor().start(...)``, stopped on exit."""
    grace = kwargs.pop("grace", 20)
    with Supervisor(grace=grace) as sup:
        yield sup.start(name, args, **kwargs)


def _stop_everything() -> None:
    for sup in list(_LIVE):
        sup.stop_all(grace=5)


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _install_exit_handlers() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    atexit.register(_stop_everything)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)

"""The production services as local processes on loopback, for the integration tests: a Spark
standalone master and worker (from the pyspark package, through scripts/spark-daemon.sh), an
``mlflow server`` backed by PostgreSQL, and for the CeleryExecutor a Redis broker (Debian's
redis-server) and ``airflow celery worker`` processes. Each is a context manager over the project's one process
supervisor (tools/supervisor.py): it starts the process group, waits until it answers, and stops it on
exit; the output goes to a log file the failure names."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tools.supervisor import Process, Supervisor

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def service(name: str, args: list[str], log: Path, ready: str | Callable[[], bool], timeout: float = 120,
            env: dict[str, str] | None = None) -> Iterator[Process]:
    """Run ``args`` under the project's supervisor (tools/supervisor.py) until the block ends, with the
    venv's bin/ first on PATH and the repository as working directory; ``ready`` must hold first."""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **(env or {})}
    with Supervisor(grace=20) as sup:
        yield sup.start(name, args, log=log, env=env, cwd=REPO, ready=ready, timeout=timeout, poll=1)


@contextlib.contextmanager
def spark_standalone(logs: Path, cores: int = 2, memory: str = "3g") -> Iterator[dict]:
    """A Spark master and one worker on loopback; yields the master URL and its web UI's JSON status."""
    port, ui, worker_ui = free_port(), free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    status = f"http://127.0.0.1:{ui}/json/"
    daemon = str(REPO / "scripts" / "spark-daemon.sh")
    env = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_MASTER_HOST": "127.0.0.1",
           # executors import include/ (the scoring UDF) and run the venv's Python
           "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}", "PYSPARK_PYTHON": str(VENV_BIN / "python")}

    def worker_registered() -> bool:
        import httpx

        try:
            return any(w["state"] == "ALIVE" for w in httpx.get(status, timeout=3).json()["workers"])
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    with service("spark master", [daemon, "master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
                 logs / "spark-master.log", status, env=env), \
         service("spark worker", [daemon, "worker", master, "--host", "127.0.0.1", "--cores", str(cores), "--memory",
                                  memory, "--webui-port", str(worker_ui), "--work-dir", str(logs / "spark-work")],
                 logs / "spark-worker.log", worker_registered, env=env):
        yield {"master": master, "status": status}


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path, logs: Path) -> Iterator[str]:
    """``mlflow server`` on loopback over ``backend_store_uri``, serving artifacts from ``artifacts``;
    yields its URL (what MLFLOW_TRACKING_URI is set to)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # no job runner: its eight Huey processes (GenAI jobs, which the pipeline never submits) import mlflow
    # at start and poll for the whole session on a 2-core machine
    with service("mlflow server", args, logs / "mlflow-server.log", f"{url}/health", timeout=180,
                 env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}):
        yield url


@contextlib.contextmanager
def redis_server(logs: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, nothing persisted (the Celery broker of one
    test: no queue shared with another session's Redis on 6379); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found on PATH: the CeleryExecutor test needs Redis as its broker. "
                           "Install Debian's package: apt-get install -y redis-server (scripts/bootstrap.sh does "
                           "it when run as root)")
    port = free_port()

    def answers() -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
        except redis.RedisError:
            return False

    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with service("redis", args, logs / "redis.log", answers, timeout=30):
        yield f"redis://127.0.0.1:{port}/0"


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the test's Celery workers: two workers on one machine
    stand for two machines, so each reports the name it was given (a real worker reports its FQDN)."""
    return os.environ["BATCHML_WORKER_HOSTNAME"]


@contextlib.contextmanager
def celery_workers(names: list[str], env: dict[str, str], logs: Path, concurrency: int = 1) -> Iterator[list[str]]:
    """One ``airflow celery worker`` per name, each reporting that name as the hostname of the task
    instances it runs; ready once Celery logs that the worker is ready. ``env`` holds the Airflow and
    pipeline configuration (the same as the scheduler's, CeleryExecutor and its broker included)."""
    with contextlib.ExitStack() as stack:
        for name in names:
            log = logs / f"celery-{name}.log"

            def ready(log: Path = log) -> bool:
                return log.exists() and " ready." in log.read_text(errors="replace")

            args = ["airflow", "celery", "worker", "--concurrency", str(concurrency),
                    "--celery-hostname", f"{name}@127.0.0.1",
                    "--skip-serve-logs"]  # the task logs are files of the shared AIRFLOW_HOME; no port 8793 twice
            stack.enter_context(service(f"celery worker {name}", args, log, ready, timeout=180, env={
                **env, "BATCHML_WORKER_HOSTNAME": name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.services.worker_hostname",
                "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"}))
        yield list(names)

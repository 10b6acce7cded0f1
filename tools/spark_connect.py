"""`make spark-connect`: a long-lived local Spark Connect server, so Spark tasks skip the JVM start.

    python -m tools.spark_connect [--host 127.0.0.1] [--port 15002] [--master local[2]]

pyspark's package has the server (``jars/spark-connect_2.13-*.jar``) but no start script: this runs
``spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer`` as a supervised
process (tools.supervisor: its own process group, a log under the data root's ``logs/``, ready once
its gRPC port accepts) and stops it, Python workers included, on Ctrl-C. The server's Python
workers run the jobs' Python functions (scoring's ``mapInArrow``), so they get this virtual
environment's interpreter and the repository on ``PYTHONPATH``.

Point the Spark tasks at it with a Spark Connect connection (the provider's ``spark_connect``
type), e.g. ``AIRFLOW_CONN_SPARK_DEFAULT='spark-connect://127.0.0.1:15002'``: plugins/batchml's
SparkJobOperator then runs each job's ``main`` in the task's process on a session of this server
(include.spark.connect_to) instead of spark-submit. spark-submit stays the default.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from include.config import REPO_ROOT
from include.spark import SESSION_CONF

if TYPE_CHECKING:
    from tools.supervisor import Process

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002  # Spark Connect's own default


def server_command(host: str, port: int, master: str = "local[2]", driver_memory: str = "2g") -> list[str]:
    """The spark-submit command line of a Connect server on ``host:port`` with the project's settings."""
    confs = {**SESSION_CONF, "spark.connect.grpc.binding.address": host, "spark.connect.grpc.binding.port": str(port),
             "spark.python.worker.reuse": "true"}
    cmd = ["spark-submit", "--class", SERVER_CLASS, "--name", "batchml spark-connect", "--master", master,
           "--driver-memory", driver_memory]
    for key, value in confs.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd


def server_env(host: str = "127.0.0.1", base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the venv's Python for its workers and the repository importable; on
    loopback, the Spark driver bound to loopback too (elsewhere it keeps the machine's address)."""
    env = dict(os.environ if base is None else base)
    python = REPO_ROOT / ".venv" / "bin" / "python"
    env.setdefault("PYSPARK_PYTHON", str(python if python.exists() else sys.executable))
    paths = [str(REPO_ROOT), str(REPO_ROOT / "plugins")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                                   if p and p not in paths)])
    if host in ("127.0.0.1", "localhost"):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    venv_bin = str(REPO_ROOT / ".venv" / "bin")
    if venv_bin not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    return env


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server(NamedTuple):
    url: str  # sc://host:port
    process: Process

    @property
    def airflow_conn(self) -> str:
        """The ``spark_default`` connection URI (the provider's ``spark_connect`` type) of this server."""
        return "spark-connect://" + self.url.removeprefix("sc://")


def server_log(root: Path) -> Path:
    """Where a server for the data root ``root`` writes its log."""
    return root / "logs" / "spark-connect.log"


@contextlib.contextmanager
def connect_server(log: Path, host: str = "127.0.0.1", port: int | None = None, master: str = "local[2]",
                   driver_memory: str = "2g", timeout: float = 240) -> Iterator[Server]:
    """A Spark Connect server for the length of the block: its ``sc://host:port`` URL and process. A port
    already taken, or a server that exits or is not ready within ``timeout``, raises
    tools.supervisor.ServiceError naming the log and its last lines."""
    from tools.supervisor import ServiceError, supervised

    port = free_port(host) if port is None else port
    if accepts(host, port):
        raise ServiceError(f"{host}:{port} is taken: another Spark Connect server (or something else) listens there")
    with supervised("spark-connect", server_command(host, port, master, driver_memory), log=log, env=server_env(host),
                    cwd=REPO_ROOT, banner=f"--- spark-connect on {host}:{port}", ready=lambda: accepts(host, port),
                    timeout=timeout, grace=10) as process:
        yield Server(f"sc://{host}:{port}", process)


def main(argv: list[str] | None = None) -> int:
    import time

    from include.config import data_root

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="2g")
    args = p.parse_args(argv)
    log = server_log(data_root())
    print(f"starting Spark Connect on {args.host}:{args.port} ({args.master}); log: {log}", flush=True)
    with connect_server(log, args.host, args.port, args.master, args.driver_memory) as server:
        print(f"Spark Connect ready at {server.url}. Point the Spark tasks at it with\n"
              f"  export AIRFLOW_CONN_SPARK_DEFAULT='{server.airflow_conn}'\n"
              "Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                server.process.check()  # ServiceError naming the log when the server died
                time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

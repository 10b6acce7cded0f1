"""One place that configures Spark sessions, for spark-submit jobs, Spark Connect clients and tests
alike, and says how a job reports a failure that a retry cannot fix (:class:`JobFailure`).

A job's ``main`` runs under spark-submit (a classic session in its own JVM) or, when the Airflow
connection is a Spark Connect one, in the task's process inside :func:`connect_to` (a Connect session
of a long-lived server: no JVM start per task). The jobs use only what both kinds of session offer
(no ``sparkContext``, no ``rdd``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Settings every job relies on: UTC day boundaries, parquet timestamps that pandas and pyarrow read
# as-is, and few shuffle partitions (the default 200 dominates the runtime of day-sized jobs).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


# the Spark Connect server (``sc://host:port``) the jobs' sessions use inside connect_to
_REMOTE: ContextVar[str | None] = ContextVar("batchml_spark_remote", default=None)
# pyspark's switch that makes pyspark.sql.functions build Connect columns (pyspark.sql.utils.is_remote)
_CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"


@contextlib.contextmanager
def connect_to(url: str) -> Iterator[None]:
    """Within the block, :func:`get_session` returns a new session of the Spark Connect server at
    ``url`` (``sc://host:port``). pyspark chooses Connect or classic columns process-wide (an
    environment variable), so the block switches it on and restores it after: a classic session in
    the same process (a test's) works again once the block is left."""
    if not url.startswith("sc://"):
        raise ValueError(f"not a Spark Connect URL (sc://host:port): {url!r}")
    before = os.environ.get(_CONNECT_MODE)
    token = _REMOTE.set(url)
    os.environ[_CONNECT_MODE] = "1"
    try:
        yield
    finally:
        _REMOTE.reset(token)
        if before is None:
            os.environ.pop(_CONNECT_MODE, None)
        else:
            os.environ[_CONNECT_MODE] = before


def get_session(app_name: str, master: str | None = None) -> SparkSession:
    """The session of a job: under spark-submit the master comes from the submit command; inside
    :func:`connect_to`, a new session of the Connect server (the server's own settings are static:
    only the ``spark.sql.*`` settings of SESSION_CONF are the session's)."""
    remote = _REMOTE.get()
    if remote is not None:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        builder = ConnectSession.builder.remote(remote).appName(app_name)
        for key, value in SESSION_CONF.items():
            if key.startswith("spark.sql."):
                builder = builder.config(key, value)
        return builder.create()

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# --- how a spark-submit job says that a retry cannot help ------------------------------------------
# A job that meets bad data or a bad configuration / registry state prints one line
# ``BATCHML-ERROR: <kind>: <message>`` (no stack trace), leaves the same as ``_error.json`` in its
# output folder and exits with a code of sysexits.h. plugins/batchml/operators.py maps those codes
# to a failure without retry; any other failure (a lost executor, an unreachable store) is retried.
ERROR_PREFIX = "BATCHML-ERROR"
ERROR_FILE = "_error.json"
EXIT_CODES = {"bad data": 65, "bad configuration": 78, "bad registry state": 78}  # EX_DATAERR, EX_CONFIG
NO_RETRY_EXIT_CODES = frozenset(EXIT_CODES.values())


class JobFailure(Exception):
    """A failure of a job that a retry cannot fix; ``kind`` is a key of EXIT_CODES."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in EXIT_CODES:
            raise ValueError(f"unknown failure kind {kind!r}; known: {sorted(EXIT_CODES)}")
        super().__init__(message)
        self.kind, self.message = kind, message

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]

    def line(self) -> str:
        return f"{ERROR_PREFIX}: {self.kind}: {' '.join(self.message.split())}"


def report_failure(failure: JobFailure, output: Path | None) -> int:
    """Print the failure's one line, write it to ``<output>/_error.json`` for the operator, and return
    the exit code the job must end with."""
    import json
    import sys

    print(failure.line(), file=sys.stderr, flush=True)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / ERROR_FILE).write_text(json.dumps({"kind": failure.kind, "message": failure.message,
                                                     "exit_code": failure.exit_code}))
    return failure.exit_code


def reported_failure(output: Path) -> dict | None:
    """What a failed job reported in ``output`` (kind, message, exit_code), or None."""
    import json

    try:
        return json.loads((output / ERROR_FILE).read_text())
    except (OSError, ValueError):
        return None


# Spark error classes (the ``[CLASS]`` its messages start with) that mean the input files are bad: a
# retry reads the same files and fails the same way. A file that is not there (yet) is retried.
BAD_DATA_ERROR_CLASSES = ("FAILED_READ_FILE", "UNRESOLVED_COLUMN", "DATATYPE_MISMATCH", "CAST_INVALID_INPUT",
                          "CANNOT_MERGE_SCHEMAS", "CANNOT_READ_FILE_FOOTER")
RETRYABLE_ERROR_CLASSES = ("FAILED_READ_FILE.FILE_NOT_EXIST",)
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\] ([^\n]*)")


def classify_spark_error(exc: BaseException) -> JobFailure | None:
    """A :class:`JobFailure` ("bad data") for an error Spark raised on bad input files, its message
    the error class and Spark's own sentence, which names the file (the partition) and the column;
    None for anything else (a lost executor, a missing file, a bug), which the caller re-raises and
    Airflow retries."""
    found = _ERROR_CLASS.search(str(exc))
    if not found:
        return None
    condition, message = found.groups()
    if condition.startswith(RETRYABLE_ERROR_CLASSES) or not condition.startswith(BAD_DATA_ERROR_CLASSES):
        return None
    return JobFailure("bad data", f"Spark {condition}: {message.split(' SQLSTATE:')[0].strip()}")

"""Fresh databases on the machine's PostgreSQL server (127.0.0.1:5432, trust auth; `.ci/run` starts
it when it is not running), one per test or suite, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES = os.environ.get("BATCHML_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_database(prefix: str = "batchml_test") -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database; dropped (connections and all) on exit."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES} is needed for this test (set BATCHML_TEST_POSTGRES): {exc}")
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from include import warehouse

        warehouse.dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

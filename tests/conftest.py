"""Shared fixtures: an isolated data root per test and small simulated histories."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from include.simulator import SimulatorConfig, simulate

REPO = Path(__file__).resolve().parent.parent
SMALL = SimulatorConfig(n_customers=200, n_terminals=400, n_days=50, start_date=dt.date(2026, 3, 1), seed=7)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """A fresh data lake for one test; include.config.data_root() follows the environment."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("BATCHML_DATA_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def small_sim():
    """50 days, 200 customers, 400 terminals: small enough for brute-force reference computations."""
    return simulate(SMALL)


@pytest.fixture(scope="session")
def spark():
    from include.spark import get_session

    os.environ.setdefault("PYSPARK_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    session = get_session("batchml-tests", master="local[2]")
    yield session
    session.stop()
    # py4j logs its shutdown from a finaliser, after pytest has closed the streams
    logging.getLogger("py4j").setLevel(logging.WARNING)

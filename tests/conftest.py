"""Shared fixtures: an isolated data root per test and small simulated histories."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from pathlib import Path

import pytest

from include.pipelines.fraud.simulator import SimulatorConfig, simulate
from tests.reliability_report import Recorder

REPO = Path(__file__).resolve().parent.parent
# the production stack (PostgreSQL, an mlflow server, Spark standalone, a non-UTC zone), once per session
pytest_plugins = ["tests.production_stack"]

SMALL = SimulatorConfig(n_customers=200, n_terminals=400, n_days=50, start_date=dt.date(2026, 3, 1), seed=7)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """A fresh data lake for one test; include.config.data_root() follows the environment."""
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("BATCHML_DATA_ROOT", str(root))
    # MLflow and the warehouse default to files under the data root: nothing is shared between tests
    for name in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_MLFLOW_ARTIFACTS", "BATCHML_TRAINING_CONFIG"):
        monkeypatch.delenv(name, raising=False)
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


@pytest.fixture(scope="session")
def feature_lake_template(tmp_path_factory, small_sim, spark) -> Path:
    """Raw partitions and published features of the whole small simulation, built once per session
    with the real Spark feature job (in-process session)."""
    from include.features.pipeline import publish_staged_features
    from include.jobs.build_features import run as build_features
    from include.pipelines.fraud.simulator.landing import write_raw_partitions

    root = tmp_path_factory.mktemp("feature-lake")
    tx = small_sim.transactions
    write_raw_partitions(tx, root)
    start, end = SMALL.start_date, SMALL.end_date
    staging = root / "_staging" / "features-template"
    build_features(spark, start, end, staging, root)
    publish_staged_features(staging, start, end, root)
    return root


@pytest.fixture
def feature_lake(feature_lake_template, data_root) -> Path:
    """A private copy of the feature lake as this test's data root."""
    import shutil

    for zone in ("raw", "features"):
        shutil.copytree(feature_lake_template / zone, data_root / zone)
    return data_root


# --- docs/reliability.md: cases recorded by the reliability tests, held = the test's outcome ---
RELIABILITY = Recorder()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and not report.skipped:
        item.reliability_outcome = report.passed
    return report


@pytest.fixture
def reliability(request):
    """Describe the case a test tries (``reliability.case(section, case, expected)``); whether it held
    is the test's outcome, written to docs/reliability.md at the end of the session."""

    class Cases:
        def case(self, section: str, case: str, expected: str):
            return RELIABILITY.case(section, case, expected, test=request.node.nodeid.split("::", 1)[-1])

    before = len(RELIABILITY.cases)
    yield Cases()
    outcome = getattr(request.node, "reliability_outcome", None)
    for case in RELIABILITY.cases[before:]:
        case.held = outcome


def pytest_sessionfinish(session, exitstatus):
    # under pytest-xdist every worker writes its own cases; write() merges with the file, one at a time
    from tests.reliability_report import ARTIFACTS

    if not RELIABILITY.cases:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / ".reliability.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        RELIABILITY.write()


# --- parallel runs: `make test` runs pytest -n 2 --dist loadgroup (pytest-xdist) ---
# The production stack (tests/production_stack.py) has PostgreSQL databases, an Airflow home, a lake,
# ports and processes of its own, and its tests mostly wait on those processes: its modules run in one
# worker beside every other test, which stay together in the other worker in file order (they share
# the .airflow-test SQLite metadata database, and a session's Spark and feature lake). Two groups, by
# path: xdist 3.8's own xdist_group marks do not group on pytest 9 (they set item._nodeid, which
# pytest 9 no longer reads), and the controller that schedules sees node ids, not marks.
PRODUCTION_GROUP = ("tests/integration/test_production_path.py::", "tests/integration/test_celery_workers.py::",
                    "tests/operations/",
                    # to balance the two workers (clean-clone run of 2026-12-03: the rest took 1,850 s, this group
                    # 1,160 s): two suites that share no state with the rest (their own Airflow home and
                    # services; a lake copied from the session's feature-lake template, built again here)
                    "tests/integration/test_lost_asset_queue_row.py::", "tests/integration/test_faults.py::")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class BesideProduction(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "production" if nodeid.startswith(PRODUCTION_GROUP) else "embedded"

    return BesideProduction(config, log)

"""The warehouse or the MLflow registry unreachable (a closed loopback port): the step retries, then
fails with a message naming the service and where it was looked for (no password), and nothing is
half-written: no prediction partition without its warehouse rows, no gate decision taken blind."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from mlflow.exceptions import MlflowException

from include import warehouse
from include.jobs.score import run as score_job
from include.scoring import PREDICTIONS, plan_scoring, publish_predictions
from include.storage import partition_file, staging_dir
from include.training import pipeline
from include.training.config import load_training_config
from include.training.train import train_family
from tests.conftest import REPO, SMALL
from tests.fault_tools import NAME, champion_store, closed_port, logistic_config
from tests.postgres import fresh_database

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = [(SMALL.end_date - dt.timedelta(days=i)).isoformat() for i in (1, 0)]
PASSWORD = "-".join(("not", "a", "real", "secret"))  # assembled here: no secret-looking literal in the tree


@pytest.fixture
def champion(feature_lake, feature_lake_template, tmp_path_factory, monkeypatch) -> str:
    """The shared champion's registry, for a test on its own copy of the feature lake."""
    uri = champion_store(feature_lake_template, tmp_path_factory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def unreachable_warehouse(monkeypatch) -> str:
    url = f"postgresql+psycopg2://batchml:{PASSWORD}@127.0.0.1:{closed_port()}/warehouse"
    monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
    warehouse.dispose_engines()
    return url


@pytest.fixture
def unreachable_registry(monkeypatch) -> str:
    uri = f"http://127.0.0.1:{closed_port()}"
    # MLflow's own HTTP retries are the first layer; kept short here so the test measures Airflow's
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    return uri


def _scoring_dag_with_fast_retries():
    """The scoring DAG as deployed, its retry delays shortened to a second (the count and the doubling kept)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("scoring")
    for task in dag.tasks:
        task.retry_delay = task.max_retry_delay = dt.timedelta(seconds=1)
    return dag


def _run_scoring(days):
    dag = _scoring_dag_with_fast_retries()
    run = dag.test(run_conf={"start": days[0], "end": days[-1]})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    return run, tis, dag.get_task("plan").retries


def _assert_nothing_published(root, days):
    for day in days:
        assert not partition_file(*PREDICTIONS, day, root).exists(), f"ds={day} published"
    assert not list((root / "_staging").glob("*/scoring/plans.json")), "a scoring plan was written"


def test_scoring_with_the_warehouse_unreachable(feature_lake, champion, unreachable_warehouse, reliability):
    case = reliability.case(
        "unreachable services", "scoring DAG (dag.test) with BATCHML_WAREHOUSE_URL on a closed port",
        expected="plan is retried (retries + 1 tries), then fails naming the warehouse and its host and port "
                 "without user or password; nothing downstream runs, nothing is written")
    run, tis, retries = _run_scoring(DAYS)
    assert str(run.state) == "failed"
    assert str(tis["plan"].state) == "failed" and tis["plan"].try_number == retries + 1 > 1
    assert {str(tis[t].state) for t in ("score", "validate_predictions", "publish")} == {"upstream_failed"}
    _assert_nothing_published(feature_lake, DAYS)
    with pytest.raises(warehouse.WarehouseUnavailable) as err:  # what the task raised, each try
        plan_scoring(DAYS, NAME)
    message = str(err.value)
    port = unreachable_warehouse.rsplit(":", 1)[1].split("/")[0]
    assert "warehouse" in message and f"127.0.0.1:{port}" in message, message
    assert PASSWORD not in message and "batchml" not in message, message  # no credentials in a task log
    case.observed = f"plan tried {tis['plan'].try_number} times, then failed: {message[:220]}"


def test_publish_with_the_warehouse_unreachable_publishes_nothing(spark, feature_lake, champion, monkeypatch,
                                                                  reliability):
    case = reliability.case(
        "unreachable services", "scoring publish with the warehouse on a closed port, then reachable again",
        expected="publish fails naming the warehouse; no prediction partition appears without its warehouse "
                 "rows and the staged files stay for the retry, which then publishes both")
    with fresh_database("batchml_unreachable") as url:
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
        plans = plan_scoring(DAYS, NAME)
        staging = staging_dir("unreachable", "scoring", root=feature_lake)
        score_job(spark, plans, staging)
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", f"postgresql+psycopg2://batchml:{PASSWORD}@127.0.0.1:"
                                                    f"{closed_port()}/warehouse")
        with pytest.raises(warehouse.WarehouseUnavailable, match="warehouse") as err:
            publish_predictions(staging, plans, feature_lake)
        assert PASSWORD not in str(err.value)
        _assert_nothing_published_lake(feature_lake, DAYS)
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)  # back: the retry publishes everything
        result = publish_predictions(staging, plans, feature_lake)
        for day in DAYS:
            assert partition_file(*PREDICTIONS, day, feature_lake).exists()
            counts = warehouse.prediction_counts(dt.date.fromisoformat(day))
            assert counts["rows"] == counts["distinct_transactions"] == result["rows"][day] > 0
    case.observed = f"failed: {str(err.value)[:160]}; no partition published; the retry published {result['rows']}"


def _assert_nothing_published_lake(root, days):
    for day in days:
        assert not partition_file(*PREDICTIONS, day, root).exists(), f"ds={day} published without its rows"


def test_scoring_with_the_registry_unreachable(feature_lake, monkeypatch, unreachable_registry, reliability):
    case = reliability.case(
        "unreachable services", "scoring DAG (dag.test) with MLFLOW_TRACKING_URI on a closed port (no promotion "
                                "history, so plan asks the registry for the champion alias)",
        expected="plan is retried, then fails naming the tracking URI; not mistaken for 'no champion' (which "
                 "fails at once without retry); nothing is written")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", unreachable_registry)
    run, tis, retries = _run_scoring(DAYS)
    assert str(run.state) == "failed"
    assert str(tis["plan"].state) == "failed" and tis["plan"].try_number == retries + 1 > 1, tis["plan"].try_number
    _assert_nothing_published(feature_lake, DAYS)
    with pytest.raises(MlflowException, match=unreachable_registry) as err:
        plan_scoring(DAYS, NAME)
    case.observed = f"plan tried {tis['plan'].try_number} times, then failed: {str(err.value)[:200]}"


def test_gate_with_the_registry_unreachable_decides_nothing(feature_lake, champion, tmp_path, monkeypatch,
                                                            unreachable_registry, reliability):
    case = reliability.case(
        "unreachable services", "training gate with the registry unreachable (a champion exists; the "
                                "challenger was registered before the registry went away), then reachable again",
        expected="the gate fails with a retryable error naming the tracking URI and records no decision; once "
                 "the registry is back it compares the challenger with the champion")
    # a private copy of the champion's store: this test registers a challenger
    store = tmp_path / "mlflow"
    shutil.copytree(champion_store_root(champion), store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.replace(str(champion_store_root(champion)), str(store)))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(logistic_config(tmp_path)))
    cfg = load_training_config()
    as_of = SMALL.end_date.isoformat()
    pipeline.prepare(as_of, cfg)
    challenger = pipeline.select_challenger([train_family("logistic", as_of, cfg)], cfg)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", unreachable_registry)
    with pytest.raises(MlflowException, match=unreachable_registry) as err:
        pipeline.run_gate(challenger, cfg)
    assert warehouse.decision_for(NAME, dt.date.fromisoformat(as_of)) is None, "a decision taken without the registry"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.replace(str(champion_store_root(champion)), str(store)))
    decision = pipeline.run_gate(challenger, cfg)
    assert decision["champion_version"] == "1", decision
    case.observed = (f"gate failed: {str(err.value)[:160]}; no decision recorded; after the registry came back: "
                     f"{decision['reason'][:120]}")


def champion_store_root(uri: str):
    from pathlib import Path

    return Path(uri.removeprefix("sqlite:///").split("?")[0]).parent

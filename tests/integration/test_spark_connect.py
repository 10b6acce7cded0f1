"""The Spark jobs on a long-lived Spark Connect server (tools.spark_connect), through the operators'
Connect path: a ``spark_connect`` connection makes SparkJobOperator / BatchScoringOperator run the
job's ``main`` in the task's process on a session of the server, and the staged features and
predictions of two days equal those of the classic local-mode session, value for value. One server
is started for the module; bad input files fail without retry as under spark-submit."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from batchml.operators import BatchScoringOperator, SparkJobOperator

from include.config import REPO_ROOT
from include.jobs import build_features, score
from include.scoring import REASONS, plan_scoring
from include.spark import ERROR_FILE
from include.storage import partition_file, write_parquet_atomic
from include.training.config import parse_training_config
from tests.integration.test_scoring import DAYS, _champion
from tests.task_context import FakeTI
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CONN = "spark_connect_test"
FEATURES_JOB = str(REPO_ROOT / "include" / "jobs" / "build_features.py")


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """One Spark Connect server on a free loopback port for the module."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java (java on PATH or JAVA_HOME): the Spark Connect server is a JVM")
    from tools.spark_connect import connect_server

    with connect_server(tmp_path_factory.mktemp("spark-connect") / "server.log") as server:
        yield server


@pytest.fixture
def connection(connect_server, monkeypatch) -> str:
    """The provider's ``spark_connect`` connection to the server, as an environment connection."""
    host, port = connect_server.url.removeprefix("sc://").split(":")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "spark_connect", "host": host,
                                                                   "port": int(port)}))
    return CONN


def _run(op):
    context = {"ti": FakeTI(), "ds": DAYS[-1], "params": {}}
    op.render_template_fields(context)
    return op.execute(context)


def _frame(folder, drop=()) -> pd.DataFrame:
    frame = pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)
    return frame.drop(columns=list(drop)).sort_values("transaction_id", ignore_index=True)


def _features_op(connection, output, root, days=DAYS) -> SparkJobOperator:
    return SparkJobOperator(task_id="build_features", conn_id=connection, application=FEATURES_JOB,
                            application_args=["--start", days[0], "--end", days[-1], "--output", str(output),
                                              "--root", str(root)], error_output=str(output))


def test_features_and_scoring_on_spark_connect_equal_local_mode(spark, feature_lake, connection, tmp_path):
    # features of two days: the operator on the Connect server, the job's run() on the classic session
    on_connect, local = tmp_path / "features-connect", tmp_path / "features-local"
    assert _run(_features_op(connection, on_connect, feature_lake)) == 0
    start, end = (pd.Timestamp(d).date() for d in (DAYS[0], DAYS[-1]))
    build_features.run(spark, start, end, local, feature_lake)
    for day in DAYS:
        got, expected = _frame(on_connect / f"ds={day}"), _frame(local / f"ds={day}")
        assert len(got) > 0
        pd.testing.assert_frame_equal(got, expected)
    assert (json.loads((on_connect / "_summary.json").read_text())["rows_per_day"]
            == json.loads((local / "_summary.json").read_text())["rows_per_day"])

    # scoring of the same days by a registered champion: BatchScoringOperator on Connect, run() classic
    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    _champion(cfg)
    plans = plan_scoring(DAYS, cfg.registered_model)
    plans_file = tmp_path / "plans.json"
    plans_file.write_text(json.dumps(plans))
    staged_connect, staged_local = tmp_path / "scored-connect", tmp_path / "scored-local"
    result = _run(BatchScoringOperator(task_id="score", plans=str(plans_file), staging=str(staged_connect),
                                       conn_id=connection))
    assert result["days"] == DAYS and set(result["models"].values()) == {"1"}
    score.run(spark, plans, staged_local)
    for day in DAYS:
        got = _frame(staged_connect / f"ds={day}", drop=["scored_at"])
        expected = _frame(staged_local / f"ds={day}", drop=["scored_at"])
        features = pd.read_parquet(partition_file("features", "baseline", day, feature_lake))
        assert len(got) == len(features) and got["score"].between(0, 1).all()
        pd.testing.assert_frame_equal(got, expected)
        pd.testing.assert_frame_equal(_frame(staged_connect / REASONS[0] / f"ds={day}"),
                                      _frame(staged_local / REASONS[0] / f"ds={day}"))
    assert not (staged_connect / "_wide").exists()


def test_bad_input_files_fail_without_retry_on_spark_connect(feature_lake, connection, tmp_path):
    # a published raw partition of another schema in the lookback window: Spark's error on Connect is
    # reported as bad data naming the file and the column, and fails without retry, as under spark-submit
    spoilt, day = DAYS
    raw = partition_file("raw", "transactions", spoilt, feature_lake)
    frame = pd.read_parquet(raw)
    write_parquet_atomic(frame.assign(tx_amount=frame["tx_amount"].astype(str)), raw)
    output = tmp_path / "features"
    with pytest.raises(AirflowFailException, match=r"build_features: bad data: Spark FAILED_READ_FILE") as failed:
        _run(_features_op(connection, output, feature_lake, [day]))
    message = str(failed.value)
    assert f"raw/transactions/ds={spoilt}/data.parquet" in message and "[tx_amount]" in message, message
    assert "not retried" in message and json.loads((output / ERROR_FILE).read_text())["kind"] == "bad data"
    assert not list(output.glob("ds=*"))

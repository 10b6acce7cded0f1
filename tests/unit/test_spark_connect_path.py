"""How the Spark operators choose Spark Connect over spark-submit, without a server (the jobs on a real
server: tests/integration/test_spark_connect.py)."""

from __future__ import annotations

import json
import os

import pytest
from airflow.sdk.exceptions import AirflowFailException
from batchml.operators import _job_module, spark_connect_url

from include.config import REPO_ROOT
from include.spark import connect_to
from tools.spark_connect import server_command, server_env


@pytest.mark.parametrize(("conn", "url"), [
    ('spark-connect://127.0.0.1:15002', "sc://127.0.0.1:15002/"),
    (json.dumps({"conn_type": "spark_connect", "host": "10.0.0.5", "port": 15002, "login": "airflow"}),
     "sc://10.0.0.5:15002/;user_id=airflow"),
    (json.dumps({"conn_type": "spark", "host": "sc://10.0.0.5", "port": 15002}), "sc://10.0.0.5:15002/"),
    (json.dumps({"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}), None),
])
def test_a_spark_connect_connection_names_its_server(conn, url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_UNDER_TEST", conn)
    assert spark_connect_url("spark_under_test") == url


def test_no_connection_leaves_it_to_spark_submit():
    assert spark_connect_url("no_such_connection_here") is None


def test_only_the_repositorys_job_files_run_in_the_task(tmp_path):
    assert _job_module(str(REPO_ROOT / "include" / "jobs" / "score.py")) == "include.jobs.score"
    outside = tmp_path / "job.py"
    outside.write_text("def main(argv): return 0\n")
    with pytest.raises(AirflowFailException, match="not a job of this repository"):
        _job_module(str(outside))
    with pytest.raises(AirflowFailException, match="not a Python job file"):
        _job_module(str(REPO_ROOT / "include" / "jobs" / "missing.py"))


def test_connect_to_switches_pyspark_to_connect_and_back(monkeypatch):
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
    from pyspark.sql.utils import is_remote

    with connect_to("sc://127.0.0.1:1"):
        assert is_remote()
    assert not is_remote() and "SPARK_CONNECT_MODE_ENABLED" not in os.environ
    with pytest.raises(ValueError, match="not a Spark Connect URL"), connect_to("spark://host:7077"):
        pass
    assert not is_remote()


def test_the_server_runs_the_repositorys_python_on_loopback():
    cmd = server_command("127.0.0.1", 15123)
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in cmd
    assert {"spark.connect.grpc.binding.port=15123", "spark.connect.grpc.binding.address=127.0.0.1",
            "spark.sql.session.timeZone=UTC"} <= set(cmd)
    env = server_env("127.0.0.1", {"PATH": "/usr/bin"})
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(REPO_ROOT), str(REPO_ROOT / "plugins")]
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1" and env["PYSPARK_PYTHON"]
    assert "SPARK_LOCAL_IP" not in server_env("0.0.0.0", {"PATH": "/usr/bin"})

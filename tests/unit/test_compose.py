"""docker-compose.yaml cannot be started here (no Docker engine): check its structure instead."""

from __future__ import annotations

import yaml

from include.config import REPO_ROOT

AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"]


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def test_services_and_shared_configuration():
    services = _compose()["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres"} <= set(services)
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        mounts = {v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "airflow_settings" in services["airflow-init"]["command"]
    assert services["postgres"]["healthcheck"]


def test_dockerfile_installs_java_and_the_pins():
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "apache/airflow:3.3.2" in text and "openjdk-17" in text and "requirements.txt" in text

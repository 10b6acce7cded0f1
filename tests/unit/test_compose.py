"""docker-compose.yaml cannot be started here (no Docker engine): check its structure, and its
consistency with airflow_settings.yaml, the Dockerfile, requirements.txt and .env.example. The same
services run as local processes in the integration tests."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from include.config import REPO_ROOT

WORKERS = ["airflow-worker-1", "airflow-worker-2"]
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", *WORKERS]
ALL_SERVICES = {"postgres", "redis", *AIRFLOW_SERVICES, "mlflow", "spark-master", "spark-worker"}
REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")  # ${VAR:?message}: compose refuses to start without VAR


@pytest.fixture(scope="module")
def text() -> str:
    return (REPO_ROOT / "docker-compose.yaml").read_text()


@pytest.fixture(scope="module")
def services(text) -> dict:
    return yaml.safe_load(text)["services"]


def _env_example() -> dict[str, str]:
    lines = (REPO_ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_component_is_a_service(services):
    assert set(services) == ALL_SERVICES


def test_airflow_services_share_postgres_the_celery_executor_and_the_project_mounts(services):
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        # task results in the metadata database (Celery's SQLAlchemy backend: the db+ prefix)
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert env["BATCHML_WAREHOUSE_URL"].startswith("postgresql+psycopg2://warehouse:")
        mounts = {v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include", "/opt/airflow/data"} <= mounts
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["healthcheck"]
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]


def test_two_celery_workers_take_tasks_from_redis(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:") and "redis-cli" in redis["healthcheck"]["test"]
    assert "ports" not in redis  # the broker stays inside the compose network
    assert any(v.startswith("redis:") for v in redis["volumes"])
    hostnames = set()
    for name in WORKERS:
        worker = services[name]
        command = worker["command"]
        assert command[:2] == ["celery", "worker"] and int(command[command.index("--concurrency") + 1]) >= 1
        # distinct hostnames: the task instances say which worker ran them, and Spark's executors reach
        # a client-mode driver there, so the hostname is the service's name on the compose network
        assert worker["hostname"] == name
        hostnames.add(worker["hostname"])
        assert worker["volumes"] == services["airflow-scheduler"]["volumes"]  # the same lake and code
    assert len(hostnames) == len(WORKERS)


def test_init_migrates_applies_the_settings_and_creates_the_admin(services):
    assert "airflow-init.sh" in " ".join(services["airflow-init"]["command"])
    script = (REPO_ROOT / "scripts" / "compose" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script and "tools.airflow_settings" in script
    # the settings loader is tooling: mounted for the init only, and with every mount the services have
    init_mounts = set(services["airflow-init"]["volumes"])
    assert "./tools:/opt/airflow/tools:ro" in init_mounts
    for name in AIRFLOW_SERVICES[1:]:
        assert set(services[name]["volumes"]) == init_mounts - {"./tools:/opt/airflow/tools:ro"}, name
    assert "AIRFLOW_ADMIN_PASSWORD" in script and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    env = services["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].startswith("${AIRFLOW_ADMIN_USER:?")


def test_databases_in_the_urls_are_created_by_the_postgres_init_script(services, text):
    init = (REPO_ROOT / "scripts" / "compose" / "postgres-init.sh").read_text()
    created = set(re.search(r"for component in ([\w ]+); do", init).group(1).split())
    used = set(re.findall(r"postgresql\+psycopg2://(\w+):[^@]+@postgres:5432/(\w+)", text))
    assert used and all(role == db for role, db in used)
    assert {db for _, db in used} == created == {"airflow", "mlflow", "warehouse"}
    mounts = services["postgres"]["volumes"]
    assert any(m.startswith("./scripts/compose/postgres-init.sh:/docker-entrypoint-initdb.d/") for m in mounts)


def test_no_password_or_secret_has_a_default(text):
    # a credential in a URL is always a required variable, never a literal
    for secret in re.findall(r"://\w+:([^@\s]+)@", text):
        assert re.fullmatch(r"\$?\$\{\w+(:\?[^}]*)?\}", secret), secret
    for key in ("POSTGRES_PASSWORD", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        value = re.search(rf"{key}: (.+)", text).group(1)
        assert REQUIRED.match(value), f"{key} must come from .env, got {value}"
    # every required variable is in the committed template, with no value in it
    required = set(REQUIRED.findall(text))
    example = _env_example()
    assert required <= set(example), required - set(example)
    assert all(example[k] == "" for k in required if "PASSWORD" in k or "SECRET" in k)


def test_env_file_is_ignored_and_the_example_is_tracked():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT).returncode == 0
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env.example"], cwd=REPO_ROOT,
                             capture_output=True).returncode == 0
    assert ignored and tracked


def test_spark_default_names_the_standalone_master(services):
    settings = yaml.safe_load((REPO_ROOT / "airflow_settings.yaml").read_text())["airflow"]
    spark_default = next(c for c in settings["connections"] if c["conn_id"] == "spark_default")
    conn = json.loads(services["airflow-scheduler"]["environment"]["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn["conn_type"] == spark_default["conn_type"] == "spark"
    master = services["spark-master"]["command"]
    assert conn["host"] == f"spark://{master[master.index('--host') + 1]}"
    assert str(conn["port"]) == master[master.index("--port") + 1]
    worker = services["spark-worker"]
    assert f"{conn['host']}:{conn['port']}" in worker["command"]
    # executors read and write the lake where the drivers (Airflow tasks) see it
    lake = services["airflow-scheduler"]["environment"]["BATCHML_DATA_ROOT"]
    assert any(v.endswith(f":{lake}") and v.startswith("lake:") for v in worker["volumes"])
    assert worker["environment"]["BATCHML_DATA_ROOT"] == lake


def test_mlflow_server_on_postgres_with_an_artifact_volume(services):
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert "mlflow server" in command and "postgresql+psycopg2://mlflow:" in command
    destination = re.search(r"--artifacts-destination (\S+)", command).group(1)
    assert f"mlflow-artifacts:{destination}" in mlflow["volumes"] and "--serve-artifacts" in command
    port = re.search(r"--port (\d+)", command).group(1)
    assert services["airflow-scheduler"]["environment"]["MLFLOW_TRACKING_URI"] == f"http://mlflow:{port}"


def test_dockerfile_matches_the_pins_and_the_mounts(services):
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    pins = dict(line.split("==") for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    base = re.search(r"FROM apache/airflow:(\S+)-python(\S+)", dockerfile)
    assert base.group(1) == pins["apache-airflow"] and base.group(2) == "3.11"
    assert "openjdk-17" in dockerfile and "requirements.txt" in dockerfile
    pythonpath = re.search(r"PYTHONPATH=(\S+)", dockerfile).group(1).split(":")
    mounts = {v.split(":")[1] for v in services["airflow-scheduler"]["volumes"]}
    assert {"/opt/airflow/include", "/opt/airflow/plugins"} <= mounts and "/opt/airflow/plugins" in pythonpath
    assert "/opt/airflow" in pythonpath  # include/ is imported as a package from the project root

"""tools/scaffold.py (`make new-pipeline NAME=...`): a generated pipeline passes the DAG integrity
tests and its own tests at once; bad or taken names are refused with nothing written; a failure while
moving the files into place leaves nothing half-generated. Everything runs on copies of the
repository in tmp folders, never on the working tree."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import scaffold
from tools.scaffold import ScaffoldError

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
NAME = "churn"
GENERATED_DAG_IDS = {f"{NAME}_{stage}" for stage in scaffold.STAGES}


def _ignore(folder: str, names: list[str]) -> set[str]:
    """Caches, and a pipeline NAME the working tree may already have (the copy generates it afresh)."""
    ignored = set(IGNORE(folder, names))
    if Path(folder) == REPO / "dags":
        ignored |= {n for n in names if n.startswith(f"{NAME}_")}
    if Path(folder) == REPO / "include" / "pipelines":
        ignored |= {NAME} & set(names)
    return ignored


def _copy_repo(root: Path) -> Path:
    """What the integrity tests and the generated tests need: dags/, plugins/, include/, tools/ (the test
    helpers' process supervisor), the test conftest and tests/dags, and pyproject.toml (pytest and ruff
    configuration)."""
    for folder in ("dags", "plugins", "include", "tools"):
        shutil.copytree(REPO / folder, root / folder, ignore=_ignore)
    (root / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "reliability_report.py", "production_stack.py", "postgres.py",
                 "services.py", "training_config.py"):
        shutil.copy2(REPO / "tests" / name, root / "tests" / name)
    shutil.copytree(REPO / "tests" / "dags", root / "tests" / "dags", ignore=IGNORE)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _minimal_root(root: Path) -> Path:
    """Just what the scaffold reads: dags/ and the reference configuration files."""
    shutil.copytree(REPO / "dags", root / "dags", ignore=_ignore)
    for rel in (scaffold.REFERENCE_TRAINING, scaffold.REFERENCE_MONITORING):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.scaffold", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = _copy_repo(tmp_path_factory.mktemp("scaffold") / "repo")
    proc = _cli(NAME, "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert "created pipeline 'churn'" in proc.stdout and "dags/churn_ingest.py" in proc.stdout
    return root


@pytest.mark.slow
def test_a_generated_pipeline_passes_the_integrity_tests_and_its_own_tests_at_once(generated, tmp_path):
    root = generated
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "BATCHML_DATA_ROOT": str(tmp_path / "lake"),
           "PYTHONPATH": f"{root}:{root / 'plugins'}"}
    for name in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_TRAINING_CONFIG", "BATCHML_MONITORING_CONFIG"):
        env.pop(name, None)

    def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=root,
                              env=env)

    lint = run("-m", "ruff", "check", "dags", "include/pipelines", "tests/pipelines")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # the integrity tests read DAGs back through the metadata database (DagBag.get_dag)
    migrate = run("-m", "airflow", "db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    listing = run("-c", "import json; from airflow.dag_processing.dagbag import DagBag; b = DagBag(dag_folder='dags'); "
                  "print(json.dumps({'ids': sorted(b.dag_ids), 'errors': list(b.import_errors)}))")
    assert listing.returncode == 0, listing.stderr[-2000:]
    found = json.loads(listing.stdout.strip().splitlines()[-1])
    assert found["errors"] == []
    assert GENERATED_DAG_IDS <= set(found["ids"]) and {"ingest", "features"} <= set(found["ids"])

    tests = run("-m", "pytest", "tests/dags", f"tests/pipelines/test_{NAME}.py", "-v", "-p", "no:cacheprovider",
                timeout=240)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    for stage in scaffold.STAGES:  # the per-file integrity tests ran on the generated DAG files too
        for check in ("test_dag_conventions", "test_parse_opens_no_connection_and_runs_no_query"):
            assert f"{check}[{NAME}_{stage}.py] PASSED" in tests.stdout
    for generated_test in ("test_the_five_dags_parse",
                           "test_check_day_writes_drift_rows_alerts_and_report_and_a_rerun_replaces_them"):
        assert f"tests/pipelines/test_{NAME}.py::{generated_test} PASSED" in tests.stdout


def test_the_generated_files_are_the_ones_documented(generated):
    files = {str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file() and NAME in str(p)}
    expected = {f"dags/{NAME}_{stage}.py" for stage in scaffold.STAGES} | {f"tests/pipelines/test_{NAME}.py"} | {
        f"include/pipelines/{NAME}/{f}" for f in (
            "__init__.py", "assets.py", "schema.py", "suites.py", "pipeline.py", "features.py", "training.py",
            "monitoring.py", "training.yaml", "monitoring.yaml", "jobs/__init__.py", "jobs/build_features.py",
            "jobs/score.py")}
    assert {f for f in files if "__pycache__" not in f} == expected
    assert (generated / "include" / "pipelines" / "__init__.py").exists()
    assert not list(generated.glob(".scaffold-*")), "the staging folder is removed"


def test_the_configuration_is_the_reference_one_with_the_pipelines_names(generated):
    import yaml

    from include.training.config import parse_training_config

    pipeline = generated / "include" / "pipelines" / NAME
    cfg = parse_training_config(yaml.safe_load((pipeline / "training.yaml").read_text()))
    reference = parse_training_config(yaml.safe_load((REPO / scaffold.REFERENCE_TRAINING).read_text()))
    assert (cfg.experiment, cfg.registered_model) == ("churn-training", "churn-model")
    assert cfg.models == reference.models and cfg.window == reference.window and cfg.gate == reference.gate
    monitoring = yaml.safe_load((pipeline / "monitoring.yaml").read_text())
    assert monitoring["exclude_columns"] == []
    assert monitoring["psi_alert"] == yaml.safe_load((REPO / scaffold.REFERENCE_MONITORING).read_text())["psi_alert"]


def test_a_second_run_for_the_same_name_refuses_and_leaves_every_file_untouched(generated):
    before = _snapshot(generated)
    proc = _cli(NAME, "--root", str(generated))
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"pipeline '{NAME}' cannot be generated, nothing was written" in proc.stderr
    assert f"include/pipelines/{NAME}/ exists" in proc.stderr and f"dags/{NAME}_ingest.py exists" in proc.stderr
    assert _snapshot(generated) == before


@pytest.mark.parametrize("name, reason", [
    ("", "invalid pipeline name"), ("c", "invalid pipeline name"), ("Churn", "invalid pipeline name"),
    ("1churn", "invalid pipeline name"), ("churn-rate", "invalid pipeline name"), ("_churn", "invalid pipeline name"),
    ("c" * 42, "invalid pipeline name"), ("class", "Python keyword"), ("fraud", "reserved: the reference pipeline"),
    ("labels", "reserved: raw/labels"),
])
def test_invalid_or_reserved_names_are_refused_with_nothing_written(tmp_path, name, reason):
    root = _minimal_root(tmp_path)
    before = _snapshot(root)
    with pytest.raises(ScaffoldError, match=reason):
        scaffold.scaffold(name, root)
    assert _snapshot(root) == before


def test_a_dag_id_taken_by_a_hand_written_dag_is_refused(tmp_path):
    root = _minimal_root(tmp_path)
    (root / "dags" / "reports.py").write_text('from airflow.sdk import dag\n\n@dag(dag_id="churn_scoring")\n'
                                              "def reports():\n    pass\n")
    before = _snapshot(root)
    with pytest.raises(ScaffoldError, match=r"DAG id churn_scoring is already defined in dags/reports\.py"):
        scaffold.scaffold(NAME, root)
    assert _snapshot(root) == before


def test_dry_run_lists_the_files_and_writes_nothing(tmp_path):
    root = _minimal_root(tmp_path)
    before = _snapshot(root)
    proc = _cli("credit_risk", "--root", str(root), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would create pipeline 'credit_risk'" in proc.stdout
    assert "dags/credit_risk_monitoring.py" in proc.stdout and "include/pipelines/credit_risk/schema.py" in proc.stdout
    assert _snapshot(root) == before


def test_a_failure_while_moving_files_into_place_leaves_nothing_half_generated(tmp_path, monkeypatch):
    root = _minimal_root(tmp_path)
    before = _snapshot(root)
    real_link, calls = os.link, []

    def failing_link(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(scaffold.os, "link", failing_link)
    with pytest.raises(OSError, match="No space left"):
        scaffold.scaffold(NAME, root)
    assert len(calls) == 3  # the package folder and two files had been moved when it failed
    assert _snapshot(root) == before


def test_names_are_spelled_for_each_use():
    names = scaffold.Names.of("credit_risk")
    assert (names.name, names.slug, names.upper) == ("credit_risk", "credit-risk", "CREDIT_RISK")

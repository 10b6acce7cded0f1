"""Parallel training tasks write to one sqlite MLflow store at the same time (LocalExecutor runs the
mapped model tasks as separate processes). SQLite admits one writer at a time; the tracking URI of
include.config carries a busy timeout so writers wait for the lock instead of failing with
"database is locked". These tests run real concurrent processes against one store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml

from include.training import pipeline, tracking
from include.training.config import parse_training_config
from tests.conftest import REPO, SMALL
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _parallel(scripts: list[str], env_root) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(s)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in scripts]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate()) for p in procs]


def test_model_families_train_in_parallel_processes_on_one_sqlite_store(feature_lake, tmp_path, monkeypatch):
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(small_config_dict()))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    cfg = parse_training_config(small_config_dict())
    as_of = SMALL.end_date.isoformat()
    prepared = pipeline.prepare(as_of, cfg)  # creates the store and experiment once, as the DAG does

    results = _parallel([f"""
        from include.training.config import load_training_config
        from include.training.train import train_family
        train_family({name!r}, {as_of!r}, load_training_config())
        """ for name in prepared["models"]], feature_lake)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
        assert "database is locked" not in r.stderr

    c = tracking.client()
    exp = c.get_experiment_by_name(cfg.experiment)
    runs = c.search_runs([exp.experiment_id], "tags.`batchml.kind` = 'model'")
    assert sorted(r.data.tags["batchml.model"] for r in runs) == sorted(prepared["models"])
    assert all(r.info.status == "FINISHED" and "average_precision" in r.data.metrics for r in runs)
    trials = c.search_runs([exp.experiment_id], "tags.`batchml.kind` = 'trial'")
    assert len(trials) == 2 + 2 + 2 + 1 + 1  # logistic, xgboost, lightgbm, mlp (1 trial), ensemble (nothing to search)


def test_many_small_writes_from_parallel_processes(data_root):
    tracking.ensure_experiment("concurrency")
    writers, writes = 6, 40
    results = _parallel([f"""
        import mlflow
        from include.training import tracking
        exp = tracking.ensure_experiment("concurrency")
        with mlflow.start_run(experiment_id=exp, run_name="writer {w}"):
            for i in range({writes}):
                mlflow.log_metric("m", i, step=i)   # one transaction per call
                mlflow.set_tag(f"t{{i}}", i)
        """ for w in range(writers)], data_root)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    c = tracking.client()
    exp = c.get_experiment_by_name("concurrency")
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == writers
    for run in runs:
        assert len(c.get_metric_history(run.info.run_id, "m")) == writes
        assert sum(k.startswith("t") and k[1:].isdigit() for k in run.data.tags) == writes

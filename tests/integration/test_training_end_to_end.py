"""The training DAG through ``dag.test()`` on small simulated data, with real Spark features, real
model families, a real MLflow tracking store and registry (sqlite) and the warehouse (sqlite)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import yaml

from include import registry, warehouse
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.storage import MissingInputError, day_range, partition_file, write_parquet_atomic
from include.training import pipeline, tracking
from include.training.config import parse_training_config
from include.training.dataset import TrainingDataError
from include.training.slices import SliceError
from include.training.train import train_family
from tests.conftest import REPO, SMALL
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = SMALL.end_date.isoformat()  # 2026-04-19: evaluation window 2026-04-08..12, training 03-25..31
NAME = "fraud-detector"


@pytest.fixture(scope="module")
def training_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag("training")


@pytest.fixture
def lake(feature_lake, tmp_path, monkeypatch):
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(small_config_dict()))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    return feature_lake


def _run(dag, as_of: str):
    run = dag.test(run_conf={"as_of": as_of})
    return run, {f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
                 for ti in run.get_task_instances()}


def _runs(kind: str) -> list:
    c = tracking.client()
    exp = c.get_experiment_by_name("fraud-training")
    return c.search_runs([exp.experiment_id], f"tags.`batchml.kind` = '{kind}'")


def test_training_registers_a_champion_and_reruns_without_duplicates(training_dag, lake):
    run, states = _run(training_dag, AS_OF)
    assert str(run.state) == "success", states
    assert [states[f"train_model[{i}]"] for i in range(5)] == ["success"] * 5
    assert states["promote"] == "success" and states["keep_champion"] == "skipped" and states["approve"] == "skipped"

    # registry: one version, champion and challenger on it, a model card as its description
    c = tracking.client()
    champion = c.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == "1"
    assert str(c.get_model_version_by_alias(NAME, "challenger").version) == "1"
    assert champion.description.startswith(f"# {NAME} version 1")
    assert "## Evaluation metrics" in champion.description and "## Limitations" in champion.description
    # every test week of the plan (one tuning fold here, then the evaluation week), mean and spread
    weeks = champion.description.split("## Across test weeks")[1].split("## Limitations")[0]
    week_rows = [line for line in weeks.splitlines() if line.startswith("| 2026-")]
    assert len(week_rows) == 2 and week_rows[-1].startswith("| 2026-04-08..2026-04-12 |")
    assert "| mean ± std |" in weeks
    assert champion.tags["gate_decision"] == "promote"

    # the run behind it: params, metrics, plots, model card, signature and reference distributions
    model_run = c.get_run(champion.run_id)
    assert model_run.data.params["evaluation_window"] == "2026-04-08..2026-04-12"
    assert model_run.data.params["train_window"] == "2026-03-25..2026-03-31"
    assert "imbalance_handling" in model_run.data.params and len(model_run.data.params["inputs_sha256"]) == 64
    for metric in ("auc_roc", "average_precision", "card_precision", "brier_score", "precision_at_threshold",
                   "recall_at_threshold", "decision_threshold", "weeks_mean_average_precision",
                   "weeks_std_card_precision"):
        assert metric in model_run.data.metrics
    artifacts = {a.path for a in c.list_artifacts(champion.run_id)} | {
        a.path for d in ("evaluation", "monitoring") for a in c.list_artifacts(champion.run_id, d)}
    assert {"model_card.md", "evaluation/roc_pr.png", "evaluation/calibration.png",
            "evaluation/feature_importance.png", "monitoring/reference.json"} <= artifacts
    reference = json.loads((tracking_artifact(champion.run_id, "monitoring/reference.json")).read_text())
    assert set(reference["features"]) == set(MODEL_INPUTS) and reference["score"]["kind"] == "numeric"
    assert reference["features"]["tx_during_night"]["kind"] == "categorical"

    # per slice band of training.yaml: the artifact, the metrics, the card's table; the first model's not gated
    cfg = parse_training_config(small_config_dict())
    slices = json.loads(tracking_artifact(champion.run_id, "evaluation/slices.json").read_text())["rows"]
    bands = [(s.name, b) for s in cfg.slices.definitions for b in s.bands]
    assert [(r["slice"], r["band"]) for r in slices] == bands
    assert sum(r["n_frauds"] for r in slices if r["slice"] == "time_of_day") == model_run.data.metrics["n_frauds"]
    assert model_run.data.metrics["slice_time_of_day_day_positives"] > 0
    assert "slice_time_of_day_day_ap" in model_run.data.metrics
    card = champion.description.split("## By slice")[1].split("## Limitations")[0]
    assert "| time_of_day | night |" in card and card.count("| not gated: no champion to compare with |") == len(bands)
    recorded = json.loads(warehouse.promotion_history(NAME)[0]["metrics_json"])
    assert [r["verdict"] for r in recorded["slices"]] == ["not gated: no champion to compare with"] * len(bands)

    # the champion loads from the registry by alias and scores probabilities
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    features = pd.read_parquet(partition_file("features", "baseline", AS_OF, lake))
    scores = model.predict(features[MODEL_INPUTS])
    assert len(scores) == len(features) and ((scores >= 0) & (scores <= 1)).all()
    assert model.metadata.signature is not None

    # every family ran, every Optuna trial is a nested run, the decision is in the warehouse
    assert sorted(r.data.tags["batchml.model"] for r in _runs("model")) == ["ensemble", "lightgbm", "logistic", "mlp",
                                                                            "xgboost"]
    trials = _runs("trial")  # the ensemble has nothing to search: one trial of its members' configured params
    assert len(trials) == 2 + 2 + 2 + 1 + 1 and all("mlflow.parentRunId" in r.data.tags for r in trials)
    history = warehouse.promotion_history(NAME)
    assert len(history) == 1 and history[0]["promoted"] and history[0]["challenger_version"] == "1"

    # rerun the same day: no new run, trial, version or decision
    run, states = _run(training_dag, AS_OF)
    assert str(run.state) == "success", states
    assert len(_runs("model")) == 5 and len(_runs("trial")) == 8
    assert [str(v.version) for v in c.search_model_versions(f"name = '{NAME}'")] == ["1"]
    assert len(warehouse.promotion_history(NAME)) == 1

    # a later run compares its challenger with the champion on the same window and records why
    later = (SMALL.end_date - dt.timedelta(days=2)).isoformat()
    run, states = _run(training_dag, later)
    assert str(run.state) == "success", states
    decision = warehouse.decision_for(NAME, dt.date.fromisoformat(later))
    assert decision["champion_version"] == "1" and decision["challenger_version"] == "2"
    assert decision["champion_value"] is not None and "champion" in decision["reason"]
    # both models' figures per band on the same window, and the gate's verdict on each
    recorded = json.loads(decision["metrics_json"])["slices"]
    assert len(recorded) == len(bands) and all(r["verdict"] in ("holds", "refused") or r["verdict"].startswith(
        "not gated: ") for r in recorded)
    assert all("champion_average_precision" in r for r in recorded)
    expected_champion = "2" if decision["promoted"] else "1"
    assert str(c.get_model_version_by_alias(NAME, "champion").version) == expected_champion

    # promotion keeps the replaced champion for rollback; the rollback command restores it
    registry.promote(NAME, "2")
    assert str(c.get_model_version_by_alias(NAME, "previous_champion").version) == "1"
    assert registry.main(["rollback"]) == 0
    assert str(c.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert c.get_model_version(NAME, "2").tags.get("rolled_back")
    assert warehouse.promotion_history(NAME)[-1]["decision"] == "rollback"
    assert registry.main(["rollback"]) == 1  # nothing left to roll back to: a clear error


def tracking_artifact(run_id: str, path: str):
    from pathlib import Path

    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))


def _empty_test_days(root):
    for day in day_range("2026-04-08", "2026-04-12"):
        f = partition_file("features", "baseline", day, root)
        write_parquet_atomic(pd.read_parquet(f).iloc[0:0], f)


def _no_frauds(root):
    for f in (root / "raw" / "labels").glob("ds=*/data.parquet"):
        write_parquet_atomic(pd.read_parquet(f).assign(tx_fraud=0), f)


def _drop_column(root):
    f = partition_file("features", "baseline", "2026-03-27", root)
    write_parquet_atomic(pd.read_parquet(f).drop(columns=["terminal_risk_7d"]), f)


@pytest.mark.parametrize(("corrupt", "message"), [
    (_empty_test_days, "evaluation block .* empty test window"),
    (_no_frauds, "no positive labels in the train window"),
    (_drop_column, r"features/baseline ds=2026-03-27: missing column\(s\) \['terminal_risk_7d'\]"),
])
def test_bad_training_input_fails_clearly_and_moves_no_alias(training_dag, lake, corrupt, message):
    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    # a champion from a good earlier day
    earlier = (SMALL.end_date - dt.timedelta(days=1)).isoformat()
    pipeline.prepare(earlier, cfg)
    decision = pipeline.run_gate(pipeline.select_challenger([train_family("logistic", earlier, cfg)], cfg), cfg)
    pipeline.promote(decision, cfg)

    corrupt(lake)
    with pytest.raises(TrainingDataError, match=message):
        pipeline.prepare(AS_OF, cfg)
    run, states = _run(training_dag, AS_OF)
    assert str(run.state) == "failed" and states["prepare"] == "failed"
    assert all(state in ("upstream_failed", "skipped") for task, state in states.items() if task != "prepare"), states
    c = tracking.client()
    assert str(c.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(c.get_model_version_by_alias(NAME, "challenger").version) == "1"
    assert len(c.search_model_versions(f"name = '{NAME}'")) == 1
    assert warehouse.decision_for(NAME, dt.date.fromisoformat(AS_OF)) is None


def test_missing_partitions_are_named(lake):
    cfg = parse_training_config(small_config_dict())
    with pytest.raises(MissingInputError, match=r"features/baseline partition\(s\) missing for transaction days "
                                                r"2026-02-"):
        pipeline.prepare("2026-03-20", cfg)


def test_prepare_checks_the_slices_on_the_evaluation_rows(lake):
    raw = small_config_dict()
    prepared = pipeline.prepare(AS_OF, parse_training_config(raw))
    frauds = prepared["slice_frauds"]
    assert sum(v for k, v in frauds.items() if k.startswith("time_of_day=")) == \
        prepared["blocks"]["evaluation"]["test_frauds"]
    raw["slices"]["definitions"].append({"name": "risk_90d", "column": "terminal_risk_90d", "edges": [0.1]})
    with pytest.raises(SliceError, match=r"slice 'risk_90d' \(<dict>\) reads 'terminal_risk_90d', which the "
                                         r"evaluation frame lacks"):
        pipeline.prepare(AS_OF, parse_training_config(raw))


def test_a_task_killed_mid_run_is_redone_without_a_duplicate(lake):
    import mlflow

    from include.training.train import run_key

    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    pipeline.prepare(AS_OF, cfg)
    # what a SIGKILLed task leaves behind: a RUNNING model run with one trial and no summary
    exp = tracking.ensure_experiment(cfg.experiment)
    killed = mlflow.start_run(experiment_id=exp, tags=tracking.tags(**run_key(AS_OF, "logistic")))
    mlflow.start_run(experiment_id=exp, nested=True, tags=tracking.tags(**run_key(AS_OF, "logistic", "trial")))
    mlflow.end_run()
    killed_id = killed.info.run_id
    mlflow.end_run(status="RUNNING")  # detach without finishing it

    summary = train_family("logistic", AS_OF, cfg)
    assert summary["run_id"] != killed_id
    assert [r.info.run_id for r in _runs("model")] == [summary["run_id"]]
    assert len(_runs("trial")) == 2  # the new run's trials only; the orphan went with its parent
    assert tracking.client().get_run(killed_id).info.lifecycle_stage == "deleted"
    # and a retry after success reuses the finished run
    assert train_family("logistic", AS_OF, cfg)["run_id"] == summary["run_id"]


@pytest.mark.parametrize(("require_approval", "promote", "branch"), [
    (False, True, "promote"), (True, True, ["approve", "promote"]), (True, False, "keep_champion"),
    (False, False, "keep_champion"),
])
def test_the_approval_switch_routes_through_the_approval_operator(training_dag, tmp_path, monkeypatch,
                                                                  require_approval, promote, branch):
    raw = small_config_dict()
    raw["gate"]["require_approval"] = require_approval
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    route = training_dag.get_task("route").python_callable
    assert route({"promote": promote}) == branch
    approve = training_dag.get_task("approve")
    assert type(approve).__name__ == "ApprovalOperator" and approve.downstream_task_ids == {"promote"}

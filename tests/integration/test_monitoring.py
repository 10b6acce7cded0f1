"""Drift monitoring on simulated histories with the real chain: Spark features, a trained and
registered champion (MLflow), Spark scoring, then PSI/KS and performance per day.

Each history: 1,000 customers, stable until the drift starts; the champion is trained as of day 65
(training window days 40-46: every feature window is full, the terminal windows reaching back 37 days
included; a reference taken during the warm-up would differ from any later day), and days 66 onward
are scored and monitored."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include import warehouse
from include.config import LABEL_DELAY_DAYS
from include.drift import monitor
from include.drift.config import load_monitoring_config
from include.drift.monitor import monitor_day
from include.features.pipeline import publish_staged_features
from include.jobs.build_features import run as build_features
from include.jobs.score import run as score_job
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.pipelines.fraud.simulator import DriftScenario, SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_raw_partitions
from include.scoring import PREDICTIONS, plan_scoring, publish_predictions
from include.storage import day_range, partition_file, staging_dir
from include.training import pipeline
from include.training.config import parse_training_config
from include.training.train import train_family
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START = dt.date(2026, 1, 1)
TRAINED = START + dt.timedelta(days=65)
DRIFT_START = START + dt.timedelta(days=70)


def _scored_history(spark, root, days: int, drift: DriftScenario | None) -> list[str]:
    """Simulate, build features, train and promote a champion as of TRAINED, score every later day."""
    cfg = SimulatorConfig(n_customers=1000, n_terminals=2000, n_days=days, start_date=START, seed=11,
                          drift=(drift,) if drift else ())
    write_raw_partitions(simulate(cfg).transactions, root)
    staging = root / "_staging" / "features"
    build_features(spark, cfg.start_date, cfg.end_date, staging, root)
    publish_staged_features(staging, cfg.start_date, cfg.end_date, root)
    training = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    pipeline.prepare(TRAINED.isoformat(), training)
    challenger = pipeline.select_challenger([train_family("logistic", TRAINED.isoformat(), training)], training)
    pipeline.promote(pipeline.run_gate(challenger, training), training)
    days = [d.isoformat() for d in day_range(TRAINED + dt.timedelta(days=1), cfg.end_date)]
    plans = plan_scoring(days, training.registered_model)
    staging = staging_dir("monitoring-test", "scoring", root=root)
    score_job(spark, plans, staging)
    publish_predictions(staging, plans, root)
    return days


def _history(spark, root, days: int, drift: DriftScenario | None) -> dict[str, dict]:
    monitoring = load_monitoring_config()
    return {d: monitor_day(d, "fraud-detector", monitoring, root) for d in _scored_history(spark, root, days, drift)}


NAME = "fraud-detector"


def _report(root, day: str) -> dict:
    return json.loads((root / "reports" / "drift" / f"ds={day}" / "report.json").read_text())


def _close(a, b, path: str = "") -> None:
    """Equal, floats to 1e-12 relative."""
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _assert_small_batches_report_the_whole_day(data_root, day: str) -> None:
    """The report of a day read 250 rows at a time equals the report of the day read in one batch, and the
    whole-frame figures of the same day computed with pandas, scipy and scikit-learn as monitoring computed
    them before it streamed (include.drift.monitor reads a day in bounded batches)."""
    cfg = load_monitoring_config()
    rows = len(pd.read_parquet(partition_file(*PREDICTIONS, day, data_root)))
    assert rows > 4 * 250

    monitor.monitor_day(day, NAME, cfg, data_root, size=10**9)
    whole = _report(data_root, day)
    monitor.monitor_day(day, NAME, cfg, data_root, size=250)
    streamed = _report(data_root, day)
    for key in ("rows", "columns", "drifted", "performance", "estimate", "alerts"):
        _close(streamed[key], whole[key], key)
    assert streamed["drifted"] and streamed["performance"] is not None

    # the figures of the same day computed on whole pandas frames, as monitoring did before it streamed
    features = pd.read_parquet(partition_file("features", "baseline", day, data_root), columns=MODEL_INPUTS)
    preds = pd.read_parquet(partition_file(*PREDICTIONS, day, data_root))
    frame = monitor.drift_of_day(features, preds["score"], monitor.load_reference(str(preds["run_id"].iloc[0])),
                                 cfg, MODEL_INPUTS)
    _close(streamed["columns"], json.loads(json.dumps(frame)), "columns (whole frame)")

    labelled_day = dt.date.fromisoformat(day) - dt.timedelta(days=LABEL_DELAY_DAYS)
    scored = pd.read_parquet(partition_file(*PREDICTIONS, labelled_day, data_root))
    labels = pd.read_parquet(partition_file("raw", "labels", dt.date.fromisoformat(day), data_root),
                             columns=["transaction_id", "tx_fraud"])
    merged = scored.merge(labels, on="transaction_id", how="inner").assign(ds=labelled_day)
    perf = streamed["performance"]
    want = monitor.performance_verdict(merged, perf["expected"], perf["threshold"], cfg)
    _close({k: perf[k] for k in want}, json.loads(json.dumps(want)), "performance (whole frame)")


def test_thirty_stable_days_raise_no_alert(spark, data_root):
    results = _history(spark, data_root, 66 + 30, None)
    assert len(results) == 30
    noisy = {d: r["alerts"] for d, r in results.items() if r["alerts"]}
    assert noisy == {}


@pytest.mark.parametrize("drift", [
    DriftScenario("amount_shift", DRIFT_START, 1.5),
    DriftScenario("night_shift", DRIFT_START, 0.3),
])
def test_injected_drift_is_detected_within_two_days_and_triggers_training_once(spark, data_root, drift):
    results = _history(spark, data_root, 76, drift)
    before = [r for d, r in results.items() if dt.date.fromisoformat(d) < DRIFT_START]
    assert before and not any(r["alerts"] for r in before)
    first = min(dt.date.fromisoformat(d) for d, r in results.items() if r["alerts"])
    assert DRIFT_START <= first <= DRIFT_START + dt.timedelta(days=1)
    # one drift episode, one retraining: later days still alert but do not trigger again
    triggering = [d for d, r in results.items() if r["triggers_training"]]
    assert triggering == [first.isoformat()]
    assert all(results[d]["alerts"] for d in results if dt.date.fromisoformat(d) > first)

    report = json.loads((data_root / "reports" / "drift" / f"ds={first}" / "report.json").read_text())
    assert report["drifted"] and report["alerts"][0]["kind"] == "drift"
    html = (data_root / "reports" / "drift" / f"ds={first}" / "report.html").read_text()
    assert "<svg" in html and "Drift report" in html
    # rerunning a day replaces its drift rows and alerts
    again = monitor_day(first, "fraud-detector", load_monitoring_config(), data_root)
    assert again["alerts"] == results[first.isoformat()]["alerts"]
    with warehouse.engine().connect() as conn:
        n = conn.execute(warehouse.drift_metrics.select().where(warehouse.drift_metrics.c.ds == first)).all()
    assert len(n) == len(MODEL_INPUTS)  # the model inputs less tx_during_weekend (excluded), plus the score
    if drift.kind == "amount_shift":  # the same history, read in small batches
        _assert_small_batches_report_the_whole_day(data_root, max(results))


def test_terminal_wave_is_detected_within_two_days_of_its_first_labels(spark, data_root):
    """A wave of compromised terminals changes no transaction, only which ones are fraud, and labels
    arrive 7 days late: no monitor can see it before its first labels arrive (day S + 7). From then
    the labelled day's performance drops and the terminal-risk features move."""
    results = _history(spark, data_root, 80, DriftScenario("terminal_wave", DRIFT_START, 20))
    visible = DRIFT_START + dt.timedelta(days=LABEL_DELAY_DAYS)
    early = {d: r["alerts"] for d, r in results.items() if dt.date.fromisoformat(d) < visible}
    assert early and not any(early.values()), early
    first = min(dt.date.fromisoformat(d) for d, r in results.items() if r["alerts"])
    assert visible <= first <= visible + dt.timedelta(days=1)
    assert results[first.isoformat()]["triggers_training"]


def _set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.get(DagModel, dag_id).is_paused = paused


def test_monitoring_dag_emits_the_drift_alert_that_schedules_training(spark, data_root, request):
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from include.training.schedule import resolve_as_of
    from tests.conftest import REPO

    _scored_history(spark, data_root, 74, DriftScenario("amount_shift", DRIFT_START, 1.5))  # days 0..73
    bag = DagBag(dag_folder=str(REPO / "dags"))
    sync_bag_to_db(bag, "dags-folder", None)  # what the DAG processor does: training now listens to drift_alert
    _set_paused("training", False)  # asset events queue runs of unpaused DAGs only
    request.addfinalizer(lambda: _set_paused("training", True))
    began = dt.datetime.now(dt.UTC)
    run = bag.get_dag("monitoring").test(run_conf={"start": (DRIFT_START - dt.timedelta(days=2)).isoformat(),
                                                   "end": (DRIFT_START + dt.timedelta(days=2)).isoformat()})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success" and states["emit_drift_alert"] == "success", states

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.name == "drift_alert"))
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id,
                                                          AssetEvent.timestamp >= began)).all()
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
        assert [e.extra["ds"] for e in events] == [DRIFT_START.isoformat()]
        assert "training" in {q.target_dag_id for q in queued}  # the scheduler creates the training run from this
    # the training run it schedules is as of the alert's day
    assert resolve_as_of(None, [events[0].extra["ds"]], None) == DRIFT_START.isoformat()

    # the same episode on the next nights: alerts are recorded, no second drift_alert
    next_night = (DRIFT_START + dt.timedelta(days=3)).isoformat()
    run = bag.get_dag("monitoring").test(run_conf={"start": next_night, "end": next_night})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["should_retrain"] == "success" and states["emit_drift_alert"] == "skipped", states

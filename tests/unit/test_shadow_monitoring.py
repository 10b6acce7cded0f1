"""The shadow's live performance (docs/shadow.md): monitoring measures the shadow version on its own
partitions (predictions/fraud_shadow) by the champion's code path and writes ``role='shadow'`` rows;
a missing shadow partition writes none; the rebuild reloads them and ``shadow_predictions``; the ML
monitor draws the shadow's line beside the champion's and names its version.

Real scikit-learn, a real MLflow store and a real SQLite warehouse; synthetic calibrated scores."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from include import ml_monitor, registry, warehouse
from include.config import LABEL_DELAY_DAYS
from include.drift.config import load_monitoring_config
from include.drift.monitor import (
    PREDICTIONS,
    SHADOW_PREDICTIONS,
    day_estimate,
    day_performance,
    live_parts,
    record_shadow_estimate,
    shadow_day,
    write_report,
)
from include.storage import partition_file
from tests.unit.test_ml_monitor import fill_performance, prediction_frame, register_champion

MODEL = "fraud-detector"
CFG = load_monitoring_config()
FIRST, DAYS, N = dt.date(2026, 3, 1), 11, 1000
TODAY = FIRST + dt.timedelta(days=DAYS - 1)  # the labels of FIRST..TODAY - 7 have arrived


def _write_lake(root, versions: dict[str, str]) -> None:
    """DAYS days of champion and shadow predictions (the shadow's scores are noisier) and their labels."""
    rng = np.random.default_rng(11)
    for i in range(DAYS):
        day = FIRST + dt.timedelta(days=i)
        p = rng.beta(0.4, 30, N)
        y = (rng.random(N) < p).astype(int)
        for dataset, version, scores in ((PREDICTIONS, versions["xgboost"], p),
                                         (SHADOW_PREDICTIONS, versions["mlp"], np.clip(p + rng.normal(0, 0.02, N), 0, 1))):
            path = partition_file(*dataset, day, root)
            path.parent.mkdir(parents=True)
            prediction_frame(day, scores, version, first_tx=i * N + 1, threshold=0.05).to_parquet(path)
        labels = partition_file("raw", "labels", day + dt.timedelta(days=LABEL_DELAY_DAYS), root)
        labels.parent.mkdir(parents=True)
        pd.DataFrame({"transaction_id": np.arange(i * N + 1, (i + 1) * N + 1), "tx_fraud": y}).to_parquet(labels)


def test_monitoring_writes_the_shadow_rows_beside_the_champions(data_root):
    versions = register_champion()
    registry.set_alias(MODEL, registry.SHADOW, versions["mlp"])
    _write_lake(data_root, versions)

    champion_perf = day_performance(TODAY, MODEL, CFG, data_root)
    scores = pd.read_parquet(partition_file(*PREDICTIONS, TODAY, data_root))["score"].to_numpy()
    champion_est = day_estimate(TODAY, MODEL, versions["xgboost"], scores, 0.05, CFG, data_root)
    shadow = shadow_day(TODAY, MODEL, CFG, data_root)
    # the shadow's figures are its own: its version, its scores, the same labels
    assert shadow["performance"]["model_version"] == versions["mlp"] != champion_perf["model_version"]
    assert shadow["performance"]["n_labelled"] == champion_perf["n_labelled"] == N
    assert shadow["performance"]["auc_roc"] != champion_perf["auc_roc"]
    assert shadow["estimate"]["model_version"] == versions["mlp"] and "isotonic" in shadow["estimate"]["calibration"]

    warehouse.replace_monitoring_day(TODAY, MODEL, versions["xgboost"], [], [],
                                     performance=live_parts(TODAY, champion_perf, champion_est, shadow))
    rows = {(r["ds"], r["role"]): r for r in warehouse.performance_between(FIRST, TODAY, MODEL)}
    later = TODAY + dt.timedelta(days=LABEL_DELAY_DAYS)
    assert set(rows) == {(TODAY, "champion"), (TODAY, "shadow"), (later, "champion"), (later, "shadow")}
    assert rows[TODAY, "shadow"]["auc_roc"] == pytest.approx(shadow["performance"]["auc_roc"])
    assert rows[TODAY, "shadow"]["model_version"] == versions["mlp"]
    assert rows[TODAY, "champion"]["auc_roc"] == pytest.approx(champion_perf["auc_roc"])
    assert rows[later, "shadow"]["estimated"] and rows[later, "shadow"]["est_auc_roc"] is not None

    # the shadow DAG's estimate task, after a monitoring run that did not find today's shadow partition:
    # the same estimate half, kept beside the report for the rebuild
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.performance_days.delete().where(warehouse.performance_days.c.role == "shadow"))
    late = record_shadow_estimate(TODAY, MODEL, CFG, data_root)
    assert late["auc_roc"] == pytest.approx(shadow["estimate"]["auc_roc"])
    [row] = [r for r in warehouse.performance_between(FIRST, TODAY, MODEL) if r["role"] == "shadow"]
    assert (row["ds"], row["estimated"], row["model_version"]) == (later, True, versions["mlp"])
    assert row["est_auc_roc"] == pytest.approx(late["auc_roc"])
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.performance_days.delete())
    # the rebuild of the live performance alone (no report, the shadow's estimate file only)
    warehouse.rebuild(data_root, predictions_dataset=("none", "none"), shadow_dataset=("none", "none"))
    assert [(r["ds"], r["role"]) for r in warehouse.performance_between(FIRST, TODAY, MODEL)] == [(later, "shadow")]
    warehouse.replace_monitoring_day(TODAY, MODEL, versions["xgboost"], [], [],
                                     performance=live_parts(TODAY, champion_perf, champion_est, shadow))

    # today's shadow partition missing (the shadow failed, or has not published yet): the realised half
    # only, and a rerun leaves the shadow's estimate written before alone
    partition_file(*SHADOW_PREDICTIONS, TODAY, data_root).unlink()
    partial = shadow_day(TODAY, MODEL, CFG, data_root)
    assert partial["estimate"] is None and partial["performance"] is not None
    parts = live_parts(TODAY, champion_perf, champion_est, partial)
    assert [(p["role"], p["part"]) for p in parts] == [("champion", "realised"), ("champion", "estimate"),
                                                       ("shadow", "realised")]
    warehouse.replace_monitoring_day(TODAY, MODEL, versions["xgboost"], [], [], performance=parts)
    assert warehouse.performance_between(FIRST, TODAY, MODEL) and \
        {(r["ds"], r["role"]) for r in warehouse.performance_between(FIRST, TODAY, MODEL)} == set(rows)
    # no shadow partition at all for the day: no shadow row, never an error
    partition_file(*SHADOW_PREDICTIONS, TODAY - dt.timedelta(days=LABEL_DELAY_DAYS), data_root).unlink()
    assert shadow_day(TODAY, MODEL, CFG, data_root) is None
    assert [p["role"] for p in live_parts(TODAY, champion_perf, champion_est, None)] == ["champion", "champion"]


def test_rebuild_reloads_the_shadow_predictions_and_rows(data_root):
    day = dt.date(2026, 5, 8)
    shadow_file = partition_file(*SHADOW_PREDICTIONS, day, data_root)
    shadow_file.parent.mkdir(parents=True)
    prediction_frame(day, np.linspace(0, 1, 40), version="2").to_parquet(shadow_file)
    realised = {"labelled_day": (day - dt.timedelta(days=LABEL_DELAY_DAYS)).isoformat(), "model_version": "2",
                "threshold": 0.5, "n_labelled": 900, "n_frauds": 9, "auc_roc": 0.7, "average_precision": 0.4,
                "card_precision": 0.2, "precision_at_threshold": 0.5, "recall_at_threshold": 0.6,
                "expected_cost": 900.0, "alerts": [], "verdict": "within tolerance"}
    write_report({"ds": day.isoformat(), "model_name": MODEL, "model_version": "1", "rows": 40, "columns": [],
                  "drifted": [], "alerts": [], "triggers_training": False, "started_episode": False,
                  "deduplicated_by": None, "performance": None, "estimate": None,
                  "shadow": {"performance": realised, "estimate": None}}, data_root)
    for _ in range(2):  # a rerun of the rebuild changes nothing
        result = warehouse.rebuild(data_root)
        assert result["shadow_predictions_days"] == [day.isoformat()] and not result["not_reloaded"]
        assert warehouse.prediction_counts(day, "shadow_predictions") == {"rows": 40, "distinct_transactions": 40}
        assert warehouse.prediction_counts(day) == {"rows": 0, "distinct_transactions": 0}
        shadow_rows = [r for r in warehouse.performance_between(day - dt.timedelta(days=7), day, MODEL)
                       if r["role"] == "shadow"]
        assert [(r["ds"], r["model_version"], r["auc_roc"]) for r in shadow_rows] == [(day, "2", 0.7)]


def test_the_page_draws_the_shadow_line_and_names_its_version(data_root):
    end = dt.date(2026, 6, 30)
    fill_performance(end, 20)
    with warehouse.engine().begin() as conn:  # the same days measured for the shadow, version 7
        rows = [dict(r) for r in conn.execute(warehouse.performance_days.select()).mappings()]
        conn.execute(warehouse.performance_days.insert(), [
            {**r, "role": "shadow", "model_version": "7", "auc_roc": r["auc_roc"] and r["auc_roc"] - 0.02}
            for r in rows])
    warehouse.replace_predictions(end, prediction_frame(end, np.linspace(0, 1, 30)))
    page = ml_monitor.render_html(ml_monitor.gather(days=30, end=end, registry_timeout_s=5))
    section = page[page.index('<section id="performance">'):]
    section = section[:section.index("</section>")]
    for role in ("champion", "shadow"):
        assert re.search(rf'<polyline class="realised" data-role="{role}"', section), role
        assert re.search(rf'<polyline class="estimate" data-role="{role}"', section), role
    assert re.search(r'id="role-shadow" data-versions="7">.*shadow: version 7 \(scored beside the champion; not the '
                     r'decision\)', section)
    assert re.search(r'id="role-champion" data-versions="1">.*champion: version 1', section)

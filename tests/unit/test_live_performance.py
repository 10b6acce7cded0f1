"""Live performance: the CBPE estimator, the cost model, the warehouse's performance_days (its
idempotent halves and its rebuild from the lake's reports) and the ML monitor's section.

Real scikit-learn, a real SQLite (and PostgreSQL) warehouse; the scores are synthetic with a known
truth so that the estimator can be checked against it."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from include import ml_monitor, warehouse
from include.config import LABEL_DELAY_DAYS
from include.drift import performance
from include.drift.config import load_monitoring_config
from include.drift.monitor import performance_verdict, write_report
from include.schema import ConfigError
from include.training.metrics import evaluate
from tests.unit.test_ml_monitor import any_warehouse, fill_performance  # noqa: F401 - the fixture

MODEL = "fraud-detector"
CFG = load_monitoring_config()
COSTS = (CFG.performance.missed_fraud_cost, CFG.performance.false_alarm_cost)


def _day(rng, n: int = 5000):
    """Scores that are perfectly calibrated probabilities (a fraud rate near 1 %) and labels drawn from them."""
    p = rng.beta(0.4, 30, n)
    return p, (rng.random(n) < p).astype(int)


def _realised(p, y, threshold: float) -> dict:
    frame = pd.DataFrame({"score": p, "tx_fraud": y, "customer_id": np.arange(len(p)), "ds": dt.date(2026, 5, 1)})
    return evaluate(frame, threshold, missed_fraud_cost=COSTS[0], false_alarm_cost=COSTS[1])


# ------------------------------------------------------------------------------------------------
# the estimator


def test_on_calibrated_scores_the_estimate_matches_the_realised_figures_within_sampling_error():
    rng = np.random.default_rng(7)
    threshold = 0.05
    diffs = {k: [] for k in ("precision_at_threshold", "recall_at_threshold", "expected_cost", "auc_roc")}
    for _ in range(120):
        p, y = _day(rng)
        est, got = performance.estimate(p, threshold, *COSTS), _realised(p, y, threshold)
        for k in diffs:
            diffs[k].append(est[k] - got[k])
    for k, d in diffs.items():
        d = np.asarray(d)
        # unbiased: the mean error is within 3 standard errors of 0 (the draws are independent)
        assert abs(d.mean()) < 3 * d.std(ddof=1) / np.sqrt(len(d)) + 1e-9, (k, d.mean(), d.std())
    # and one day's estimate is within its sampling error: precision on ~100 flagged rows, sd ~ 0.05
    assert np.percentile(np.abs(diffs["precision_at_threshold"]), 95) < 0.15


def test_an_exact_small_case_by_hand():
    scores = np.array([0.9, 0.6, 0.2, 0.1])
    est = performance.estimate(scores, 0.5, missed_fraud_cost=1000, false_alarm_cost=50)
    # flagged: 0.9 and 0.6 -> E[TP] = 1.5, E[FP] = 0.5; not flagged: E[FN] = 0.2 + 0.1 = 0.3
    assert est["precision_at_threshold"] == pytest.approx(1.5 / 2)
    assert est["recall_at_threshold"] == pytest.approx(1.5 / 1.8)
    assert est["expected_frauds"] == pytest.approx(1.8)
    assert est["expected_cost"] == pytest.approx(0.3 * 1000 + 0.5 * 50)
    # AUC: every row is a fraud with weight p and genuine with weight 1 - p; the weighted share of
    # (fraud, genuine) pairs ordered correctly, ties (a row against itself) counting one half
    num = sum(scores[i] * (1 - scores[j]) * (1.0 if scores[i] > scores[j] else 0.5 if i == j else 0.0)
              for i in range(4) for j in range(4))
    assert est["auc_roc"] == pytest.approx(num / (scores.sum() * (1 - scores).sum()))


def test_undefined_figures_are_none_not_zero():
    est = performance.estimate(np.array([0.1, 0.2]), 0.5, *COSTS)
    assert est["precision_at_threshold"] is None and est["recall_at_threshold"] is not None
    assert performance.estimate(np.zeros(3), 0.5, *COSTS)["recall_at_threshold"] is None


def test_class_weighted_scores_need_the_calibration():
    """The project's models weight a fraud like ~10 genuine transactions (class_weight sqrt): their
    scores' odds are ~10 times the true odds. Raw, CBPE overstates the frauds many times; calibrated on
    labelled days of the same model, it is right."""
    rng = np.random.default_rng(3)

    def inflated(p, w=10.0):
        return w * p / (w * p + 1 - p)

    history_p, history_y = _day(rng, 60_000)
    calibration = performance.Calibration.fit(inflated(history_p), history_y)
    p, y = _day(rng, 20_000)
    threshold = 0.3
    got = _realised(inflated(p), y, threshold)
    raw = performance.estimate(inflated(p), threshold, *COSTS)
    fixed = performance.estimate(inflated(p), threshold, *COSTS, calibration=calibration)
    assert raw["expected_frauds"] > 3 * got["n_frauds"]
    assert fixed["expected_frauds"] == pytest.approx(got["n_frauds"], rel=0.15)
    assert fixed["precision_at_threshold"] == pytest.approx(got["precision_at_threshold"], abs=0.08)
    assert "isotonic on 60,000 labelled predictions" in calibration.describe()


# ------------------------------------------------------------------------------------------------
# the cost model and the configuration


def test_cost_model_from_the_config():
    assert COSTS == (1000, 50)  # training.yaml's metrics, the only source (monitoring.yaml does not repeat them)
    assert performance.cost(2, 10, *COSTS) == 2500
    with pytest.raises(ValueError, match="costs must be >= 0"):
        performance.cost(1, 1, -1, 50)
    p, y = _day(np.random.default_rng(1))
    got, flagged = _realised(p, y, 0.05), p >= 0.05
    fn, fp = int(((~flagged) & (y == 1)).sum()), int((flagged & (y == 0)).sum())
    assert got["expected_cost"] == performance.cost(fn, fp, *COSTS)


def test_a_performance_section_without_a_key_is_refused(tmp_path):
    text = (tmp_path / "m.yaml")
    from include.drift.config import DEFAULT_PATH as shipped
    lines = [line for line in open(shipped).read().splitlines() if "min_precision" not in line]
    text.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="min_precision"):
        load_monitoring_config(text)


def test_precision_under_the_configured_minimum_alerts():
    n = 2000
    y = np.zeros(n, dtype=int)
    y[:40] = 1
    score = np.where(np.arange(n) < 60, 0.9, 0.01)  # 40 frauds and 20 genuine flagged: precision 0.667
    rows = pd.DataFrame({"ds": dt.date(2026, 5, 1), "customer_id": np.arange(n), "tx_fraud": y, "score": score})
    strict = CFG.model_copy(update={"performance": CFG.performance.model_copy(update={"min_precision": 0.8})})
    verdict = performance_verdict(rows, {"auc_roc": 0.9}, 0.5, strict)
    assert verdict["precision_at_threshold"] == pytest.approx(40 / 60)
    assert verdict["alerts"] == ["precision at threshold 0.6667 is below 0.8 (60 flagged)"]
    assert verdict["expected_cost"] == 20 * 50 and verdict["n_labelled"] == n
    assert performance_verdict(rows, {"auc_roc": 0.9}, 0.5, CFG)["alerts"] == []  # the shipped 0.35


# ------------------------------------------------------------------------------------------------
# the warehouse table


def _realised_part(day: dt.date, auc: float = 0.84, alerts: list[str] | None = None, version: str = "3") -> dict:
    return {"model_version": version, "threshold": 0.3, "n_labelled": 9000, "n_frauds": 50, "auc_roc": auc,
            "average_precision": 0.6, "card_precision": 0.27, "precision_at_threshold": 0.5,
            "recall_at_threshold": 0.66, "expected_cost": 18000.0, "alerts": alerts or [],
            "verdict": "; ".join(alerts or []) or "within tolerance",
            "expected": {"auc_roc": 0.86, "average_precision": 0.64, "precision_at_threshold": 0.52,
                         "brier_score": float("nan")}}


def _estimate_part(day: dt.date, auc: float = 0.85, version: str = "3") -> dict:
    return {"scored_day": day.isoformat(), "model_version": version, "threshold": 0.3, "n_scored": 9100,
            "expected": {"auc_roc": 0.86}, "precision_at_threshold": 0.45, "recall_at_threshold": 0.7,
            "auc_roc": auc, "average_precision": 0.55, "expected_cost": 17000.0, "expected_frauds": 52.5,
            "calibration": "isotonic on 250,000 labelled predictions (2,500 frauds) of the version"}


def _write(day: dt.date, realised: dict | None, estimate: dict | None) -> None:
    warehouse.replace_monitoring_day(day, MODEL, "3", [], [],
                                     performance=performance.parts(day, realised, estimate, LABEL_DELAY_DAYS))


def _rows(start=dt.date(2026, 1, 1), end=dt.date(2026, 12, 31)) -> list[dict]:
    return warehouse.performance_between(start, end, MODEL)


def test_halves_replace_their_own_columns_and_the_error_is_stored(any_warehouse):  # noqa: F811
    d = dt.date(2026, 5, 1)
    later = d + dt.timedelta(days=LABEL_DELAY_DAYS)
    _write(d, None, _estimate_part(d))
    _write(d, None, _estimate_part(d))  # a rerun replaces
    [row] = _rows()
    assert (row["ds"], row["scored_day"], row["estimated"], row["role"]) == (later, d, True, "champion")
    assert row["est_auc_roc"] == 0.85 and row["auc_roc"] is None and row["err_auc_roc"] is None
    _write(later, _realised_part(later), None)  # the labels of d arrive on d + 7
    _write(later, _realised_part(later), None)
    [row] = _rows()
    assert not row["estimated"] and row["auc_roc"] == 0.84 and row["est_auc_roc"] == 0.85
    assert row["err_auc_roc"] == pytest.approx(0.01) and row["err_expected_frauds"] == pytest.approx(2.5)
    assert row["err_expected_cost"] == pytest.approx(-1000)
    assert json.loads(row["reference_json"]) == {"auc_roc": 0.86, "average_precision": 0.64,
                                                 "precision_at_threshold": 0.52}  # NaN left out
    _write(d, None, None)  # a rerun of d without an estimate clears the estimate half only
    [row] = _rows()
    assert row["est_auc_roc"] is None and row["err_auc_roc"] is None and row["auc_roc"] == 0.84
    _write(later, None, None)  # and with neither half the row goes
    assert _rows() == []
    # the other order (labels first, the estimate's day rerun after) gives the same row
    _write(later, _realised_part(later), None)
    _write(d, None, _estimate_part(d))
    [row] = _rows()
    assert row["err_auc_roc"] == pytest.approx(0.01) and not row["estimated"]


def test_a_skipped_estimate_keeps_its_reason(any_warehouse):  # noqa: F811
    d = dt.date(2026, 5, 1)
    _write(d, None, {"scored_day": d.isoformat(), "model_version": "3", "threshold": 0.3, "n_scored": 10,
                     "skipped": "4 labelled frauds of version 3 in the 28 days to 2026-04-24 (needs 30)"})
    [row] = _rows()
    assert row["estimated"] and row["est_auc_roc"] is None and "needs 30" in row["estimate_note"]


def test_rebuild_reloads_the_performance_from_the_reports(data_root):
    d = dt.date(2026, 5, 1)
    later = d + dt.timedelta(days=LABEL_DELAY_DAYS)
    base = {"model_name": MODEL, "model_version": "3", "rows": 9000, "columns": [], "drifted": [], "alerts": [],
            "triggers_training": False, "started_episode": False, "deduplicated_by": None}
    write_report({**base, "ds": d.isoformat(), "performance": None, "estimate": _estimate_part(d)}, data_root)
    write_report({**base, "ds": later.isoformat(), "performance": {**_realised_part(later), "labelled_day": d.isoformat()},
                  "estimate": None}, data_root)
    write_report({**base, "ds": "2026-04-01", "performance": None}, data_root)  # older report: no "estimate" key
    _write(later, _realised_part(later, auc=0.5), None)  # a warehouse that says something else
    result = warehouse.rebuild(data_root)
    assert later.isoformat() in result["monitoring_days"] and not result["not_reloaded"]
    [row] = _rows()
    assert (row["auc_roc"], row["est_auc_roc"]) == (0.84, 0.85) and row["err_auc_roc"] == pytest.approx(0.01)
    warehouse.rebuild(data_root)  # again: nothing changes
    assert [(r["ds"], r["auc_roc"], r["est_auc_roc"]) for r in _rows()] == [(later, 0.84, 0.85)]


# ------------------------------------------------------------------------------------------------
# the page


def test_the_page_shows_realised_estimated_reference_and_alerts(data_root):
    end = dt.date(2026, 6, 30)
    fill_performance(end, 60)
    warehouse.replace_predictions(end, _predictions(end))  # the window ends on the newest scored day
    data = ml_monitor.gather(days=90, end=end, registry_timeout_s=5)
    assert not data.errors and len(data.performance) == 60
    page = ml_monitor.render_html(data)
    section = re.search(r'<section id="performance">.*?</section>', page, re.S).group(0)
    assert "<h2>Live performance</h2>" in section
    for metric in ("auc_roc", "average_precision", "precision_at_threshold", "recall_at_threshold",
                   "card_precision", "expected_cost"):
        assert f'<svg class="live" data-metric="{metric}"' in section
    assert len(re.findall(r'<polyline class="realised"', section)) == 6  # one unbroken line per chart
    dashed = re.findall(r'<polyline class="estimate"[^>]*stroke-dasharray="4 3"', section)
    assert len(dashed) == 5  # every figure with an estimate (CP@100 has none)
    assert section.count('<line class="reference"') >= 5  # the offline figure (cost has no per-day one)
    assert section.count('class="alert-mark"') == 6  # day 29, on every chart (day 59 has no labels yet)
    assert "auc_roc 0.7800 is 0.0800 below" in section
    assert "60 days, 7 still waiting for their labels" in section
    assert "Mean absolute error of the estimate over the 53 days with both" in section
    assert "est. 0.850 (+0.010)" in section  # the newest labelled day: realised 0.84, estimate 0.85
    assert "labels not arrived" in section
    body = ml_monitor.as_json(data)
    assert len(body["performance"]) == 60 and body["performance"][0]["reference"]["auc_roc"] == 0.86


def test_the_section_escapes_what_the_warehouse_holds(data_root):
    end = dt.date(2026, 6, 30)
    fill_performance(end, 10, version="<b>9</b>")
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.performance_days.update().values(
            alerts="<script>alert(1)</script>", estimate_note="<img src=x onerror=alert(2)>",
            reference_json='{"auc_roc": "<i>"}'))
    page = ml_monitor.render_html(ml_monitor.gather(days=30, end=end, registry_timeout_s=5))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;b&gt;9&lt;/b&gt;" in page and "<b>9</b>" not in page


def test_no_performance_yet_is_an_empty_state(data_root):
    end = dt.date(2026, 6, 30)
    warehouse.replace_predictions(end, _predictions(end))
    page = ml_monitor.render_html(ml_monitor.gather(days=30, end=end, registry_timeout_s=5))
    assert 'id="performance-empty"' in page


def _predictions(day: dt.date):
    from tests.unit.test_ml_monitor import day_scores, prediction_frame

    return prediction_frame(day, day_scores(50))


def test_monitoring_estimates_from_the_lake_and_measures_when_labels_arrive(data_root):
    """day_estimate and day_performance on lake partitions as scoring and ingest write them, with a
    version registered in the test's MLflow store: class-weighted scores (odds x 10), calibrated on the
    version's 28 newest labelled days."""
    from include.drift.monitor import day_estimate, day_performance
    from include.storage import partition_file
    from tests.unit.test_ml_monitor import prediction_frame, register_champion

    version = register_champion(challenger=False)["xgboost"]
    rng = np.random.default_rng(5)
    first, n = dt.date(2026, 3, 1), 4000
    truth = {}
    for i in range(36):
        day = first + dt.timedelta(days=i)
        p, y = _day(rng, n)
        scores = 10 * p / (10 * p + 1 - p)
        frame = prediction_frame(day, scores, version, first_tx=i * n + 1, threshold=0.2264)
        path = partition_file("predictions", "fraud", day, data_root)
        path.parent.mkdir(parents=True)
        frame.to_parquet(path)
        labels = partition_file("raw", "labels", day + dt.timedelta(days=LABEL_DELAY_DAYS), data_root)
        labels.parent.mkdir(parents=True)
        pd.DataFrame({"transaction_id": frame["transaction_id"], "tx_fraud": y}).to_parquet(labels)
        truth[day] = (frame, y)
    today = first + dt.timedelta(days=35)  # the labels of days up to today - 7 have arrived
    frame, y = truth[today]
    est = day_estimate(today, MODEL, version, frame["score"].to_numpy(), 0.2264, CFG, data_root)
    assert "skipped" not in est and "isotonic on 112,000 labelled predictions" in est["calibration"]
    got = _realised(frame["score"].to_numpy(), y, 0.2264)
    assert est["expected_frauds"] == pytest.approx(got["n_frauds"], rel=0.25)
    assert est["precision_at_threshold"] == pytest.approx(got["precision_at_threshold"], abs=0.1)
    assert est["expected"]["average_precision"] == 0.6442  # the version's metrics tag: the reference line
    realised = day_performance(today, MODEL, CFG, data_root)
    assert realised["labelled_day"] == (today - dt.timedelta(days=7)).isoformat() and realised["n_labelled"] == n
    # the version's first week: no labels of it yet, no calibration, no estimate (never the raw scores)
    early = day_estimate(first + dt.timedelta(days=6), MODEL, version, frame["score"].to_numpy(), 0.2264, CFG,
                         data_root)
    assert early["skipped"].startswith(f"0 labelled frauds of version {version}") and "needs 30" in early["skipped"]
    _write(today, realised, est)
    rows = {r["ds"]: r for r in _rows()}
    assert rows[today]["auc_roc"] == pytest.approx(realised["auc_roc"])
    assert rows[today + dt.timedelta(days=7)]["estimated"]

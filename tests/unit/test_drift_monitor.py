"""The performance verdict on arriving labels and the monitoring configuration."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.drift.config import load_monitoring_config
from include.drift.monitor import performance_verdict, render_html

EXPECTED = {"auc_roc": 0.90, "average_precision": 0.60}
SHIPPED = load_monitoring_config()
CFG = SHIPPED.model_copy(update={"performance": SHIPPED.performance.model_copy(
    update={"auc_roc_drop": 0.05, "average_precision_drop": 0.15, "min_frauds": 10, "min_precision": 0.0})})


def _rows(informative: bool, frauds: int = 50, n: int = 3000):
    rng = np.random.default_rng(0)
    y = np.zeros(n, dtype=int)
    y[:frauds] = 1
    score = np.where(y == 1, 0.9, 0.1) if informative else rng.random(n)
    return pd.DataFrame({"ds": dt.date(2026, 5, 1), "customer_id": np.arange(n), "tx_fraud": y, "score": score})


def test_a_model_that_lost_its_skill_raises_a_performance_alert():
    verdict = performance_verdict(_rows(informative=False), EXPECTED, 0.5, CFG)
    assert len(verdict["alerts"]) == 2 and "auc_roc" in verdict["alerts"][0]
    assert "below the model's evaluation figure 0.9000" in verdict["verdict"]


def test_a_model_as_good_as_its_evaluation_is_within_tolerance():
    verdict = performance_verdict(_rows(informative=True), EXPECTED, 0.5, CFG)
    assert verdict["alerts"] == [] and verdict["verdict"] == "within tolerance"
    assert verdict["auc_roc"] == pytest.approx(1.0)


def test_too_few_frauds_gives_no_verdict():
    verdict = performance_verdict(_rows(informative=False, frauds=5), EXPECTED, 0.5, CFG)
    assert verdict["alerts"] == [] and "only 5 labelled frauds" in verdict["verdict"]


def test_shipped_monitoring_config():
    cfg = load_monitoring_config()
    assert (cfg.psi_warn, cfg.psi_alert, cfg.ks_p_value) == (0.1, 0.2, 0.05)
    assert "tx_during_weekend" in cfg.exclude_columns and cfg.cooldown_days == 7
    assert (cfg.performance.missed_fraud_cost, cfg.performance.false_alarm_cost) == (1000, 50)


def test_a_file_without_a_performance_section_monitors_no_performance(tmp_path):
    path = tmp_path / "monitoring.yaml"
    path.write_text("psi_warn: 0.1\npsi_alert: 0.2\nks_p_value: 0.05\nks_statistic: 0.1\n")
    assert load_monitoring_config(path).performance is None


def test_report_html_escapes_and_is_self_contained():
    report = {"ds": "2026-05-01", "model_name": "<m>", "model_version": "3", "rows": 10, "triggers_training": False,
              "deduplicated_by": None, "performance": None, "alerts": [],
              "columns": [{"column_name": "tx_amount", "kind": "numeric", "psi": 0.3, "psi_level": "alert",
                           "ks_statistic": 0.2, "ks_p_value": 0.001, "drifted": True,
                           "reference_proportions": [0.5, 0.5], "current_proportions": [0.2, 0.8]}]}
    page = render_html(report)
    assert "&lt;m&gt;" in page and "<svg" in page and "http" not in page

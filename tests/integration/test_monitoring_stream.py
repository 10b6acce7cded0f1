"""Monitoring a day in small batches with the real chain (Spark features, a registered champion, Spark
scoring; tests/integration/test_monitoring.py's history): the report of a day read 250 rows at a time
equals the report of the day read in one batch, and the whole-frame figures of the same day computed
with pandas, scipy and scikit-learn as monitoring computed them before it streamed."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include.config import LABEL_DELAY_DAYS
from include.drift import monitor
from include.drift.config import load_monitoring_config
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.pipelines.fraud.simulator import DriftScenario
from include.scoring import PREDICTIONS
from include.storage import partition_file
from tests.integration.test_monitoring import DRIFT_START, _scored_history

pytestmark = [pytest.mark.spark, pytest.mark.slow]

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


def test_a_day_in_small_batches_reports_what_the_whole_day_reports(spark, data_root):
    cfg = load_monitoring_config()
    days = _scored_history(spark, data_root, 76, DriftScenario("amount_shift", DRIFT_START, 1.5))
    day = days[-1]  # drifted, and the labels of a scored day arrive on it
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

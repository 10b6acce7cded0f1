"""The Spark feature job equals an independent pandas computation and never leaks the future."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include.config import LABEL_DELAY_DAYS
from include.jobs.build_features import run as build_features
from include.pipelines.fraud.features.baseline import (
    BASELINE_COLUMNS,
    MODEL_INPUTS,
    OUTPUT_COLUMNS,
    TRANSACTION_LOOKBACK_DAYS,
    baseline_features,
    label_days,
    transaction_days,
)
from include.pipelines.fraud.features.groups import GROUP_COLUMNS, column_names
from include.pipelines.fraud.simulator.landing import write_raw_partitions
from include.storage import day_range, partition_file, write_parquet_atomic
from tests.conftest import SMALL
from tests.reference_features import reference_features

pytestmark = pytest.mark.spark

FIRST = SMALL.start_date + dt.timedelta(days=40)
LAST = FIRST + dt.timedelta(days=2)


@pytest.fixture
def raw_lake(data_root, small_sim):
    write_raw_partitions(small_sim.transactions, data_root)
    return data_root


def _staged(output, days) -> pd.DataFrame:
    frames = [pd.read_parquet(next((output / f"ds={d}").glob("*.parquet"))) for d in days]
    return pd.concat(frames, ignore_index=True).sort_values("transaction_id", ignore_index=True)


def _known_labels(sim, end: dt.date) -> pd.DataFrame:
    """Labels that have arrived by the end of ``end``: those of transactions up to end - 7 days."""
    tx = sim.transactions
    return tx.loc[tx["ds"] <= end - dt.timedelta(days=LABEL_DELAY_DAYS), ["transaction_id", "tx_fraud"]]


def test_range_equals_pandas_reference(spark, raw_lake, small_sim, tmp_path):
    out = tmp_path / "staged"
    summary = build_features(spark, FIRST, LAST, out, raw_lake)
    got = _staged(out, day_range(FIRST, LAST))
    assert list(got.columns) == OUTPUT_COLUMNS

    expected = reference_features(small_sim.transactions, _known_labels(small_sim, LAST), day_range(FIRST, LAST))
    assert len(got) == len(expected) == sum(summary["rows_per_day"].values())
    pd.testing.assert_frame_equal(
        got[["transaction_id", *MODEL_INPUTS]].astype("float64"),
        expected[["transaction_id", *MODEL_INPUTS]].astype("float64"),
        check_exact=False, rtol=1e-9,
    )
    assert summary["missing_labels"] == 0
    # the first day reads exactly its lookback window, not all 50 days of history
    assert summary["transaction_partitions_read"] == TRANSACTION_LOOKBACK_DAYS + 3


def test_every_group_equals_pandas_reference(spark, raw_lake, small_sim):
    """All groups, the ones the model does not use included (the quality benchmark measures them)."""
    from include.storage import existing_partitions

    def read(dataset, days):
        return spark.read.parquet(*map(str, existing_partitions("raw", dataset, days, raw_lake)))

    groups = tuple(GROUP_COLUMNS)
    got = baseline_features(read("transactions", transaction_days(FIRST, LAST)), read("labels", label_days(FIRST, LAST)),
                            FIRST, LAST, groups).toPandas().sort_values("transaction_id", ignore_index=True)
    columns = ["tx_amount", *BASELINE_COLUMNS, *column_names(groups)]
    assert list(got.columns) == [*OUTPUT_COLUMNS[:4], *columns, "ds"]
    expected = reference_features(small_sim.transactions, _known_labels(small_sim, LAST), day_range(FIRST, LAST))
    pd.testing.assert_frame_equal(got[["transaction_id", *columns]].astype("float64"),
                                  expected[["transaction_id", *columns]].astype("float64"), check_exact=False, rtol=1e-9)
    # not vacuous: every group column varies over three days of 500 customers
    assert all(got[c].nunique() > 1 for g in groups for c in GROUP_COLUMNS[g])


def test_single_day_equals_the_same_day_of_a_range(spark, raw_lake, tmp_path):
    build_features(spark, FIRST, LAST, tmp_path / "range", raw_lake)
    single = build_features(spark, LAST, LAST, tmp_path / "single", raw_lake)
    assert single["transaction_partitions_read"] == TRANSACTION_LOOKBACK_DAYS + 1
    pd.testing.assert_frame_equal(_staged(tmp_path / "range", [LAST]), _staged(tmp_path / "single", [LAST]))


def test_labels_younger_than_the_delay_do_not_change_features(spark, raw_lake, small_sim, tmp_path):
    """The labels of transactions younger than 7 days at the feature day arrive after it. They are on
    disk here (the history is complete), yet flipping all of them must not move a single feature."""
    day = LAST
    before = build_features(spark, day, day, tmp_path / "before", raw_lake)
    for arrival in day_range(day + dt.timedelta(days=1), day + dt.timedelta(days=LABEL_DELAY_DAYS)):
        path = partition_file("raw", "labels", arrival, raw_lake)
        labels = pd.read_parquet(path)
        write_parquet_atomic(labels.assign(tx_fraud=1 - labels["tx_fraud"]), path)
    after = build_features(spark, day, day, tmp_path / "after", raw_lake)
    pd.testing.assert_frame_equal(_staged(tmp_path / "before", [day]), _staged(tmp_path / "after", [day]))
    assert before["label_partitions_read"] == after["label_partitions_read"]

    # an old label (arrived 8+ days ago) does change the terminal risk: the test above is not vacuous
    old = partition_file("raw", "labels", day - dt.timedelta(days=3), raw_lake)
    labels = pd.read_parquet(old)
    write_parquet_atomic(labels.assign(tx_fraud=1), old)
    changed = build_features(spark, day, day, tmp_path / "changed", raw_lake)
    assert changed
    assert not _staged(tmp_path / "changed", [day])["terminal_risk_30d"].equals(
        _staged(tmp_path / "before", [day])["terminal_risk_30d"])


def test_window_edges_by_hand(spark, data_root, tmp_path):
    """Current transaction in customer windows, never in terminal windows; the 7-day delay is exact."""
    t0 = pd.Timestamp("2026-05-01 12:00:00", tz="UTC")
    delay = pd.Timedelta(days=LABEL_DELAY_DAYS)
    rows = [  # (id, time, customer, terminal, amount, fraud)
        (0, t0, 1, 9, 10.0, 1),
        (1, t0 + delay - pd.Timedelta(seconds=1), 2, 9, 20.0, 1),
        (2, t0 + delay + pd.Timedelta(hours=1), 1, 8, 30.0, 0),
        (3, t0 + delay + pd.Timedelta(seconds=0), 3, 9, 40.0, 0),  # exactly 7 days after tx 0
    ]
    frame = pd.DataFrame(rows, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id",
                                        "tx_amount", "tx_fraud"])
    frame["tx_datetime"] = frame["tx_datetime"].astype("datetime64[us, UTC]")
    frame["ds"] = frame["tx_datetime"].dt.date
    frame["tx_fraud_scenario"] = frame["tx_fraud"]
    write_raw_partitions(frame, data_root)
    day = (t0 + delay).date()
    build_features(spark, day, day, tmp_path / "out", data_root)
    got = _staged(tmp_path / "out", [day]).set_index("transaction_id")

    assert got.loc[3, "terminal_nb_tx_1d"] == 1 and got.loc[3, "terminal_risk_1d"] == 1.0  # tx 0 only
    # tx 0 is 1 s short of 7 days old when tx 1 happens: its (fraud) label is not known yet
    assert got.loc[1, "terminal_nb_tx_1d"] == 0 and got.loc[1, "terminal_risk_1d"] == 0.0
    # tx 1 (fraud) happened 1 s before tx 3 on the same terminal: far too young to count
    assert got.loc[3, "terminal_nb_tx_7d"] == 1 and got.loc[3, "terminal_risk_7d"] == 1.0
    assert got.loc[3, "customer_nb_tx_1d"] == 1 and got.loc[3, "customer_avg_amount_1d"] == 40.0  # itself
    assert got.loc[2, "customer_nb_tx_30d"] == 2 and got.loc[2, "customer_avg_amount_30d"] == 20.0
    assert got.loc[2, "customer_nb_tx_7d"] == 1  # tx 0 is 7 days and 1 hour old


def test_group_window_edges_by_hand(spark):
    """Groups describe a transaction by the customer's strictly earlier ones; the label delay is exact."""
    t0 = pd.Timestamp("2026-05-01 12:00:00", tz="UTC")
    day, second = pd.Timedelta(days=1), pd.Timedelta(seconds=1)
    rows = [  # (id, time, customer, terminal, amount, fraud)
        (0, t0 - 30 * day, 1, 9, 1000.0, 0),      # exactly 30 days before tx 4: outside every window
        (1, t0 - 8 * day, 1, 9, 10.0, 1),         # 8 days before: in the 30-day windows only; label known
        (2, t0 - 2 * day, 1, 8, 30.0, 0),
        (3, t0 - 6 * day - second, 2, 9, 50.0, 1),  # fraud label 6 days old at tx 5: not known yet
        (4, t0, 1, 9, 100.0, 0),
        (5, t0, 3, 9, 60.0, 0),                   # same second as tx 4, another customer
        (6, t0, 1, 7, 20.0, 0),                   # same second as tx 4, same customer
    ]
    frame = pd.DataFrame(rows, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id",
                                        "tx_amount", "tx_fraud"])
    frame["tx_datetime"] = frame["tx_datetime"].astype("datetime64[us, UTC]")
    labels = spark.createDataFrame(frame[["transaction_id", "tx_fraud"]])
    tx = spark.createDataFrame(frame.drop(columns=["tx_fraud"]))
    today = t0.date()
    got = baseline_features(tx, labels, today, today, tuple(GROUP_COLUMNS)).toPandas().set_index("transaction_id")

    # tx 4: earlier amounts of customer 1 are 10 (8 days ago) and 30 (2 days ago); 1000 is 30 days old
    assert got.loc[4, "customer_amount_ratio_30d"] == pytest.approx(100 / 20)
    assert got.loc[4, "customer_amount_zscore_30d"] == pytest.approx((100 - 20) / pd.Series([10.0, 30.0]).std())
    assert got.loc[4, "customer_amount_ratio_7d"] == pytest.approx(100 / 30)  # one earlier amount ...
    assert got.loc[4, "customer_amount_zscore_7d"] == 0.0                     # ... has no spread
    assert got.loc[4, "customer_amount_to_max_14d"] == pytest.approx(100 / 30)
    assert got.loc[4, "customer_hours_since_previous"] == pytest.approx(48.0)
    assert got.loc[6, "customer_hours_since_previous"] == 0.0  # tx 4, the same second, comes first by id
    # the same second is not "earlier": tx 6 does not see tx 4's amount
    assert got.loc[6, "customer_amount_ratio_7d"] == pytest.approx(20 / 30)
    assert got.loc[4, "customer_terminal_nb_tx_30d"] == 1  # tx 1 at terminal 9; tx 0 is outside
    assert got.loc[4, "customer_nb_tx_same_hour_30d"] == 2  # tx 1 and tx 2 at 12:00; tx 0 is out
    # terminal 9 at t0: tx 1 (fraud, 8 days old) counts; tx 3 (fraud, under 7 days old) does not;
    # tx 0 (genuine, 30 days old) is inside the delayed 30-day window (t - 37 days, t - 7 days]
    assert got.loc[5, "terminal_nb_fraud_7d"] == 1 and got.loc[5, "terminal_nb_fraud_30d"] == 1
    assert got.loc[5, "terminal_risk_trend_7d_30d"] == pytest.approx(1 / 1 - 1 / 2)
    assert got.loc[5, "customer_hours_since_previous"] == 30 * 24.0  # a first transaction gets the cap
    assert got.loc[5, "customer_amount_ratio_30d"] == 1.0 and got.loc[5, "customer_amount_zscore_30d"] == 0.0


def test_missing_raw_day_fails_before_spark_work(spark, raw_lake, tmp_path):
    partition_file("raw", "transactions", LAST, raw_lake).unlink()
    with pytest.raises(FileNotFoundError, match=f"raw transactions missing for feature days.*{LAST}"):
        build_features(spark, FIRST, LAST, tmp_path / "out", raw_lake)
    assert not (tmp_path / "out").exists()


def test_spark_submit_entry_point(raw_lake, tmp_path):
    """The file the DAG submits runs under spark-submit and prints its summary."""
    import subprocess

    from include.config import REPO_ROOT

    out = tmp_path / "submitted"
    proc = subprocess.run(
        ["spark-submit", "--master", "local[2]", str(REPO_ROOT / "include/jobs/build_features.py"),
         "--start", str(LAST), "--output", str(out), "--root", str(raw_lake)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["start"] == summary["end"] == str(LAST)
    assert (out / "_summary.json").exists() and len(list((out / f"ds={LAST}").glob("*.parquet"))) == 1

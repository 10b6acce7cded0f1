"""The churn feature job (include/pipelines/churn/features.py) against an independent pandas
computation, its point-in-time edges and its leakage guard, on a small simulation in a raw lake."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.pipelines.churn import features as cf
from include.pipelines.churn.simulator import (
    EVENT_TABLES,
    ChurnSimulatorConfig,
    active_customers,
    simulate,
    snapshot_dates,
    weekly_snapshot,
)
from tests.churn_reference import DAY, land, oracle, write_raw

CFG = ChurnSimulatorConfig(n_customers=300, n_weeks=14, seed=3)


@pytest.fixture(scope="module")
def sim():
    return simulate(CFG)


@pytest.fixture(scope="module")
def lake(sim, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("churn-lake")
    land(sim, root, [CFG.start_date + dt.timedelta(days=i) for i in range(CFG.n_days)])
    return root


# snapshots: one whose lookback starts before the history (day 63, labelled), one with a full lookback
SNAPSHOTS = [CFG.start_date + dt.timedelta(days=d) for d in (63, 84)]


def _compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.sort_values(list(cf.KEY_COLUMNS), ignore_index=True)
    want = want.sort_values(list(cf.KEY_COLUMNS), ignore_index=True)
    assert len(got) == len(want) > 0
    assert list(got["customer_id"]) == list(want["customer_id"])
    for column in cf.OUTPUT_COLUMNS:
        if column in cf.FLOAT_INPUTS:
            np.testing.assert_allclose(got[column].to_numpy(float), want[column].to_numpy(float), rtol=1e-9,
                                       atol=0, err_msg=column)
        else:
            assert list(got[column]) == list(want[column]), column


def _compute(spark, root: Path, snapshots: list[dt.date]) -> pd.DataFrame:
    out = cf.churn_features(cf.read_inputs(spark, snapshots, root), snapshots).drop("ds").toPandas()
    out["snapshot_date"] = pd.to_datetime(out["snapshot_date"]).dt.date
    return out


@pytest.fixture(scope="module")
def staged(spark, lake, tmp_path_factory) -> tuple[Path, dict]:
    """The feature job's staged output for SNAPSHOTS (one Spark run, shared by the tests below)."""
    output = tmp_path_factory.mktemp("churn-staged") / "staged"
    return output, cf.run(spark, SNAPSHOTS[0], SNAPSHOTS[-1], output, lake)


@pytest.mark.slow
def test_spark_features_equal_the_pandas_oracle(sim, staged):
    output, summary = staged
    assert summary["snapshots"] == [s.isoformat() for s in cf.snapshot_days(SNAPSHOTS[0], SNAPSHOTS[-1])]
    for s in SNAPSHOTS:
        got = pd.read_parquet(output / f"ds={s}")
        got["snapshot_date"] = pd.to_datetime(got["snapshot_date"]).dt.date
        assert list(got.columns) == list(cf.OUTPUT_COLUMNS)
        assert summary["rows_per_snapshot"][s.isoformat()] == len(got)
        want = oracle(sim, s)
        _compare(got, want)
        # the snapshot is the simulator's active base (what its label rule and extracts hold)
        assert sorted(got["customer_id"]) == sorted(active_customers(sim, s)["customer_id"])
    # the bounded lookback: a weekly run reads 84 days of events, not the whole history
    assert cf.event_days([SNAPSHOTS[-1]]) == [SNAPSHOTS[-1] - dt.timedelta(days=d) for d in range(84, 0, -1)]


def test_labels_join_only_the_labelled_snapshots(spark, sim, lake, staged):
    labelled = SNAPSHOTS[0]  # S + 30 lies in the history; the other's label has not landed
    assert labelled in snapshot_dates(CFG, labelled_only=True) and SNAPSHOTS[1] not in snapshot_dates(
        CFG, labelled_only=True)
    features = spark.read.parquet(str(staged[0]))
    rows = cf.with_labels(features, cf.read_labels(spark, SNAPSHOTS, lake))
    got = rows.select("customer_id", "snapshot_date", cf.LABEL).toPandas()
    want = weekly_snapshot(sim, labelled)
    assert set(pd.to_datetime(got["snapshot_date"]).dt.date) == {labelled}
    assert dict(zip(got["customer_id"], got[cf.LABEL], strict=True)) == dict(
        zip(want["customer_id"], want["churned_30d"], strict=True))
    assert got[cf.LABEL].sum() > 0
    assert cf.LABEL not in cf.MODEL_INPUTS


@pytest.mark.slow
def test_events_after_the_snapshot_change_nothing(spark, sim, lake, tmp_path):
    s = SNAPSHOTS[1]
    shutil.copytree(lake, tmp_path / "lake")
    changed = tmp_path / "lake"
    at = pd.Timestamp(s, tz="UTC")
    for table in EVENT_TABLES:
        later = sim.table(table)
        later = later[later["event_time"] >= at]
        if table == "usage_events":
            later = later.assign(minutes=later["minutes"] * 10, sessions=later["sessions"] + 5)
        doubled = pd.concat([later, later], ignore_index=True)  # and every one of them twice
        for day, part in doubled.groupby(doubled["event_time"].dt.date):
            write_raw(changed, table, part, day)
    # everyone cancels on the snapshot day itself: still active at S 00:00
    before = oracle(sim, s)  # equal to the Spark features of the unchanged lake (test above)
    write_raw(changed, "cancellations", pd.DataFrame({"customer_id": before["customer_id"],
                                                       "cancel_date": s}), s)
    _compare(_compute(spark, changed, [s]), before)


def _edge_lake(root: Path, s: dt.date) -> None:
    t = pd.Timestamp(s, tz="UTC")
    customers = pd.DataFrame({"customer_id": [1, 2, 3], "signup_date": [s - dt.timedelta(days=200), s - dt.timedelta(
        days=200), s], "plan": ["basic", "standard", "premium"], "contract_type": ["monthly", "annual", "two_year"],
        "monthly_fee": [10.0, 20.0, 35.0]})
    write_raw(root, "customers", customers, s)  # a stale extract: 2 cancelled before S, 3 signs up on S
    write_raw(root, "customers", customers.iloc[:2].assign(monthly_fee=[8.0, 20.0]), s - dt.timedelta(days=28))
    write_raw(root, "cancellations", pd.DataFrame({"customer_id": [2], "cancel_date": [s - dt.timedelta(days=3)]}),
               s - dt.timedelta(days=3))
    times = {
        t: 1000,  # exactly at S, filed late in the day before's file: excluded
        t - pd.Timedelta(microseconds=1): 1,  # the last instant before S: in every window
        t - 7 * DAY: 10,  # exactly 7 days before: in the 7-day window
        t - 7 * DAY - pd.Timedelta(seconds=1): 100,  # just outside it: in 28 and 84
        t - 84 * DAY: 10_000,  # exactly at the lookback's start: included
    }
    usage = pd.DataFrame({"customer_id": 1, "event_time": pd.Series(list(times), dtype="datetime64[us, UTC]"),
                          "sessions": list(times.values()), "minutes": [float(v) for v in times.values()]})
    filed = usage["event_time"].dt.date.clip(upper=s - dt.timedelta(days=1))  # the event at S filed a day early
    for day, part in usage.groupby(filed):
        write_raw(root, "usage_events", part, day)
    # before the lookback (day S - 85): not read at all
    write_raw(root, "usage_events", usage.iloc[:1].assign(event_time=t - 84 * DAY - pd.Timedelta(seconds=1)),
               s - dt.timedelta(days=85))
    contacts = pd.DataFrame({"customer_id": [1, 1, 1], "event_time": pd.Series(
        [t - 28 * DAY, t - 28 * DAY - pd.Timedelta(seconds=1), t], dtype="datetime64[us, UTC]"),
        "kind": ["billing"] * 3})
    write_raw(root, "support_contacts", contacts, s - dt.timedelta(days=1))


def test_point_in_time_edges(spark, tmp_path):
    s = dt.date(2026, 6, 1)
    _edge_lake(tmp_path, s)
    got = _compute(spark, tmp_path, [s])
    assert list(got["customer_id"]) == [1]  # 2 cancelled before S, 3 signed up on S
    row = got.iloc[0]
    assert (row["sessions_7d"], row["sessions_28d"], row["sessions_84d"]) == (11, 111, 10_111)
    assert row["days_since_last_use"] == 1 and row["active_days_28d"] == 3
    assert (row["support_contacts_28d"], row["support_contacts_84d"]) == (1, 2)
    assert row["fee_change_28d"] == pytest.approx(10.0 / 8.0 - 1, rel=1e-12)
    assert row["tenure_days"] == 200 and row["plan_basic"] == 1 and row["contract_monthly"] == 1
    assert row["minutes_trend_7_28"] == pytest.approx((11 / 7) / (111 / 28), rel=1e-12)


def test_missing_extract_is_named(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="churn_customers/ds=2026-06-01"):
        cf.read_inputs(spark, [dt.date(2026, 6, 1)], tmp_path)

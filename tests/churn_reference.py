"""An independent pandas computation of the churn features (include/pipelines/churn/features.py) and
a writer of a churn simulation as raw partitions, for the tests of the churn pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from include.pipelines.churn import features as cf
from include.pipelines.churn.simulator import (
    CONTRACTS,
    EVENT_TABLES,
    PLANS,
    active_customers,
    snapshot_dates,
    weekly_snapshot,
)
from include.storage import partition_file, write_parquet_atomic

DAY = pd.Timedelta(days=1)


def write_raw(root: Path, table: str, frame: pd.DataFrame, day: dt.date) -> None:
    write_parquet_atomic(frame.reset_index(drop=True), partition_file("raw", cf.RAW_DATASETS[table], day, root))


def land(sim, root: Path, days: list[dt.date]) -> None:
    """The simulation as raw partitions (one file per day; days without rows have none)."""
    for table in (*EVENT_TABLES, "cancellations"):
        frame = sim.table(table)
        key = frame["cancel_date"] if table == "cancellations" else frame["event_time"].dt.date
        for day, part in frame.groupby(key):
            if day in days:
                write_raw(root, table, part, day)
    for s in snapshot_dates(sim.config):
        write_raw(root, "customers", active_customers(sim, s), s)
    for s in snapshot_dates(sim.config, labelled_only=True):
        label = weekly_snapshot(sim, s)[["snapshot_date", "customer_id", "churned_30d"]]
        write_raw(root, "labels", label, s + dt.timedelta(days=30))


def oracle(sim, s: dt.date) -> pd.DataFrame:
    """The features of snapshot ``s``, computed with pandas from the simulation's frames."""
    c = sim.customers.copy()
    cancel = c["customer_id"].map(sim.cancellations.set_index("customer_id")["cancel_date"])
    c = c[(c["signup_date"] < s) & ~(cancel < s)].set_index("customer_id")
    changes = sim.fee_changes.sort_values("change_date")

    def fee_on(day: dt.date) -> pd.Series:
        fee = c["monthly_fee"].copy()
        last = changes[changes["change_date"] <= day].groupby("customer_id")["new_fee"].last()
        fee.loc[fee.index.intersection(last.index)] = last
        return fee

    out = pd.DataFrame(index=c.index)
    out["snapshot_date"] = s
    out["plan"], out["contract_type"] = c["plan"], c["contract_type"]
    out["tenure_days"] = [(s - d).days for d in c["signup_date"]]
    out["monthly_fee"] = fee_on(s)
    before = s - dt.timedelta(days=28)
    had = (c["signup_date"] < before) & (before >= sim.config.start_date)  # the extract of S - 28 holds them
    out["fee_change_28d"] = np.where(had, out["monthly_fee"] / fee_on(before) - 1, 0.0)
    for p in PLANS:
        out[f"plan_{p}"] = (c["plan"] == p).astype(np.int64)
    for k in CONTRACTS:
        out[f"contract_{k}"] = (c["contract_type"] == k).astype(np.int64)
    at = pd.Timestamp(s, tz="UTC")

    def window(frame: pd.DataFrame, n: int) -> pd.DataFrame:
        return frame[(frame["event_time"] >= at - n * DAY) & (frame["event_time"] < at)]

    u = sim.usage_events
    for n in (7, 28, 84):
        w = window(u, n).groupby("customer_id")
        out[f"sessions_{n}d"] = w["sessions"].sum().reindex(out.index, fill_value=0).astype(np.int64)
        out[f"minutes_{n}d"] = w["minutes"].sum().reindex(out.index, fill_value=0.0)
    w28 = window(u, 28)
    out["active_days_28d"] = (w28.assign(day=w28["event_time"].dt.date).groupby("customer_id")["day"].nunique()
                              .reindex(out.index, fill_value=0).astype(np.int64))
    for name, short, long, ratio in (("minutes_trend_7_28", "minutes_7d", "minutes_28d", 4.0),
                                     ("minutes_trend_28_84", "minutes_28d", "minutes_84d", 3.0)):
        out[name] = np.where(out[long] > 0, np.minimum(out[short] * ratio / out[long].where(out[long] > 0, 1.0),
                                                       ratio), 0.0)
    last = window(u, 84).groupby("customer_id")["event_time"].max()
    out["days_since_last_use"] = [(s - last[i].date()).days if i in last.index else 85 for i in out.index]
    for table, prefix in (("support_contacts", "support_contacts"), ("payment_failures", "payment_failures")):
        for n in (28, 84):
            out[f"{prefix}_{n}d"] = (window(sim.table(table), n).groupby("customer_id").size()
                                     .reindex(out.index, fill_value=0).astype(np.int64))
    return out.reset_index()[list(cf.OUTPUT_COLUMNS)]

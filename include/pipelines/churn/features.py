"""The model inputs of the churn pipeline: point-in-time features of each active customer at each
weekly snapshot, computed in Spark (docs/churn.md, "Features").

**Point in time.** The features of snapshot ``S`` (a Monday, taken at ``S`` 00:00 UTC) read only
what was known then:

- the customers are those of the weekly customer extract of ``S`` with ``signup_date < S``, less any
  whose cancellation is dated before ``S`` (a cancellation dated ``S`` or later is the future: the
  customer is in the snapshot, and its label says it churned);
- an event counts in the N-day window when ``S - N days <= event_time < S``: an event at exactly
  ``S`` 00:00 is excluded, one at exactly ``S - N days`` 00:00 is included (N × 86,400 seconds);
- the fee change compares the fee of the extract of ``S`` with that of the extract of ``S - 28``;
- the label (``churned_30d``, known on ``S + 30``) is never a feature: :func:`with_labels` joins it
  to the rows of the snapshots whose label has landed, for training only.

**Bounded lookback.** A snapshot reads the event partitions of the :data:`LOOKBACK_DAYS` days before
it, its own extract and the one :data:`FEE_CHANGE_DAYS` earlier: a week's run costs the same in the
first month as after years of history.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from include.pipelines.churn.simulator import CONTRACTS, LABEL_HORIZON_DAYS, PLANS, SNAPSHOT_WEEKDAY
from include.storage import as_date, day_range, existing_partitions, parquet_row_count, partition_file

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOOKBACK_DAYS = 84  # the longest window; nothing older is read
USAGE_WINDOWS = (7, 28, 84)
EVENT_WINDOWS = (28, 84)  # support contacts and payment failures
ACTIVE_DAYS_WINDOW = 28
FEE_CHANGE_DAYS = 28
NO_USE_DAYS = LOOKBACK_DAYS + 1  # days_since_last_use of a customer with no use in the lookback
# usage trends: mean daily minutes over the short window / over the long one, at most long / short
TRENDS = {"minutes_trend_7_28": ("minutes_7d", "minutes_28d"), "minutes_trend_28_84": ("minutes_28d", "minutes_84d")}
TREND_CAP = {"minutes_trend_7_28": 28 / 7, "minutes_trend_28_84": 84 / 28}

# Raw datasets the job reads, by simulator table (raw/<dataset>/ds=<day>/data.parquet): events and
# cancellations by day, customer extracts by snapshot day, labels by the day they land (S + 30).
RAW_DATASETS = {
    "customers": "churn_customers",
    "usage_events": "churn_usage_events",
    "support_contacts": "churn_support_contacts",
    "payment_failures": "churn_payment_failures",
    "cancellations": "churn_cancellations",
    "labels": "churn_labels",
}
FEATURE_SET = "churn"

KEY_COLUMNS = ("snapshot_date", "customer_id")
DESCRIPTIVE_COLUMNS = ("plan", "contract_type")  # kept for slices and reports; their one-hot forms are inputs
PLAN_COLUMNS = tuple(f"plan_{p}" for p in PLANS)
CONTRACT_COLUMNS = tuple(f"contract_{c}" for c in CONTRACTS)
SESSION_COLUMNS = tuple(f"sessions_{n}d" for n in USAGE_WINDOWS)
MINUTE_COLUMNS = tuple(f"minutes_{n}d" for n in USAGE_WINDOWS)
SUPPORT_COLUMNS = tuple(f"support_contacts_{n}d" for n in EVENT_WINDOWS)
FAILURE_COLUMNS = tuple(f"payment_failures_{n}d" for n in EVENT_WINDOWS)
MODEL_INPUTS = (
    "tenure_days", "monthly_fee", "fee_change_28d", *PLAN_COLUMNS, *CONTRACT_COLUMNS,
    *SESSION_COLUMNS, *MINUTE_COLUMNS, f"active_days_{ACTIVE_DAYS_WINDOW}d", *TREND_CAP,
    "days_since_last_use", *SUPPORT_COLUMNS, *FAILURE_COLUMNS,
)
FLOAT_INPUTS = ("monthly_fee", "fee_change_28d", *MINUTE_COLUMNS, *TREND_CAP)  # the others are integers
OUTPUT_COLUMNS = (*KEY_COLUMNS, *DESCRIPTIVE_COLUMNS, *MODEL_INPUTS)
LABEL = "churned_30d"


def snapshot_days(start: str | dt.date, end: str | dt.date) -> list[dt.date]:
    """The snapshot dates (Mondays) of ``start..end``, both inclusive."""
    return [d for d in day_range(start, end) if d.weekday() == SNAPSHOT_WEEKDAY]


def event_days(snapshots: Iterable[dt.date]) -> list[dt.date]:
    """The event and cancellation partitions the snapshots read: the lookback days before each."""
    return sorted({d for s in snapshots for d in day_range(s - dt.timedelta(days=LOOKBACK_DAYS),
                                                             s - dt.timedelta(days=1))})


def extract_days(snapshots: Iterable[dt.date]) -> list[dt.date]:
    """The customer extracts the snapshots read: their own and the one FEE_CHANGE_DAYS before."""
    return sorted({d for s in snapshots for d in (s, s - dt.timedelta(days=FEE_CHANGE_DAYS))})


def label_days(snapshots: Iterable[dt.date]) -> list[dt.date]:
    """The label partitions of the snapshots: landed on S + 30, the day the label becomes known."""
    return sorted({s + dt.timedelta(days=LABEL_HORIZON_DAYS) for s in snapshots})


_EMPTY_SCHEMAS = {
    "usage_events": "customer_id long, event_time timestamp, sessions long, minutes double",
    "support_contacts": "customer_id long, event_time timestamp, kind string",
    "payment_failures": "customer_id long, event_time timestamp, kind string",
    "cancellations": "customer_id long, cancel_date date",
    "labels": "snapshot_date date, customer_id long, churned_30d long",
}


def _read(spark: SparkSession, table: str, days: list[dt.date], root: Path | None) -> DataFrame:
    paths = existing_partitions("raw", RAW_DATASETS[table], days, root)
    if not paths:  # days before the history began, or a quiet stretch with no file
        return spark.createDataFrame([], _EMPTY_SCHEMAS[table])
    return spark.read.parquet(*map(str, paths))


def read_inputs(spark: SparkSession, snapshots: list[dt.date], root: Path | None = None) -> dict[str, DataFrame]:
    """The raw partitions the features of ``snapshots`` read, and only those (bounded lookback).
    The customer extract of every snapshot must exist (FileNotFoundError naming the missing ones);
    event days before the history began may be absent."""
    from pyspark.sql import functions as F

    missing = [str(partition_file("raw", RAW_DATASETS["customers"], s, root)) for s in snapshots
               if not partition_file("raw", RAW_DATASETS["customers"], s, root).exists()]
    if missing:
        raise FileNotFoundError(f"churn features: no customer extract for snapshots {missing}; run ingest first")
    extracts = None
    for day in extract_days(snapshots):
        path = existing_partitions("raw", RAW_DATASETS["customers"], [day], root)
        if path:  # the extract of S - 28 is absent in the first weeks of the history: no fee change seen
            part = spark.read.parquet(str(path[0])).withColumn("snapshot_date", F.lit(day))
            extracts = part if extracts is None else extracts.unionByName(part)
    days = event_days(snapshots)
    return {"customers": extracts, **{t: _read(spark, t, days, root) for t in
                                      ("usage_events", "support_contacts", "payment_failures", "cancellations")}}


def read_labels(spark: SparkSession, snapshots: list[dt.date], root: Path | None = None) -> DataFrame:
    """The labels of ``snapshots`` that have landed (an empty frame for those not known yet)."""
    return _read(spark, "labels", label_days(snapshots), root)


def _utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def churn_features(inputs: dict[str, DataFrame], snapshots: list[dt.date]) -> DataFrame:
    """One row per (snapshot, active customer) with :data:`OUTPUT_COLUMNS` and ``ds`` (the snapshot
    day, for partitioned writes). ``inputs`` as :func:`read_inputs` returns them; the session time
    zone must be UTC (include/spark.py)."""
    from pyspark.sql import functions as F

    snapshots = sorted(set(snapshots))
    if not snapshots:
        raise ValueError("churn features: no snapshot date (Mondays) in the requested range")
    customers = inputs["customers"]
    spark = customers.sparkSession
    windows = sorted({*USAGE_WINDOWS, *EVENT_WINDOWS, ACTIVE_DAYS_WINDOW})
    snaps = spark.createDataFrame(
        [(s, _utc(s), *[_utc(s - dt.timedelta(days=n)) for n in windows]) for s in snapshots],
        ", ".join(["snapshot_date date", "snapshot_ts timestamp", *[f"from_{n} timestamp" for n in windows]]))
    keys = list(KEY_COLUMNS)

    def windowed(events: DataFrame) -> DataFrame:
        """Each event beside every snapshot whose lookback holds it."""
        return events.join(F.broadcast(snaps), (F.col("event_time") < F.col("snapshot_ts"))
                           & (F.col("event_time") >= F.col(f"from_{LOOKBACK_DAYS}")))

    def within(n: int):
        return F.col("event_time") >= F.col(f"from_{n}")

    usage = windowed(inputs["usage_events"]).groupBy(*keys).agg(
        *[F.sum(F.when(within(n), F.col("sessions")).otherwise(F.lit(0))).alias(f"sessions_{n}d")
          for n in USAGE_WINDOWS],
        *[F.sum(F.when(within(n), F.col("minutes")).otherwise(F.lit(0.0))).alias(f"minutes_{n}d")
          for n in USAGE_WINDOWS],
        # usage records are one per customer and day (the suite churn_usage_events checks it): a count,
        # not a distinct count, which would make Spark expand every row for its distinct aggregate
        F.count(F.when(within(ACTIVE_DAYS_WINDOW), F.lit(1))).alias(f"active_days_{ACTIVE_DAYS_WINDOW}d"),
        F.max("event_time").alias("last_use"))
    support = windowed(inputs["support_contacts"]).groupBy(*keys).agg(
        *[F.count(F.when(within(n), F.lit(1))).alias(f"support_contacts_{n}d") for n in EVENT_WINDOWS])
    failures = windowed(inputs["payment_failures"]).groupBy(*keys).agg(
        *[F.count(F.when(within(n), F.lit(1))).alias(f"payment_failures_{n}d") for n in EVENT_WINDOWS])
    cancelled = (inputs["cancellations"].join(
        F.broadcast(snaps), (F.col("cancel_date") < F.col("snapshot_date"))
        & (F.col("cancel_date") >= F.date_sub("snapshot_date", LOOKBACK_DAYS)))
        .select(*keys).distinct())
    previous = customers.select(F.date_add("snapshot_date", FEE_CHANGE_DAYS).alias("snapshot_date"),
                                "customer_id", F.col("monthly_fee").alias("previous_fee"))

    base = (customers.join(F.broadcast(snaps.select("snapshot_date")), "snapshot_date")
            .where(F.col("signup_date") < F.col("snapshot_date"))
            .join(cancelled, keys, "left_anti"))
    rows = (base.join(usage, keys, "left").join(support, keys, "left").join(failures, keys, "left")
            .join(previous, keys, "left"))

    def zero(column: str, kind: str = "long"):
        return F.coalesce(F.col(column), F.lit(0)).cast(kind).alias(column)

    per_day = {f"minutes_{n}d": n for n in USAGE_WINDOWS}

    def trend(short: str, long: str):
        """Mean daily minutes over the short window / over the long one (0 without use in the long one),
        at most long / short (all the use in the short window; the cap absorbs rounding errors)."""
        cap = per_day[long] / per_day[short]
        ratio = F.least((F.col(short) / per_day[short]) / (F.col(long) / per_day[long]), F.lit(cap))
        return F.when(F.col(long) > 0, ratio).otherwise(F.lit(0.0))

    counted = rows.select(
        *keys, *DESCRIPTIVE_COLUMNS,
        F.datediff("snapshot_date", "signup_date").cast("long").alias("tenure_days"),
        F.col("monthly_fee").cast("double").alias("monthly_fee"),
        F.when(F.col("previous_fee") > 0, F.col("monthly_fee") / F.col("previous_fee") - 1)
        .otherwise(F.lit(0.0)).alias("fee_change_28d"),
        *[(F.col("plan") == p).cast("long").alias(f"plan_{p}") for p in PLANS],
        *[(F.col("contract_type") == c).cast("long").alias(f"contract_{c}") for c in CONTRACTS],
        *[zero(c) for c in SESSION_COLUMNS], *[zero(c, "double") for c in MINUTE_COLUMNS],
        zero(f"active_days_{ACTIVE_DAYS_WINDOW}d"),
        F.coalesce(F.datediff("snapshot_date", F.to_date("last_use")), F.lit(NO_USE_DAYS)).cast("long")
        .alias("days_since_last_use"),
        *[zero(c) for c in (*SUPPORT_COLUMNS, *FAILURE_COLUMNS)])
    trends = {name: trend(short, long) for name, (short, long) in TRENDS.items()}
    out = counted.select(*KEY_COLUMNS, *DESCRIPTIVE_COLUMNS,
                         *[trends.get(name, F.col(name)).alias(name) for name in MODEL_INPUTS])
    return out.withColumn("ds", F.col("snapshot_date"))


def with_labels(features: DataFrame, labels: DataFrame) -> DataFrame:
    """The training rows: features of the snapshots whose label has landed, with ``churned_30d``.
    Rows without a label (snapshots younger than 30 days) are left out, never given a false 0."""
    return features.join(labels.select(*KEY_COLUMNS, LABEL), list(KEY_COLUMNS), "inner")


def run(spark: SparkSession, start: str | dt.date, end: str | dt.date, output: Path,
        root: Path | None = None) -> dict:
    """Compute and stage the features of the snapshots in ``start..end``: one parquet file per
    snapshot under ``<output>/ds=<S>/`` and a ``_summary.json``, as the fraud job does
    (include/jobs/build_features.py); publishing is the caller's job, after the checkpoint."""
    began = time.perf_counter()
    snapshots = snapshot_days(as_date(start), as_date(end))
    inputs = read_inputs(spark, snapshots, root)
    features = churn_features(inputs, snapshots)
    features.repartition("ds").write.mode("overwrite").partitionBy("ds").parquet(str(output))
    summary = {
        "start": as_date(start).isoformat(), "end": as_date(end).isoformat(),
        "snapshots": [s.isoformat() for s in snapshots],
        "event_partitions_read": len(existing_partitions("raw", RAW_DATASETS["usage_events"],
                                                         event_days(snapshots), root)),
        "rows_per_snapshot": {folder.name.removeprefix("ds="): sum(parquet_row_count(f)
                                                                   for f in folder.glob("*.parquet"))
                              for folder in sorted(output.glob("ds=*"))},
        "seconds": round(time.perf_counter() - began, 2),
    }
    (output / "_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary

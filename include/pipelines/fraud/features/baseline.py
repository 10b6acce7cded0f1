"""The model inputs of the fraud pipeline, computed point-in-time correct in Spark.

The 15 baseline inputs of shared/SIMULATOR.md:

- Customer windows over (t - N days, t], the current transaction included.
- Terminal windows over (t - (d + N) days, t - d days] with the label delay d = 7: the current
  transaction and the last 7 days are excluded, so only labels known at time t are used.

and the groups of :mod:`include.pipelines.fraud.features.groups` that paid on the rolling quality benchmark
(``MODEL_GROUPS``; the measurement is in docs/benchmarks.md, "Model quality").

Windows are range frames over epoch seconds, so "N days" means exactly N * 86,400 seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from include.config import LABEL_DELAY_DAYS
from include.pipelines.fraud.features.groups import (
    DAY_SECONDS,
    MODEL_GROUPS,
    column_names,
    delayed_terminal_window,
    group_columns,
)
from include.storage import day_range

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CUSTOMER_WINDOWS = (1, 7, 30)
TERMINAL_WINDOWS = (1, 7, 30)

BASELINE_COLUMNS = [
    "tx_during_weekend",
    "tx_during_night",
    *[f"customer_{kind}_{n}d" for n in CUSTOMER_WINDOWS for kind in ("nb_tx", "avg_amount")],
    *[f"terminal_{kind}_{n}d" for n in TERMINAL_WINDOWS for kind in ("nb_tx", "risk")],
]
FEATURE_COLUMNS = [*BASELINE_COLUMNS, *column_names(MODEL_GROUPS)]
MODEL_INPUTS = ["tx_amount", *FEATURE_COLUMNS]
KEY_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
OUTPUT_COLUMNS = [*KEY_COLUMNS, *MODEL_INPUTS]

# How far back the inputs of one feature day reach.
TRANSACTION_LOOKBACK_DAYS = max(max(CUSTOMER_WINDOWS), LABEL_DELAY_DAYS + max(TERMINAL_WINDOWS))
# Labels are partitioned by arrival day (transaction day + delay); the oldest transaction a terminal
# window reads is LABEL_DELAY + max(N) days old, so its label arrived max(N) days before the day.
LABEL_LOOKBACK_DAYS = max(TERMINAL_WINDOWS)


def transaction_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Raw transaction partitions that the features of [start, end] read."""
    return day_range(start - dt.timedelta(days=TRANSACTION_LOOKBACK_DAYS), end)


def label_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Raw label partitions (by arrival day) that the features of [start, end] read; never after ``end``."""
    return day_range(start - dt.timedelta(days=LABEL_LOOKBACK_DAYS), end)


def baseline_features(transactions: DataFrame, labels: DataFrame, start: dt.date, end: dt.date,
                      groups: tuple[str, ...] = MODEL_GROUPS) -> DataFrame:
    """Features of every transaction of days [start, end]: the baseline and ``groups``.

    ``transactions`` must cover :func:`transaction_days` and ``labels`` (transaction_id, tx_fraud)
    the labels that had arrived by ``end``. The session time zone must be UTC. The columns are
    :data:`OUTPUT_COLUMNS` for the default ``groups`` (the benchmark passes others).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    tx = transactions.select(*KEY_COLUMNS, "tx_amount").join(
        labels.select("transaction_id", "tx_fraud"), on="transaction_id", how="left"
    )
    tx = tx.withColumn("ts", F.col("tx_datetime").cast("long"))

    cols = [
        F.dayofweek("tx_datetime").isin(1, 7).cast("int").alias("tx_during_weekend"),  # 1 = Sunday
        (F.hour("tx_datetime") <= 6).cast("int").alias("tx_during_night"),
    ]
    for n in CUSTOMER_WINDOWS:
        w = Window.partitionBy("customer_id").orderBy("ts").rangeBetween(-n * DAY_SECONDS + 1, 0)
        cols += [
            F.count(F.lit(1)).over(w).alias(f"customer_nb_tx_{n}d"),
            F.avg("tx_amount").over(w).alias(f"customer_avg_amount_{n}d"),
        ]
    delay = LABEL_DELAY_DAYS * DAY_SECONDS
    for n in TERMINAL_WINDOWS:
        w = delayed_terminal_window(n, delay)
        nb = F.count(F.lit(1)).over(w)
        frauds = F.coalesce(F.sum("tx_fraud").over(w), F.lit(0))
        cols += [
            nb.alias(f"terminal_nb_tx_{n}d"),
            F.when(nb > 0, frauds / nb).otherwise(F.lit(0.0)).alias(f"terminal_risk_{n}d"),
        ]

    extra = [c for g in groups for c in group_columns(g, delay)]

    begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    out = tx.select(*KEY_COLUMNS, "tx_amount", *cols, *extra).where(
        (F.col("tx_datetime") >= F.lit(begin)) & (F.col("tx_datetime") < F.lit(stop))
    )
    columns = [*KEY_COLUMNS, "tx_amount", *BASELINE_COLUMNS, *column_names(groups)]
    return out.select(*columns).withColumn("ds", F.to_date("tx_datetime"))


def missing_label_count(transactions: DataFrame, labels: DataFrame, end: dt.date) -> int:
    """Transactions old enough to be labelled by ``end`` whose label never arrived."""
    from pyspark.sql import functions as F

    cutoff = dt.datetime.combine(end - dt.timedelta(days=LABEL_DELAY_DAYS - 1), dt.time(), tzinfo=dt.UTC)
    old = transactions.where(F.col("tx_datetime") < F.lit(cutoff)).select("transaction_id")
    return old.join(labels.select("transaction_id"), "transaction_id", "left_anti").count()

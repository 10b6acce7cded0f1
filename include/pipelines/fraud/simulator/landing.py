"""Deliver a simulation as daily landing files, the way an upstream system would drop them.

- ``landing/transactions/<D>.parquet``: the transactions of day D (no labels).
- ``landing/labels/<A>.parquet``: the labels that arrive on day A, i.e. of the transactions of
  day A - 7. Every day gets a labels file; in the first seven days it is empty.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from include.config import LABEL_DELAY_DAYS
from include.pipelines.fraud.simulator.generator import LABEL_COLUMNS, TRANSACTION_COLUMNS
from include.storage import landing_file, partition_file, write_parquet_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandingSummary:
    days: int  # one transactions file and one labels file each
    transactions: int


def daily_files(transactions: pd.DataFrame):
    """(day, transactions of the day, labels arriving that day) for every simulated day."""
    by_day = {day: frame for day, frame in transactions.groupby("ds", sort=True)}
    no_labels = transactions[LABEL_COLUMNS].iloc[:0]
    for day, frame in by_day.items():
        labelled = by_day.get(day - dt.timedelta(days=LABEL_DELAY_DAYS))
        labels = no_labels if labelled is None else labelled[LABEL_COLUMNS]
        yield day, frame[TRANSACTION_COLUMNS].reset_index(drop=True), labels.reset_index(drop=True)


def write_landing_files(transactions: pd.DataFrame, root: Path | None = None) -> LandingSummary:
    """Write one transactions file and one labels file (those arriving that day) per day."""
    days = 0
    for day, tx, labels in daily_files(transactions):
        write_parquet_atomic(tx, landing_file("transactions", day, root))
        write_parquet_atomic(labels, landing_file("labels", day, root))
        days += 1
    log.info("landed %d days of transaction and label files", days)
    return LandingSummary(days, len(transactions))


def write_raw_partitions(transactions: pd.DataFrame, root: Path | None = None) -> int:
    """Seed ``raw/`` directly, as if every day had passed ingest: for tests and benchmarks only."""
    days = 0
    for day, tx, labels in daily_files(transactions):
        write_parquet_atomic(tx, partition_file("raw", "transactions", day, root))
        write_parquet_atomic(labels, partition_file("raw", "labels", day, root))
        days += 1
    return days

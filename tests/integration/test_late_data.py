"""Ingest in any order: a backfill that runs the days newest first validates the labels of a day
before the transactions they label are published. Those labels wait (a retryable MissingInputError),
they are never judged against a guess and quarantined; the real checkpoint, on the small simulation."""

from __future__ import annotations

import datetime as dt

import pytest

from include.config import LABEL_DELAY_DAYS
from include.ingest import publish_landing
from include.pipelines.fraud.simulator.generator import TRANSACTION_COLUMNS
from include.pipelines.fraud.simulator.landing import write_landing_files
from include.storage import (
    MissingInputError,
    file_sha256,
    landing_file,
    parquet_row_count,
    partition_file,
    write_parquet_atomic,
)
from include.validation.datasets import validate_partitions
from tests.conftest import SMALL

FIRST = SMALL.start_date
DAYS = [FIRST + dt.timedelta(days=n) for n in range(10)]


@pytest.fixture
def newest_first(data_root, small_sim):
    """Landing files of the first ten days; a backfill running newest first has published the
    transactions of the days from FIRST + 2 on, not yet those of FIRST and FIRST + 1."""
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= DAYS[-1]], data_root)
    for day in DAYS[2:]:
        frame = tx.loc[tx["ds"] == day, TRANSACTION_COLUMNS].reset_index(drop=True)
        write_parquet_atomic(frame, partition_file("raw", "transactions", day, data_root))
    return data_root


def test_labels_validated_before_their_transactions_wait_for_them(newest_first):
    day = DAYS[8]  # its labels label the transactions of DAYS[1], not published yet
    labelled_day = day - dt.timedelta(days=LABEL_DELAY_DAYS)
    landing = landing_file("labels", day, newest_first)
    delivered = file_sha256(landing)
    assert parquet_row_count(landing) > 0

    with pytest.raises(MissingInputError) as waiting:  # retried by the task, not a DataQualityError
        validate_partitions("raw_labels", [day])
    message = str(waiting.value)
    assert f"raw_labels ds={day}" in message and f"transactions of {labelled_day}" in message
    assert f"redeliver landing/transactions for {labelled_day}" in message
    assert not (newest_first / "quarantine").exists() and file_sha256(landing) == delivered
    assert not partition_file("raw", "labels", day, newest_first).exists()

    # the backfill reaches DAYS[1]: its transactions pass with only later days published (the id
    # bound comes from the day after), and the labels that waited for them pass on their retry
    report = validate_partitions("raw_transactions", [labelled_day])[0]
    publish_landing("transactions", labelled_day, report.sha256)
    assert validate_partitions("raw_labels", [day])[0].success
    assert not (newest_first / "quarantine").exists()


def test_an_empty_labels_file_before_the_first_day_is_the_start_of_history(newest_first):
    day = DAYS[3]  # labels the transactions of FIRST - 4: before the simulation began, none
    assert parquet_row_count(landing_file("labels", day, newest_first)) == 0
    report = validate_partitions("raw_labels", [day])[0]
    assert report.success and report.rows == 0
    assert not (newest_first / "quarantine").exists()

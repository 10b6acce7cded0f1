"""Bad landing files are stopped by the real Great Expectations checkpoint, with a clear message,
quarantined, and never published; good files publish atomically and reruns replace."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from include.ingest import publish_landing
from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions
from include.storage import MissingInputError, landing_file, partition_file, write_parquet_atomic
from include.validation.checkpoints import DataQualityError
from include.validation.datasets import validate_partitions
from tests.conftest import SMALL

DAY = SMALL.start_date + dt.timedelta(days=10)  # labels of DAY are those of DAY - 7


@pytest.fixture
def landed(data_root, small_sim):
    """Landing files of the small simulation, and raw transactions published for the first 10 days."""
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= DAY], data_root)
    write_raw_partitions(tx[tx["ds"] < DAY], data_root)  # the days before went through ingest
    return data_root


def _rewrite(root, source: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = landing_file(source, DAY, root)
    write_parquet_atomic(change(pd.read_parquet(path)), path)


def _set(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame.astype({column: "float64"}) if value is None or isinstance(value, float) else frame


BAD_TRANSACTIONS = {
    "missing_column": (lambda f: f.drop(columns=["terminal_id"]), "terminal_id", "expect_table_columns_to_match_set"),
    "unknown_extra_column": (lambda f: f.assign(card_pin=1234), None, "expect_table_columns_to_match_set"),
    "amount_as_text": (lambda f: f.assign(tx_amount=f["tx_amount"].astype(str)), "tx_amount",
                       "expect_column_values_to_be_in_type_list"),
    "null_customer_key": (lambda f: f.assign(customer_id=f["customer_id"].astype("float64").mask(f.index == 3)),
                          "customer_id", "expect_column_values_to_not_be_null"),
    "duplicate_transaction_id": (lambda f: f.assign(transaction_id=f["transaction_id"].where(f.index != 5,
                                                                                            f["transaction_id"][4])),
                                 "transaction_id", "expect_column_values_to_be_unique"),
    "negative_amount": (lambda f: f.assign(tx_amount=f["tx_amount"].where(f.index != 2, -12.5)), "tx_amount",
                        "expect_column_values_to_be_between"),
    "absurd_amount": (lambda f: f.assign(tx_amount=f["tx_amount"].where(f.index != 2, 9e9)), "tx_amount",
                      "expect_column_values_to_be_between"),
    "timestamp_outside_the_day": (
        lambda f: f.assign(tx_datetime=f["tx_datetime"].where(f.index != 0, f["tx_datetime"][0] - pd.Timedelta("1D"))),
        "tx_datetime", "expect_column_values_to_be_between"),
    "empty_file": (lambda f: f.iloc[:0], None, "expect_table_row_count_to_be_between"),
    "half_the_day_missing": (lambda f: f.iloc[: len(f) // 3], None, "expect_table_row_count_to_be_between"),
}

BAD_LABELS = {
    "label_not_0_1": (lambda f: f.assign(tx_fraud=np.where(f.index == 1, 2, f["tx_fraud"])), "tx_fraud",
                      "expect_column_values_to_be_in_set"),
    "labels_missing_rows": (lambda f: f.iloc[1:], None, "expect_table_row_count_to_be_between"),
    "label_for_unknown_transaction": (lambda f: f.assign(transaction_id=f["transaction_id"] + 10**9),
                                      "transaction_id", "expect_column_values_to_be_between"),
    "null_label": (lambda f: f.assign(tx_fraud=f["tx_fraud"].astype("float64").mask(f.index == 0)), "tx_fraud",
                   "expect_column_values_to_not_be_null"),
}


def _assert_stopped(root, source: str, column: str | None, expectation: str) -> None:
    with pytest.raises(DataQualityError) as caught:
        validate_partitions(f"raw_{source}", [DAY])
    message = str(caught.value)
    assert f"raw_{source} ds={DAY}" in message  # the partition
    assert expectation in message  # the expectation
    if column:
        assert f"column {column}" in message  # the column
    assert not partition_file("raw", source, DAY, root).exists()  # nothing published
    kept = root / "quarantine" / "landing" / source / f"ds={DAY}"
    assert (kept / f"{DAY}.parquet").exists()
    failure = json.loads((kept / "failure.json").read_text())
    assert failure["success"] is False and failure["failures"]


@pytest.mark.parametrize("case", sorted(BAD_TRANSACTIONS))
def test_bad_transactions_are_stopped(landed, case):
    change, column, expectation = BAD_TRANSACTIONS[case]
    _rewrite(landed, "transactions", change)
    _assert_stopped(landed, "transactions", column, expectation)


@pytest.mark.parametrize("case", sorted(BAD_LABELS))
def test_bad_labels_are_stopped(landed, case):
    change, column, expectation = BAD_LABELS[case]
    _rewrite(landed, "labels", change)
    _assert_stopped(landed, "labels", column, expectation)


def test_truncated_parquet_is_stopped(landed):
    path = landing_file("transactions", DAY, landed)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_stopped(landed, "transactions", None, "file_is_readable_parquet")


def test_missing_landing_file_is_a_retryable_error(landed):
    landing_file("transactions", DAY, landed).unlink()
    with pytest.raises(MissingInputError, match=f"raw_transactions ds={DAY}: no file at"):
        validate_partitions("raw_transactions", [DAY])


def test_good_day_publishes_and_rerun_replaces(landed, small_sim):
    for source in ("transactions", "labels"):
        report = validate_partitions(f"raw_{source}", [DAY])[0]
        assert report.success and report.rows > 0
        first = publish_landing(source, DAY, report.sha256)
        again = publish_landing(source, DAY, report.sha256)  # rerun of the same day
        assert first["rows"] == again["rows"] == report.rows
        folder = partition_file("raw", source, DAY, landed).parent
        assert [p.name for p in folder.iterdir()] == ["data.parquet"]  # replaced, no duplicate or temp file
        published = pd.read_parquet(folder / "data.parquet")
        assert published["transaction_id"].is_unique and len(published) == report.rows
    expected = small_sim.transactions.loc[small_sim.transactions["ds"] == DAY, "transaction_id"]
    assert sorted(pd.read_parquet(partition_file("raw", "transactions", DAY, landed))["transaction_id"]) == \
        sorted(expected)


def test_file_changed_after_validation_is_not_published(landed):
    report = validate_partitions("raw_transactions", [DAY])[0]
    _rewrite(landed, "transactions", lambda f: f.iloc[:-1])
    with pytest.raises(RuntimeError, match="changed after validation"):
        publish_landing("transactions", DAY, report.sha256)
    assert not partition_file("raw", "transactions", DAY, landed).exists()


def test_operator_fails_without_retry_and_returns_json(landed):
    from airflow.sdk.exceptions import AirflowFailException
    from batchml.operators import GXCheckpointOperator

    from tests.task_context import FakeTI

    ok = GXCheckpointOperator(task_id="validate_labels", dataset="raw_labels", partitions=str(DAY))
    summary = ok.execute(context={"ti": FakeTI()})
    assert json.loads(json.dumps(summary)) == summary
    assert summary["partitions"][0]["ds"] == str(DAY) and summary["partitions"][0]["rows"] > 0

    _rewrite(landed, "transactions", lambda f: f.assign(tx_amount=-1.0))
    bad = GXCheckpointOperator(task_id="validate_transactions", dataset="raw_transactions", partitions=str(DAY))
    with pytest.raises(AirflowFailException, match="column tx_amount: expect_column_values_to_be_between"):
        bad.execute(context={"ti": FakeTI()})

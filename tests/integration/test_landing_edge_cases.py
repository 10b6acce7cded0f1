"""Landing files at the edges: what sits at the landing path (links, folders, pipes, devices, empty
or unreadable files), types narrower than the contract's canonical ones, and timestamps at the edges
of the day. Issue 12, items 4 and 5.

- Valid but unusual days ("unusual input") are accepted and published in the canonical schema
  (include/ingest.py RAW_SCHEMAS: int64, float64, UTC microseconds), with their values; one Spark
  run shows 40 days of features over such a day equal the features of the canonical day.
- Bad ones ("bad input", "security") are stopped by validate_<source> of ingest without retry,
  naming the partition and the path; nothing is published, earlier partitions stay as they were,
  and what is not a regular file of the landing zone is never read: quarantine keeps only a note.

The ingest steps are the real ones: GXCheckpointOperator (what validate_<source> runs) and
include.ingest.publish_landing (what publish_<source> runs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.ingest import RAW_SCHEMAS, publish_landing
from include.storage import UnusableFileError, landing_file, partition_file
from tests.conftest import REPO, SMALL
from tests.integration.test_bad_input import DAY, _assert_names, _first_lines, _snapshot
from tests.task_context import FakeTI

STOPPED = ("validate_{source} (ingest) fails without retry naming the partition and the path; no raw partition; "
           "earlier partitions unchanged; ")
NOTE_ONLY = "quarantine keeps only failure.json (nothing read through or copied)"
ACCEPTED = "accepted by validate_{source}; published by publish_{source} in the canonical schema with the same values"
# a planted secret, assembled at run time so that the secret scan of tracked files (test_security) finds none here
SECRET = "-".join(["SECRET", "do-not-copy", "7f3a"])
CANONICAL = {  # the arrow schema of every published raw partition (include/ingest.py RAW_SCHEMAS)
    "transactions": [("transaction_id", "int64"), ("tx_datetime", "timestamp[us, tz=UTC]"), ("customer_id", "int64"),
                     ("terminal_id", "int64"), ("tx_amount", "double")],
    "labels": [("transaction_id", "int64"), ("tx_fraud", "int64"), ("tx_fraud_scenario", "int64")],
}


# --- helpers ---------------------------------------------------------------------------------------------

@pytest.fixture
def landed(data_root, small_sim) -> Path:
    """Landing files up to DAY; raw transactions and labels of the days before, as ingest left them
    (the fixture of test_bad_input.py)."""
    from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions

    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= DAY], data_root)
    write_raw_partitions(tx[tx["ds"] < DAY], data_root)
    return data_root


def _checkpoint(source: str, day: dt.date = DAY) -> dict:
    """validate_<source>: the real operator; returns its XCom summary."""
    from batchml.operators import GXCheckpointOperator

    return GXCheckpointOperator(task_id=f"validate_{source}", dataset=f"raw_{source}",
                                partitions=[str(day)]).execute(context={"ti": FakeTI()})


def _ingest(source: str, day: dt.date = DAY) -> Path:
    """validate_<source>, then publish_<source> with the checksum the validation saw."""
    summary = _checkpoint(source, day)
    return Path(publish_landing(source, day, summary["partitions"][0]["sha256"])["path"])


def _deliver(frame: pd.DataFrame, path: Path) -> None:
    """Write a landing file as a producer would: its types as they are, nanoseconds kept."""
    path.unlink(missing_ok=True)
    named_index = any(name is not None for name in frame.index.names)  # kept as pandas writes it: a column
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=None if named_index else False), path)


def _canonical_types(root: Path, source: str) -> list[tuple[str, str]]:
    """The (column, arrow type) of a partition the simulator published the day before: the canonical schema."""
    schema = pq.read_schema(partition_file("raw", source, DAY - dt.timedelta(days=1), root))
    return [(f.name, str(f.type)) for f in schema]


def _types(path: Path) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in pq.read_schema(path)]


def _quarantine(root: Path, source: str) -> Path:
    return root / "quarantine" / "landing" / source / f"ds={DAY}"


@contextlib.contextmanager
def _no_hang(seconds: int = 120):
    """Fail instead of hanging when something blocks on a FIFO or reads a device forever."""
    def expired(*_):
        raise TimeoutError(f"blocked for {seconds} s: a FIFO was opened or a device read")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- valid but unusual days: accepted, published in the canonical schema -------------------------------------

def _narrow_ids_amounts(f: pd.DataFrame) -> pd.DataFrame:
    return f.astype({"transaction_id": "int32", "customer_id": "int32", "terminal_id": "int32",
                     "tx_amount": "float32"})


def _mixed_ints(f: pd.DataFrame) -> pd.DataFrame:
    return f.astype({"transaction_id": "uint64", "customer_id": "uint32", "terminal_id": "int16"})


def _paris_ns(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(tx_datetime=f["tx_datetime"].dt.tz_convert("Europe/Paris").astype("datetime64[ns, Europe/Paris]"))


def _utc_ms(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(tx_datetime=f["tx_datetime"].astype("datetime64[ms, UTC]"))


def _day_edges(f: pd.DataFrame, day: dt.date = DAY) -> pd.DataFrame:
    """The first row at the day's first instant, the second at its last nanosecond (ns precision)."""
    start = pd.Timestamp(day, tz="UTC")
    stamps = f["tx_datetime"].astype("datetime64[ns, UTC]").copy()
    stamps.iloc[0], stamps.iloc[1] = start, start + pd.Timedelta(days=1) - pd.Timedelta(nanoseconds=1)
    return f.assign(tx_datetime=stamps)


def _edges_published(f: pd.DataFrame, day: dt.date = DAY) -> pd.DataFrame:
    """What _day_edges must publish: the last nanosecond truncated to the day's last microsecond."""
    start = pd.Timestamp(day, tz="UTC")
    stamps = f["tx_datetime"].copy()
    stamps.iloc[0], stamps.iloc[1] = start, start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return f.assign(tx_datetime=stamps)


def _categorical_terminals(f: pd.DataFrame) -> pd.DataFrame:
    """Terminal ids as a pandas categorical: a dictionary-encoded column in the file."""
    return f.assign(terminal_id=f["terminal_id"].astype("category"))


def _nullable_customers(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(customer_id=f["customer_id"].astype("Int32"))  # a nullable type, without a null


def _id_as_index(f: pd.DataFrame) -> pd.DataFrame:
    """``df.set_index("transaction_id").to_parquet()``: the column is in the file, pandas' metadata
    calls it the index."""
    return f.set_index("transaction_id")


def _narrow_labels(f: pd.DataFrame) -> pd.DataFrame:
    return f.astype({"transaction_id": "int32", "tx_fraud": "int8", "tx_fraud_scenario": "int8"})


def _unsigned_labels(f: pd.DataFrame) -> pd.DataFrame:
    return f.astype({"transaction_id": "uint32", "tx_fraud": "uint8", "tx_fraud_scenario": "uint16"})


@dataclass(frozen=True)
class Unusual:
    source: str
    what: str
    deliver: Callable[[pd.DataFrame], pd.DataFrame]  # the canonical day -> the file delivered
    published: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f  # the canonical day -> what must be published


UNUSUAL = [
    Unusual("transactions", "int32 ids and float32 amounts", _narrow_ids_amounts,
            lambda f: f.assign(tx_amount=f["tx_amount"].astype("float32").astype("float64"))),
    Unusual("transactions", "uint64 transaction ids (within int64), uint32 customer ids, int16 terminal ids",
            _mixed_ints),
    Unusual("transactions", "tz-aware timestamps in Europe/Paris, nanosecond precision", _paris_ns),
    Unusual("transactions", "UTC-aware timestamps in milliseconds", _utc_ms),
    Unusual("transactions", "the first instant (00:00:00) and the last nanosecond (23:59:59.999999999) of the day",
            _day_edges, _edges_published),
    Unusual("transactions", "dictionary-encoded (pandas categorical) terminal ids", _categorical_terminals),
    Unusual("transactions", "customer ids of a nullable type (Int32) without a null", _nullable_customers),
    Unusual("transactions", "transaction ids stored as the pandas index (df.set_index('transaction_id'))",
            _id_as_index),
    Unusual("transactions", "the columns in reverse order", lambda f: f[f.columns[::-1]]),
    Unusual("labels", "int8 labels and scenarios, int32 transaction ids", _narrow_labels),
    Unusual("labels", "uint8 labels, uint16 scenarios, uint32 transaction ids", _unsigned_labels),
]


@pytest.mark.parametrize("unusual", UNUSUAL, ids=lambda u: f"{u.source}-{u.what}")
def test_an_unusual_but_valid_day_is_published_in_the_canonical_schema(landed, reliability, unusual):
    source = unusual.source
    case = reliability.case("unusual input", f"raw {source}: {unusual.what}", expected=ACCEPTED.format(source=source))
    landing = landing_file(source, DAY, landed)
    canonical = pd.read_parquet(landing)  # as the simulator delivers it: the canonical schema
    _deliver(unusual.deliver(canonical), landing)
    delivered = _types(landing)

    published = _ingest(source)
    case.observed = f"delivered {delivered}; published {_types(published)}"
    assert _types(published) == _canonical_types(landed, source) == CANONICAL[source]
    pd.testing.assert_frame_equal(pd.read_parquet(published), unusual.published(canonical), check_exact=True)


# --- one narrow-typed day, then 40 days of features (one Spark run) -------------------------------------------

@pytest.mark.slow
@pytest.mark.spark
def test_a_narrow_typed_day_then_40_days_of_features(feature_lake, spark, tmp_path, reliability):
    """A day delivered with int32 ids, float32 amounts and Europe/Paris nanosecond timestamps, its labels
    (arriving 7 days later) as int8/int32, and on the 40th day the day's first instant and last
    nanosecond: the feature job over the 40 days reads them all in one Spark run, and its features are
    those of the canonical history (amounts up to the producer's float32 rounding)."""
    from include.jobs.build_features import run as build_features
    from include.pipelines.fraud.features.baseline import CUSTOMER_WINDOWS, OUTPUT_COLUMNS
    from include.pipelines.fraud.features.groups import GROUP_COLUMNS
    from include.storage import day_range

    # the first day of the history: the first partition the job reads, so Spark takes the table's schema
    # from it (no mergeSchema) and, before the fix, failed reading the int64 days after it
    first = SMALL.start_date
    last, arrival = first + dt.timedelta(days=39), first + dt.timedelta(days=7)
    expected = "accepted and published in the canonical schema; the features job over the next 40 days runs " \
               "and equals the features of the canonical history"
    cases = [reliability.case("unusual input", f"raw {what}; then 40 days of features in one Spark run", expected)
             for what in ("transactions: int32 ids, float32 amounts, Europe/Paris nanosecond timestamps",
                          "labels: int8 labels, int32 transaction ids",
                          "transactions: the first instant and the last nanosecond of the day")]
    root = feature_lake
    canonical = {}
    for source, day, narrow in (("transactions", first, lambda f: _paris_ns(_narrow_ids_amounts(f))),
                                ("labels", arrival, _narrow_labels),
                                ("transactions", last, _day_edges_of(last))):
        raw = partition_file("raw", source, day, root)
        canonical[source, day] = pd.read_parquet(raw)
        raw.unlink()  # this day comes through ingest, delivered narrow
        landing = landing_file(source, day, root)
        landing.parent.mkdir(parents=True, exist_ok=True)
        _deliver(narrow(canonical[source, day]), landing)
        assert _types(_ingest(source, day)) == CANONICAL[source]

    summary = build_features(spark, first, last, tmp_path / "staged", root)  # Spark reads old and new partitions
    amounts = ["tx_amount", *[f"customer_avg_amount_{n}d" for n in CUSTOMER_WINDOWS]]
    # ratios and z-scores of amounts: a float32 rounding of 1e-7 moves a z-score near 0 by more than 1e-6 of it
    of_amounts = [c for c in GROUP_COLUMNS["amount_profile"] if c in OUTPUT_COLUMNS]
    edited = canonical["transactions", last].iloc[:2]
    for day in day_range(first, last):
        got = pd.read_parquet(next((tmp_path / "staged" / f"ds={day}").glob("*.parquet")))[OUTPUT_COLUMNS]
        want = pd.read_parquet(partition_file("features", "baseline", day, root))[OUTPUT_COLUMNS]
        got, want = (f.sort_values("transaction_id", ignore_index=True) for f in (got, want))
        if day == last:  # the moved transactions and their customers' windows differ from the canonical day
            moved = got["transaction_id"].isin(edited["transaction_id"])
            stamps = got.loc[moved].set_index("transaction_id")["tx_datetime"]
            start = pd.Timestamp(last, tz="UTC")
            assert stamps[edited["transaction_id"].iloc[0]] == start
            assert stamps[edited["transaction_id"].iloc[1]] == start + pd.Timedelta(days=1) - pd.Timedelta(
                microseconds=1)  # inside its day: truncated, not rounded into the next
            keep = ~got["customer_id"].isin(edited["customer_id"])
            got, want = got[keep].reset_index(drop=True), want[~want["customer_id"].isin(edited["customer_id"])
                                                               ].reset_index(drop=True)
        exact = [*amounts, *of_amounts]
        pd.testing.assert_frame_equal(got.drop(columns=exact), want.drop(columns=exact), check_dtype=False)
        pd.testing.assert_frame_equal(got[amounts], want[amounts], check_exact=False, rtol=1e-6)
        pd.testing.assert_frame_equal(got[of_amounts], want[of_amounts], check_exact=False, rtol=1e-5, atol=1e-5)
    assert sum(summary["rows_per_day"].values()) == sum(
        pq.ParquetFile(partition_file("features", "baseline", d, root)).metadata.num_rows
        for d in day_range(first, last))
    for case in cases:
        case.observed = (f"features of {first}..{last} computed in one Spark run "
                         f"({summary['transaction_partitions_read']} transaction and {summary['label_partitions_read']}"
                         " label partitions read), equal to the canonical history's")


def _day_edges_of(day: dt.date) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: _day_edges(f, day)


# --- bad: what sits at the landing path ------------------------------------------------------------------------

def _outside_cfg(tmp: Path) -> Path:
    cfg = tmp / "airflow-home" / "airflow.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"[core]\nfernet_key = {SECRET}\n[api]\nsecret_key = {SECRET}\n")
    return cfg


def _link_to_cfg(landing: Path, tmp: Path) -> None:
    cfg = _outside_cfg(tmp)
    landing.unlink()
    landing.symlink_to(cfg)


def _link_to_valid_copy_outside(landing: Path, tmp: Path) -> None:
    copy = tmp / "elsewhere" / landing.name
    copy.parent.mkdir()
    copy.write_bytes(landing.read_bytes())  # the day's own, valid file
    landing.unlink()
    landing.symlink_to(copy)


def _hard_link_to_cfg(landing: Path, tmp: Path) -> None:
    cfg = _outside_cfg(tmp)  # same file system (pytest's tmp folder): a hard link can be made
    landing.unlink()
    os.link(cfg, landing)


def _hard_link_to_valid_copy_outside(landing: Path, tmp: Path) -> None:
    copy = tmp / "elsewhere" / landing.name
    copy.parent.mkdir()
    copy.write_bytes(landing.read_bytes())
    landing.unlink()
    os.link(copy, landing)


def _link_inside(landing: Path, tmp: Path) -> None:
    copy = landing.with_name(f"{landing.stem}.delivered.parquet")
    landing.rename(copy)
    landing.symlink_to(copy.name)  # relative, inside landing/<source>/


def _dangling_link(landing: Path, tmp: Path) -> None:
    landing.unlink()
    landing.symlink_to(tmp / "gone" / landing.name)


def _linked_source_folder(landing: Path, tmp: Path) -> None:
    folder = landing.parent
    outside = tmp / "outside" / folder.name
    outside.parent.mkdir()
    folder.rename(outside)  # the files themselves are valid; their folder is reached through a link
    folder.symlink_to(outside, target_is_directory=True)


def _folder(landing: Path, tmp: Path) -> None:
    day = pd.read_parquet(landing)
    landing.unlink()
    landing.mkdir()  # a Spark-style output folder named <day>.parquet
    pq.write_table(pa.Table.from_pandas(day, preserve_index=False), landing / "part-00000.parquet")


def _fifo(landing: Path, tmp: Path) -> None:
    landing.unlink()
    os.mkfifo(landing)


def _device(landing: Path, tmp: Path) -> None:
    landing.unlink()
    try:
        os.mknod(landing, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is: endless zeros
    except PermissionError:
        pytest.skip("no permission to create a device node here")


def _socket(landing: Path, tmp: Path) -> None:
    landing.unlink()
    cwd = Path.cwd()
    os.chdir(landing.parent)  # a relative name: socket paths are limited to 108 bytes
    try:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(landing.name)
    finally:
        os.chdir(cwd)
    server.close()  # the socket file stays


def _empty(landing: Path, tmp: Path) -> None:
    landing.write_bytes(b"")


def _html_page(landing: Path, tmp: Path) -> None:
    landing.write_text("<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>\n")


def _rewrite(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path, Path], None]:
    return lambda landing, tmp: _deliver(change(pd.read_parquet(landing)), landing)


def _huge_id(f: pd.DataFrame) -> pd.DataFrame:
    ids = f["transaction_id"].astype("uint64").to_numpy().copy()
    ids[0] = np.iinfo(np.uint64).max
    return f.assign(transaction_id=ids)


def _duplicate_column(landing: Path, tmp: Path) -> None:
    table = pq.read_table(landing)
    table = table.append_column("transaction_id", table.column("transaction_id"))  # twice, same name
    landing.unlink()
    pq.write_table(table, landing)


def _sparse_giant(landing: Path, tmp: Path) -> None:
    """``truncate -s``: one byte above the limit, no disk used (a hole), zeros if read."""
    from include.storage import MAX_DELIVERED_BYTES

    landing.unlink()
    with landing.open("wb") as fh:
        fh.truncate(MAX_DELIVERED_BYTES + 1)


def _null_bomb(landing: Path, tmp: Path) -> None:
    """About 100 kB of parquet announcing 50 million and one rows of nulls (gigabytes once loaded)."""
    from include.storage import MAX_DELIVERED_ROWS

    landing.unlink()
    pq.write_table(pa.table({"transaction_id": pa.nulls(MAX_DELIVERED_ROWS + 1, pa.int64())}), landing)


def _decimal_amounts(landing: Path, tmp: Path) -> None:
    table = pq.read_table(landing)
    at = table.schema.get_field_index("tx_amount")
    table = table.set_column(at, "tx_amount", pc.round(table.column("tx_amount"), 2).cast(pa.decimal128(12, 2)))
    landing.unlink()
    pq.write_table(table, landing)


def _epoch_seconds(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(tx_datetime=f["tx_datetime"].astype("datetime64[s, UTC]").astype("int64"))


def _far_future_ms(landing: Path, tmp: Path) -> None:
    """One timestamp in year 508,989: a millisecond timestamp holds it, a microsecond one cannot."""
    table = pq.read_table(landing)
    at = table.schema.get_field_index("tx_datetime")
    millis = pc.cast(table.column("tx_datetime"), pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy().copy()
    millis[0] = 16_000_000_000_000_000
    table = table.set_column(at, "tx_datetime", pa.array(millis).cast(pa.timestamp("ms", tz="UTC")))
    landing.unlink()
    pq.write_table(table, landing)


def _one_nat(f: pd.DataFrame) -> pd.DataFrame:
    stamps = f["tx_datetime"].copy()
    stamps.iloc[3] = pd.NaT
    return f.assign(tx_datetime=stamps)


def _stamp(row: int, at: Callable[[pd.Timestamp], pd.Timestamp]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(f: pd.DataFrame) -> pd.DataFrame:
        stamps = f["tx_datetime"].astype("datetime64[ns, UTC]").copy()
        stamps.iloc[row] = at(pd.Timestamp(DAY, tz="UTC"))
        return f.assign(tx_datetime=stamps)
    return change


@dataclass(frozen=True)
class AtPath:
    section: str
    source: str
    what: str
    make: Callable[[Path, Path], None]  # (landing file, a folder outside the data root)
    names: tuple[str, ...]  # what the message must name besides the partition and the path
    note_only: bool = True  # not a regular file of the zone: quarantine keeps only failure.json


AT_PATH = [
    AtPath("security", "transactions", "a symlink to a file outside the landing zone (an airflow.cfg with its "
           "secret key)", _link_to_cfg, ("symbolic link", "outside the landing zone", "never followed")),
    AtPath("security", "transactions", "a symlink to a valid parquet day outside the landing zone",
           _link_to_valid_copy_outside, ("symbolic link", "outside the landing zone")),
    AtPath("security", "transactions", "a hard link to a file outside the landing zone (an airflow.cfg with its "
           "secret key)", _hard_link_to_cfg, ("is a hard link", "outside the landing zone", "not read")),
    AtPath("security", "transactions", "a hard link to a valid parquet day outside the landing zone",
           _hard_link_to_valid_copy_outside, ("is a hard link", "2 names for one file")),
    AtPath("bad input", "transactions", "a sparse file of 2 GiB + 1 byte (truncate -s: no disk used, all zeros "
           "if read or copied)", _sparse_giant,
           ("2,147,483,649 bytes", "above the 2,147,483,648", "not read nor copied")),
    AtPath("bad input", "transactions", "a 100 kB parquet file of 50,000,001 null rows (a decompression bomb)",
           _null_bomb, ("table: file_is_readable_parquet", "50,000,001 rows", "not loaded"), note_only=False),
    AtPath("bad input", "transactions", "a column name twice (transaction_id)", _duplicate_column,
           ("table: file_is_readable_parquet", "transaction_id"), note_only=False),
    AtPath("bad input", "transactions", "amounts as decimal128(12, 2) (not cast: a decimal is not a float)",
           _decimal_amounts, ("column tx_amount: expect_column_values_to_be_in_type_list",), note_only=False),
    AtPath("bad input", "transactions", "timestamps as int64 epoch seconds (a number, not a time: not cast)",
           _rewrite(_epoch_seconds), ("column tx_datetime: expect_column_values_to_be_in_type_list",
                                      "observed 'int64'"), note_only=False),
    AtPath("bad input", "transactions", "a millisecond timestamp in year 508,989 (beyond the range of microsecond "
           "timestamps)", _far_future_ms,
           ("column tx_datetime: column_values_fit_canonical_type", "508989", "do not fit datetime64[us, UTC]"),
           note_only=False),
    AtPath("bad input", "transactions", "one NaT timestamp", _rewrite(_one_nat),
           ("column tx_datetime: expect_column_values_to_not_be_null", "NaT"), note_only=False),
    AtPath("bad input", "transactions", "a symlink inside the landing zone (to another file of the day)",
           _link_inside, ("symbolic link", "inside the landing zone", "links are refused")),
    AtPath("security", "transactions", "a dangling symlink (to a path outside the data root that does not exist)",
           _dangling_link, ("symbolic link", "outside the landing zone")),
    AtPath("security", "transactions", "the source folder landing/transactions is a symlink to a folder outside "
           "the landing zone", _linked_source_folder, ("a link leads to", "outside the landing zone")),
    AtPath("bad input", "transactions", "a folder at the file's path (a Spark output folder named <day>.parquet)",
           _folder, ("is a folder, not a regular file",)),
    AtPath("bad input", "transactions", "a named pipe (FIFO) at the file's path: must not block the reader",
           _fifo, ("is a named pipe (FIFO), not a regular file",)),
    AtPath("bad input", "transactions", "a character device (like /dev/zero) at the file's path: must not be read",
           _device, ("is a character device, not a regular file",)),
    AtPath("bad input", "transactions", "a Unix socket at the file's path", _socket, ("is a socket",)),
    AtPath("bad input", "transactions", "an empty file (0 bytes)", _empty, ("an empty file (0 bytes)",)),
    AtPath("bad input", "transactions", "an HTML error page saved as the file (a failed download)", _html_page,
           ("table: file_is_readable_parquet",), note_only=False),
    AtPath("bad input", "transactions", "a uint64 transaction id above the int64 maximum (would wrap negative)",
           _rewrite(_huge_id), ("column transaction_id: column_values_fit_canonical_type",
                                "uint64 value 18446744073709551615 does not fit int64"), note_only=False),
    AtPath("bad input", "transactions", "a timestamp at exactly 00:00:00 of the next day (nanosecond precision)",
           _rewrite(_stamp(0, lambda start: start + pd.Timedelta(days=1))),
           ("column tx_datetime: expect_column_values_to_be_between",), note_only=False),
    AtPath("bad input", "transactions", "a timestamp one nanosecond before the day (23:59:59.999999999 the day "
           "before)", _rewrite(_stamp(0, lambda start: start - pd.Timedelta(nanoseconds=1))),
           ("column tx_datetime: expect_column_values_to_be_between",), note_only=False),
    AtPath("security", "labels", "a symlink to a file outside the landing zone (an airflow.cfg with its secret "
           "key)", _link_to_cfg, ("symbolic link", "outside the landing zone")),
    AtPath("bad input", "labels", "a folder at the labels file's path", _folder, ("is a folder",)),
    AtPath("bad input", "labels", "transaction ids as uint64 above the int64 maximum", _rewrite(_huge_id),
           ("column transaction_id: column_values_fit_canonical_type", "does not fit int64"), note_only=False),
]


@pytest.mark.parametrize("bad", AT_PATH, ids=lambda b: f"{b.source}-{b.what}")
def test_what_sits_at_the_landing_path_is_stopped_without_retry(landed, tmp_path, reliability, bad):
    source = bad.source
    expected = STOPPED.format(source=source) + (NOTE_ONLY if bad.note_only else "the file kept in quarantine")
    case = reliability.case(bad.section, f"raw {source}: {bad.what}", expected=expected)
    landing, before = landing_file(source, DAY, landed), _snapshot(landed, "raw")
    outside = tmp_path / "outside-the-data-root"
    outside.mkdir()
    bad.make(landing, outside)
    with _no_hang(), pytest.raises(AirflowFailException) as stopped:  # a retry cannot fix what was delivered
        _checkpoint(source)
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, f"raw_{source} ds={DAY}", str(landing), *bad.names)

    assert not partition_file("raw", source, DAY, landed).exists()  # nothing published
    assert _snapshot(landed, "raw") == before  # earlier partitions untouched
    kept = _quarantine(landed, source)
    failure = json.loads((kept / "failure.json").read_text())
    assert failure["success"] is False and failure["ds"] == str(DAY) and failure["failures"]
    assert sorted(p.name for p in kept.iterdir()) == (["failure.json"] if bad.note_only
                                                     else sorted(["failure.json", landing.name]))
    assert failure["note_only"] is bad.note_only
    assert os.path.lexists(landing)  # the delivery is left where it was, for the upstream to replace
    for path in landed.rglob("*"):  # no byte of a link's target was copied anywhere in the lake
        if path != landing and path.is_file() and not path.is_symlink() and not stat.S_ISFIFO(path.lstat().st_mode):
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_link_swapped_in_after_validation_is_not_published(landed, tmp_path, reliability):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time.context import set_current_context

    case = reliability.case("security", "raw transactions: the validated file replaced by a symlink to a copy "
                                        "outside the landing zone before publish (same bytes, same checksum)",
                            expected="publish_transactions fails without retry naming the path and the link; "
                                     "nothing published; the link not followed")
    summary = _checkpoint("transactions")
    landing, before = landing_file("transactions", DAY, landed), _snapshot(landed, "raw")
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(landing.read_bytes())  # the same bytes: the checksum alone would not notice
    landing.unlink()
    landing.symlink_to(copy)
    with pytest.raises(UnusableFileError):
        publish_landing("transactions", DAY, summary["partitions"][0]["sha256"])
    bag = DagBag(dag_folder=str(REPO / "dags" / "ingest.py"))
    publish = bag.get_dag("ingest").get_task("publish_transactions").python_callable
    with set_current_context({}), pytest.raises(AirflowFailException) as stopped:  # the real task callable
        publish("transactions", summary)
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), str(landing), "symbolic link", "outside the landing zone")
    assert not partition_file("raw", "transactions", DAY, landed).exists()
    assert _snapshot(landed, "raw") == before


def test_a_folder_swapped_for_a_link_while_the_file_is_opened_is_not_followed(landed, tmp_path, monkeypatch,
                                                                              reliability):
    """The race the checks before the open cannot see: landing/transactions is a real folder when it is
    inspected, and a link to a folder outside the zone (holding a valid day of the same name) when the file
    is opened. The swap is done by the first os.open of include.storage (a deterministic stand-in for a
    concurrent writer), then the real os.open runs."""
    import types

    from include import storage

    case = reliability.case("security", "raw transactions: landing/transactions swapped for a symlink to a folder "
                                        "outside the zone between the checks and the open (a race)",
                            expected=STOPPED.format(source="transactions") + NOTE_ONLY + "; nothing read outside")
    landing, before = landing_file("transactions", DAY, landed), _snapshot(landed, "raw")
    outside = tmp_path / "outside" / "transactions"
    outside.mkdir(parents=True)
    (outside / landing.name).write_bytes(landing.read_bytes())  # a valid day: only the refusal can stop it
    swapped = []

    def racing_open(target, flags, *args, **kwargs):
        if not swapped:
            folder = landing.parent
            folder.rename(tmp_path / "the-real-folder")
            folder.symlink_to(outside, target_is_directory=True)
            swapped.append(target)
        return os.open(target, flags, *args, **kwargs)

    monkeypatch.setattr(storage, "os", types.SimpleNamespace(**{**vars(os), "open": racing_open}))
    with _no_hang(), pytest.raises(AirflowFailException) as stopped:
        _checkpoint("transactions")
    monkeypatch.undo()
    assert swapped, "the open was never reached"
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"raw_transactions ds={DAY}", str(landing), "no longer a folder")
    assert not partition_file("raw", "transactions", DAY, landed).exists()
    assert _snapshot(landed, "raw") == before
    assert [p.name for p in _quarantine(landed, "transactions").iterdir()] == ["failure.json"]


@pytest.mark.parametrize("where", ["the data root", "the landing zone folder"])
def test_a_data_root_or_landing_zone_reached_through_a_symlink_is_accepted(landed, tmp_path, monkeypatch, reliability,
                                                                          where):
    """A mounted volume (/data -> /mnt/volume) or an SFTP drop folder linked in as landing/: links above
    the zone are the operator's layout, not a delivery; only links at or below landing/<source> are refused."""
    case = reliability.case("unusual input", f"raw transactions: {where} reached through a symlink (a mount)",
                            expected=ACCEPTED.format(source="transactions"))
    if where == "the data root":
        link = tmp_path / "lake-link"
        link.symlink_to(landed, target_is_directory=True)
        monkeypatch.setenv("BATCHML_DATA_ROOT", str(link))
    else:
        drop = tmp_path / "sftp-drop"
        (landed / "landing").rename(drop)
        (landed / "landing").symlink_to(drop, target_is_directory=True)
    published = _ingest("transactions")
    case.observed = f"published {_types(published)}"
    assert _types(published) == CANONICAL["transactions"]


def test_hard_links_are_refused_in_the_landing_zone_only(landed):
    """publish_copy hard-links a staged file into place and keeps it until the staging folder goes: a
    validation cleared and run again reads that staged file, which must not be refused as a link."""
    from include.storage import open_delivered_file, publish_copy, zone_of

    staged = landed / "_staging" / "run" / f"ds={DAY}" / "part-00000.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(landing_file("transactions", DAY, landed).read_bytes())
    publish_copy(staged, landed / "features" / "baseline" / f"ds={DAY}" / "data.parquet")
    assert staged.stat().st_nlink == 2
    with open_delivered_file(staged, zone_of(staged, landed)) as handle:
        assert handle.read(4) == b"PAR1"
    landing = landing_file("transactions", DAY, landed)
    os.link(landing, landed / "landing" / "a-second-name.parquet")
    with pytest.raises(UnusableFileError, match="is a hard link"):
        open_delivered_file(landing, zone_of(landing, landed))


def test_a_file_rewritten_in_place_during_publish_is_not_published_unvalidated(landed, reliability, monkeypatch):
    """The upstream redelivers with ``cp`` (same inode, new bytes) while publish_transactions runs: after
    the checksum matched and before the parquet is parsed. The rewrite is done by the parquet reader's
    first call (a deterministic stand-in for the concurrent writer), then the real reader runs."""
    case = reliability.case("bad input", "raw transactions: the validated file rewritten in place (cp over it, same "
                                         "inode) while publish_transactions reads it, between checksum and parse",
                            expected="publish_transactions publishes exactly the bytes whose checksum was validated "
                                     "(the validated day), never the unvalidated new content")
    summary = _checkpoint("transactions")
    landing = landing_file("transactions", DAY, landed)
    validated = pd.read_parquet(landing)
    unvalidated = validated.assign(tx_amount=99_999.0)  # what nobody checked
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(unvalidated, preserve_index=False), buffer)
    new_bytes, inode = buffer.getvalue().to_pybytes(), landing.stat().st_ino
    real_read, rewritten = pd.read_parquet, []

    def read_while_rewritten(source, *args, **kwargs):
        if not rewritten:
            with landing.open("r+b") as fh:  # in place, as cp does: the open descriptor sees the new bytes
                fh.write(new_bytes)
                fh.truncate()
            rewritten.append(landing.stat().st_ino)
        return real_read(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", read_while_rewritten)
    try:
        published = Path(publish_landing("transactions", DAY, summary["partitions"][0]["sha256"])["path"])
    except (RuntimeError, UnusableFileError) as exc:  # refusing is as good as publishing the validated bytes
        case.observed = f"refused: {exc}"
        assert not partition_file("raw", "transactions", DAY, landed).exists()
        return
    finally:
        monkeypatch.undo()
    assert rewritten == [inode]
    amounts = pd.read_parquet(published)["tx_amount"]
    case.observed = f"published {len(amounts)} rows, max amount {amounts.max()} (the rewrite set 99999.0)"
    pd.testing.assert_series_equal(amounts, validated["tx_amount"])


UNREADABLE = """
import json, os, sys
from pathlib import Path
import pandas, include.ingest
from include.validation.checkpoints import quarantine, validate_parquet_file
root, path = Path(sys.argv[1]), Path(sys.argv[2])
if os.geteuid() == 0:  # root reads any file: drop to nobody, once everything is imported
    os.setegid(65534)
    os.seteuid(65534)
report, _ = validate_parquet_file("raw_transactions", path, sys.argv[3], {}, root)
quarantine(path, report, "landing", "transactions", root)
print(json.dumps({"message": report.message(), "note_only": report.note_only}))
"""


def test_an_unreadable_landing_file_is_a_data_error(tmp_path, small_sim, reliability):
    """Run as a user without read permission (root reads everything: the check runs in a process
    that drops to nobody once its modules are imported)."""
    case = reliability.case("bad input", "raw transactions: a landing file without read permission",
                            expected="validate_transactions fails without retry naming the path and 'not readable'; "
                                     "quarantine keeps only failure.json")
    from include.pipelines.fraud.simulator.landing import write_landing_files

    root = Path(tempfile.mkdtemp(prefix="unreadable-lake-"))  # outside pytest's 0700 tmp folder
    try:
        tx = small_sim.transactions
        write_landing_files(tx[tx["ds"] == DAY], root)
        landing = landing_file("transactions", DAY, root)
        landing.chmod(0)
        for folder in [root, *(p for p in landing.parents if root in p.parents)]:
            folder.chmod(0o777)
        env = {**os.environ, "BATCHML_DATA_ROOT": str(root), "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"}
        done = subprocess.run([sys.executable, "-c", UNREADABLE, str(root), str(landing), str(DAY)], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        case.observed = _first_lines(result["message"])
        _assert_names(result["message"], f"raw_transactions ds={DAY}", str(landing), "is not readable",
                      "file_is_readable_parquet")
        assert result["note_only"] is True
        kept = root / "quarantine" / "landing" / "transactions" / f"ds={DAY}"
        assert [p.name for p in kept.iterdir()] == ["failure.json"]
        assert not (root / "raw").exists()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_the_simulator_delivers_the_canonical_schema(landed):
    """The canonical schema of include/ingest.py is what the simulator writes: a day that needs no cast."""
    for source in ("transactions", "labels"):
        landing = landing_file(source, DAY, landed)
        assert _types(landing) == _canonical_types(landed, source) == CANONICAL[source]
        assert [c for c, _ in CANONICAL[source]] == list(RAW_SCHEMAS[f"raw_{source}"])

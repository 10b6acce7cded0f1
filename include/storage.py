"""The data lake: hive-style ``ds=`` partitions, one parquet file each, published atomically.

Layout under the data root::

    landing/<source>/<YYYY-MM-DD>.parquet        files as delivered (the simulator writes these)
    raw/<source>/ds=<YYYY-MM-DD>/data.parquet     validated, published by the ingest DAG
    features/<name>/ds=<YYYY-MM-DD>/data.parquet  published by the features DAG
    quarantine/<source>/ds=<YYYY-MM-DD>/          rejected files and the reason, kept for inspection
    _staging/...                                  work in progress, never read downstream

A partition is a single file, so publishing is one ``os.replace``: readers see the old partition or
the new one, never a mix, and a rerun replaces instead of appending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import data_root
from include.faults import failpoint

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PARTITION_FILE = "data.parquet"


class MissingInputError(FileNotFoundError):
    """An input partition or file is not there (yet): retryable, unlike a failed check."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_date(ds: str | dt.date) -> dt.date:
    return ds if isinstance(ds, dt.date) else dt.date.fromisoformat(ds)


def day_range(start: str | dt.date, end: str | dt.date) -> list[dt.date]:
    """Days from start to end, both inclusive."""
    first, last = as_date(start), as_date(end)
    if last < first:
        raise ValueError(f"date range ends before it starts: {first} > {last}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def landing_file(source: str, ds: str | dt.date, root: Path | None = None) -> Path:
    return (root or data_root()) / "landing" / source / f"{as_date(ds).isoformat()}.parquet"


def partition_dir(zone: str, dataset: str, ds: str | dt.date, root: Path | None = None) -> Path:
    return (root or data_root()) / zone / dataset / f"ds={as_date(ds).isoformat()}"


def partition_file(zone: str, dataset: str, ds: str | dt.date, root: Path | None = None) -> Path:
    return partition_dir(zone, dataset, ds, root) / PARTITION_FILE


def existing_partitions(
    zone: str, dataset: str, days: Iterable[dt.date], root: Path | None = None
) -> list[Path]:
    """The partition files of ``days`` that exist: readers name the days they need, never glob history."""
    paths = [partition_file(zone, dataset, d, root) for d in days]
    return [p for p in paths if p.exists()]


def publish_file(tmp: Path, dest: Path) -> None:
    """Atomically move a finished file into place, replacing what was there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def publish_copy(staged: Path, dest: Path) -> None:
    """Atomically put a copy of ``staged`` in place (a hard link, else a copy, renamed over ``dest``),
    leaving ``staged`` where it is: a publish killed halfway can be retried from the same staging."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        try:
            os.link(staged, tmp)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(staged, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(frame: pd.DataFrame, dest: Path) -> Path:
    """Write ``frame`` next to ``dest`` under a temporary name, then rename it over ``dest``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # microsecond timestamps: Spark cannot read parquet nanosecond timestamps
        pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=False)
        publish_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def parquet_row_count(path: Path) -> int:
    """Rows in a parquet file, from its footer only."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def staging_dir(run_id: str, *parts: str, root: Path | None = None) -> Path:
    """A per-run scratch folder; the run id is made path-safe."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return (root or data_root()) / "_staging" / safe / Path(*parts)


def staged_partition_file(staging: Path, ds: str | dt.date) -> Path:
    """The one file Spark staged for day ``ds`` (``<staging>/ds=<day>/part-*.parquet``).

    Returns the expected path of a missing file (callers check ``exists()``); more than one file
    means the staging folder is not what a job of ours wrote, and is an error."""
    folder = staging / f"ds={as_date(ds).isoformat()}"
    files = sorted(folder.glob("*.parquet"))
    if len(files) > 1:
        raise RuntimeError(f"expected one staged file for ds={as_date(ds)}, found {len(files)} in {folder}")
    return files[0] if files else folder / "part-00000.parquet"


def _receipt(staging: Path) -> Path:
    return staging.parent / f"{staging.name}.published.json"


def finish_staging(staging: Path, result: dict[str, Any]) -> None:
    """After a publish: record its result beside the staging folder, then delete the folder. A retry
    of a publish killed after the delete (the task died before it could report success) finds the
    receipt through :func:`published_before` instead of failing on the missing staging."""
    receipt = _receipt(staging)
    tmp = receipt.parent / f".{receipt.name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(result, sort_keys=True, default=str))
    os.replace(tmp, receipt)
    failpoint("staging.receipt_written")
    remove_tree(staging)


def published_before(staging: Path) -> dict[str, Any] | None:
    """The result of a publish that already finished from ``staging`` (its receipt), or None while the
    staging folder is there to publish from."""
    receipt = _receipt(staging)
    if staging.exists() or not receipt.exists():
        return None
    return json.loads(receipt.read_text())


def remove_tree(path: Path) -> None:
    """Delete a folder as one step for a reader: renamed away first, so a process killed while deleting
    leaves it whole or gone, never half-deleted (a retry finds all of it or none)."""
    if not path.exists():
        return
    trash = path.parent / f".{path.name}.{uuid.uuid4().hex}.deleted"
    try:
        os.replace(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)

"""The data lake: hive-style ``ds=`` partitions, one parquet file each, published atomically.

Layout under the data root::

    landing/<source>/<YYYY-MM-DD>.parquet        files as delivered (the simulator writes these)
    raw/<source>/ds=<YYYY-MM-DD>/data.parquet     validated, published by the ingest DAG
    features/<name>/ds=<YYYY-MM-DD>/data.parquet  published by the features DAG
    quarantine/<source>/ds=<YYYY-MM-DD>/          rejected files and the reason, kept for inspection
    _staging/...                                  work in progress, never read downstream

A partition is a single file, so publishing is one ``os.replace``: readers see the old partition or
the new one, never a mix, and a rerun replaces instead of appending.

Files delivered from outside (landing files) are opened with :func:`open_delivered_file`: only a
regular file that lies in its zone is read. A link (symbolic, wherever it points, or hard: one file
with several names), a folder, a FIFO, a device or socket, an empty or unreadable file is an
:class:`UnusableFileError`, a data error that no retry can fix; a link is never followed, so the
content of what it points at is never read nor copied.
:func:`canonical_frame` casts a delivered frame to its dataset's canonical column types, losslessly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from include.config import data_root
from include.faults import failpoint

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PARTITION_FILE = "data.parquet"


class MissingInputError(FileNotFoundError):
    """An input partition or file is not there (yet): retryable, unlike a failed check."""


class UnusableFileError(ValueError):
    """Something is at an input path, but not a regular file that can be read (a link, a folder, a
    FIFO, a device, an empty or unreadable file): a data error, not retryable. The message names the
    path and what is there."""


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return stream_sha256(fh)


def stream_sha256(handle: BinaryIO) -> str:
    """The checksum of an open file from its start; leaves the handle at its end."""
    digest = hashlib.sha256()
    handle.seek(0)
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


# Zones that files are delivered into from outside: a hard link there is refused. Our own zones make
# them (publish_copy links a staged file into place until the staging folder is deleted, and a cleared
# validation then reads it again).
DELIVERY_ZONES = frozenset({"landing"})

# The most a delivered file may weigh: it is read into memory whole (checksum and content from one read)
# and a rejected one is copied into quarantine. A day's partition weighs megabytes; a sparse file of 100
# GB (``truncate -s``) takes no disk and would take the worker's memory or the quarantine's disk.
MAX_DELIVERED_BYTES = 2 * 1024**3
# ... and what its footer may announce: a few hundred kilobytes of parquet can hold 100 million nulls,
# gigabytes once loaded (the rows a day may have are the row-count band's business, later)
MAX_DELIVERED_ROWS, MAX_UNPACKED_BYTES = 50_000_000, 8 * 1024**3

_SPECIAL_FILES = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISCHR: "a character device",
                  stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def zone_of(path: Path, root: Path | None = None) -> Path:
    """The zone folder (``<root>/landing``, ``<root>/_staging``...) ``path`` lies in; its folder when
    it is not under the data root."""
    root = root or data_root()
    try:
        return root / path.relative_to(root).parts[0]
    except (ValueError, IndexError):
        return path.parent


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def open_delivered_file(path: Path, zone: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a non-empty regular file inside ``zone``; else raise
    :class:`UnusableFileError` naming the path and what is there (or :class:`MissingInputError`
    when nothing is). Every symbolic link at the path is refused, also one pointing inside the zone:
    the simplest rule that can never read outside it, and an upstream delivers files, not links. So is
    a hard link (a file with more than one name) in a zone of :data:`DELIVERY_ZONES`: its other name may be
    a file outside the zone (an
    ``airflow.cfg``), and nothing in the file says where; and a file above :data:`MAX_DELIVERED_BYTES`. A
    FIFO is refused from its ``lstat``, before any open that could block; the file is opened from the
    zone down with ``O_NOFOLLOW`` on every folder and on the file (:func:`_open_within`) and checked
    again on the open descriptor, so a link swapped in meanwhile, for the file or a folder above it,
    is not followed either."""
    where = f"the {zone.name} zone ({zone})"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise MissingInputError(f"no file at {path}") from None
    except PermissionError as exc:  # a folder on the way that this user may not enter
        raise UnusableFileError(f"{path} cannot be inspected ({exc.strerror}): fix the permissions of its "
                                "folders") from None
    if stat.S_ISLNK(mode):
        target = Path(os.readlink(path))
        resolved = Path(os.path.normpath(path.parent.resolve() / target))
        side = "inside" if _within(resolved, zone.resolve()) else "outside"
        raise UnusableFileError(f"{path} is a symbolic link to {target}, {side} {where}: links are refused and never "
                                "followed (nothing was read from its target); deliver the file itself")
    folder = path.parent.resolve()
    if not _within(folder, zone.resolve()):
        raise UnusableFileError(f"{path} lies in a folder that a link leads to {folder}, outside {where}: refused, "
                                "not read; deliver the file into the zone itself")
    for test, kind in _SPECIAL_FILES.items():
        if test(mode):
            raise UnusableFileError(f"{path} is {kind}, not a regular file: refused, not read; deliver the file")
    try:
        fd = _open_within(path, zone)
    except _SwappedFolderError as exc:
        raise UnusableFileError(f"{path}: its folder {exc.args[0]} is no longer a folder of {where} (a link swapped "
                                "in while it was opened?): refused, not read") from None
    except FileNotFoundError:
        raise MissingInputError(f"no file at {path}") from None
    except PermissionError as exc:
        raise UnusableFileError(f"{path} is not readable ({exc.strerror}): fix its permissions or have it "
                                "delivered again") from None
    except OSError as exc:  # ELOOP: a link swapped in after the lstat
        raise UnusableFileError(f"{path} could not be opened as a regular file ({exc.strerror}): refused") from None
    handle = os.fdopen(fd, "rb")
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or opened.st_size == 0:
        handle.close()
        what = "an empty file (0 bytes)" if stat.S_ISREG(opened.st_mode) else "not a regular file"
        raise UnusableFileError(f"{path} is {what}: refused; have it delivered again")
    if opened.st_size > MAX_DELIVERED_BYTES:  # read whole into memory, and copied whole into quarantine
        handle.close()
        raise UnusableFileError(f"{path} is {opened.st_size:,} bytes, above the {MAX_DELIVERED_BYTES:,} a delivered "
                                "file may have (a day's partition is megabytes): refused, not read nor copied; have it "
                                "split or checked upstream")
    if opened.st_nlink > 1 and zone.name in DELIVERY_ZONES:  # the same file under another name, maybe outside
        handle.close()
        raise UnusableFileError(f"{path} is a hard link ({opened.st_nlink} names for one file, the others may lie "
                                f"outside {where}): refused, not read; deliver a file of its own (a copy)")
    return handle


class _SwappedFolderError(OSError):
    """A folder between the zone and the file is not a plain folder at the time of the open."""


def _open_within(path: Path, zone: Path) -> int:
    """The descriptor of ``path`` opened from ``zone`` down, one folder at a time, none of them followed if it
    is a link (``O_NOFOLLOW`` on every step, not only the last): a folder swapped for a link after the checks
    of :func:`open_delivered_file` cannot lead the open out of the zone."""
    try:
        base, parts = zone.resolve(), path.relative_to(zone).parts
    except ValueError:  # not under the zone by name: from its (checked) folder
        base, parts = path.parent.resolve(), (path.name,)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except (FileNotFoundError, PermissionError):
                raise
            except OSError:  # ELOOP: a link; ENOTDIR: a file where the folder was
                raise _SwappedFolderError(part) from None
            os.close(fd)
            fd = step
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def read_delivered_file(path: Path, zone: Path) -> tuple[bytes, str]:
    """The content of a delivered file (opened with :func:`open_delivered_file`) and its sha256, from one
    read into memory: what is checked is what was hashed, also when the file is rewritten in place
    meanwhile (a ``cp`` over it keeps the inode, so an open descriptor would see the new bytes)."""
    with open_delivered_file(path, zone) as handle:
        content = handle.read()
    return content, hashlib.sha256(content).hexdigest()


def parquet_frame(content: bytes) -> pd.DataFrame:
    """The table a parquet file's bytes hold, every stored column as a column. A column that the pandas
    metadata in the file makes the index (a producer's ``df.set_index("transaction_id").to_parquet()``)
    is in the file like any other and comes back as a column (else a check would call it missing); an
    unnamed index (a RangeIndex, pandas' ``__index_level_0__``) is row numbering and is dropped. A footer
    announcing more than :data:`MAX_DELIVERED_ROWS` rows or :data:`MAX_UNPACKED_BYTES` is refused
    (:class:`UnusableFileError`) before anything is loaded."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    footer = pq.ParquetFile(io.BytesIO(content)).metadata
    unpacked = sum(footer.row_group(i).total_byte_size for i in range(footer.num_row_groups))
    if footer.num_rows > MAX_DELIVERED_ROWS or unpacked > MAX_UNPACKED_BYTES:
        raise UnusableFileError(f"{footer.num_rows:,} rows, {unpacked:,} bytes uncompressed in a {len(content):,}-byte "
                                f"file: above {MAX_DELIVERED_ROWS:,} rows or {MAX_UNPACKED_BYTES:,} bytes (a "
                                "decompression bomb?); refused from its footer, not loaded")
    frame = pd.read_parquet(io.BytesIO(content))
    named = [name for name in frame.index.names if name is not None]
    return frame.reset_index(level=named) if named else frame.reset_index(drop=True)


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


INT64_MAX = 2**63 - 1


def canonical_frame(frame: pd.DataFrame, schema: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """``frame`` with the columns of ``schema`` (name -> pandas dtype: ``int64``, ``float64``,
    ``datetime64[us, UTC]``) cast to their canonical type where that loses nothing, and the columns
    that could not be (name -> why, naming the value).

    - any integer type (int8..int64, uint8..uint64, nullable) -> int64; a value above the int64
      maximum (uint64) is refused, never wrapped;
    - any float type (float16, float32, nullable) -> float64 (exact: every float32 is a float64);
    - any timestamp (s, ms, us, ns; naive meaning UTC, or aware in any zone) -> UTC microseconds,
      truncated: 23:59:59.999999999 stays 23:59:59.999999 of its day, never rounded into the next; a
      millisecond value beyond the microsecond range (year 300,000) is refused naming the range;
    - any other type (a float id, text, bool) is left as delivered for the type checks to refuse:
      casting it would guess.
    Columns not in ``schema``, and missing ones, are left to the column-set check."""
    import pandas as pd
    from pandas.api import types

    out, refused = frame.copy(deep=False), {}
    for column, wanted in schema.items():
        if column not in frame.columns:
            continue
        series, target = frame[column], types.pandas_dtype(wanted)
        if series.dtype == target:
            continue
        if target.kind == "i" and types.is_integer_dtype(series.dtype) and not types.is_bool_dtype(series.dtype):
            top = series.max() if len(series) and types.is_unsigned_integer_dtype(series.dtype) else None
            if top is not None and not pd.isna(top) and int(top) > INT64_MAX:
                refused[column] = (f"{series.dtype} value {int(top)} does not fit {target} (max {INT64_MAX}): "
                                   "refused, not wrapped")
                continue
            out[column] = series.astype(target if not series.isna().any() else pd.Int64Dtype())
        elif target.kind == "f" and types.is_float_dtype(series.dtype):
            out[column] = series.astype(target)
        elif target.kind == "M" and types.is_datetime64_any_dtype(series.dtype):
            zone = getattr(target, "tz", None)
            aware = series.dt.tz_convert(zone) if series.dt.tz is not None else series.dt.tz_localize(zone)
            unit = getattr(target, "unit", None) or str(target).split("[")[1].split("]")[0]
            try:
                out[column] = aware.dt.floor(pd.Timedelta(1, unit=unit)).astype(target)
            except (OverflowError, pd.errors.OutOfBoundsDatetime):  # a coarse unit holds years a fine one cannot
                utc = (series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series)
                stamps = utc.dropna().to_numpy()  # numpy prints any year; pandas' Timestamp cannot
                refused[column] = (f"{series.dtype} values from {stamps.min()} to {stamps.max()} (UTC) do not fit "
                                   f"{target} (about 290,000 years either side of 1970): refused, not wrapped")
    return out, refused


def write_parquet_atomic(frame: pd.DataFrame, dest: Path) -> Path:
    """Write ``frame`` next to ``dest`` under a temporary name, then rename it over ``dest``."""
    write_parquet_if_changed(frame, dest, keep_identical=False)
    return dest


def write_parquet_if_changed(frame: pd.DataFrame, dest: Path, keep_identical: bool = True) -> bool:
    """Like :func:`write_parquet_atomic`, but when ``dest`` already holds exactly these bytes (same
    sha256) it is left alone, its mtime included, so its :func:`partition_version` does not change
    and nothing computed from it turns stale. True when ``dest`` was (re)written. The parquet writer
    is deterministic: the same frame gives the same bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # microsecond timestamps: Spark cannot read parquet nanosecond timestamps
        pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=False)
        if keep_identical and dest.is_file() and not dest.is_symlink() and file_sha256(dest) == file_sha256(tmp):
            return False
        _after_previous_version(tmp, dest)
        publish_file(tmp, dest)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _after_previous_version(new: Path, dest: Path) -> None:
    """Give ``new`` an mtime after that of the file it replaces: the kernel stamps files from a coarse
    clock (a few milliseconds), and two publishes of the same size within one tick would otherwise
    have the same :func:`file_version`."""
    try:
        previous = dest.stat().st_mtime_ns
    except FileNotFoundError:
        return
    info = new.stat()
    if info.st_mtime_ns <= previous:
        os.utime(new, ns=(info.st_atime_ns, previous + 1))


def file_version(path: Path) -> str | None:
    """A cheap identity of the file at ``path`` from one ``stat``: ``"<size>:<mtime_ns>"``, or None
    when nothing is there. Every publish renames a newly written file into place with an mtime after
    the one it replaces, so a new version has a new mtime; an identical republish keeps the file
    (:func:`write_parquet_if_changed`). A copy that keeps mtimes (``cp -p``, ``rsync -a``) keeps versions."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"


def partition_version(zone: str, dataset: str, ds: str | dt.date, root: Path | None = None) -> str | None:
    """The :func:`file_version` of a partition's file (None when the partition is absent): what the
    lineage of a computed partition records of each input it read."""
    return file_version(partition_file(zone, dataset, ds, root))


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

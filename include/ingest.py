"""Publishing validated landing files as raw partitions (the ingest DAG's last step).

**One schema per raw dataset: normalised, losslessly, before validation and at publish.** A producer
may deliver a valid day with int32 or uint32 ids, float32 amounts, or timestamps in any unit (s, ms,
us, ns) and any zone (or naive, meaning UTC). Every published partition of a dataset nevertheless
has the canonical schema of :data:`RAW_SCHEMAS` (int64 ids and labels, float64 amounts, UTC
timestamps in microseconds: what the simulator writes and the Spark feature job reads), because
Spark reads a lookback window of partitions as one table and fails on a day whose types differ
from its neighbours' (a Parquet type mismatch, naming whichever partition it read first).

- The checkpoint validates the *normalised* frame (:func:`include.storage.canonical_frame`, called
  by :func:`include.validation.checkpoints.validate_parquet_file`): the rules see what will be
  published, and a timestamp in the last nanosecond of the day (truncated to 23:59:59.999999, never
  rounded into the next day) is inside its day, while 00:00:00 of the next day is refused.
- A cast that would lose information is refused at validation, naming the column and the value: a
  uint64 id above the int64 maximum; float ids, text or bool keys are not cast at all and fail the
  type checks. Nothing that passed validation can fail to normalise at publish.
- :func:`publish_landing` reads the file once into memory (its checksum and its content from the same
  bytes: a file rewritten in place meanwhile cannot slip unvalidated content in), normalises it with
  the same function, and writes the canonical columns in canonical order.

The landing file itself is read with :func:`include.storage.read_delivered_file`: a link (symbolic to
anywhere, or hard), a folder, a FIFO, an empty or unreadable file is refused, never followed or read.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from include.config import data_root
from include.pipelines import get as pipeline_spec
from include.storage import (
    UnusableFileError,
    as_date,
    canonical_frame,
    landing_file,
    parquet_frame,
    partition_file,
    read_delivered_file,
    write_parquet_if_changed,
    zone_of,
)

log = logging.getLogger(__name__)

# The landing sources of the fraud pipeline's raw datasets (include/pipelines/fraud/spec.py)
SOURCES = tuple(d.landing_source for d in pipeline_spec("fraud").in_zone("raw"))

# The schema of every published raw partition, by dataset (the name of its checkpoint suite): the
# ``columns`` of the fraud pipeline's raw datasets in its spec
RAW_SCHEMAS: dict[str, dict[str, str]] = {d.name: dict(d.columns) for d in pipeline_spec("fraud").in_zone("raw")
                                          if d.columns}


def publish_landing(source: str, ds: str | dt.date, validated_sha256: str, root: Path | None = None) -> dict[str, Any]:
    """Publish the validated landing file of ``ds`` to ``raw/<source>/ds=<ds>/`` atomically, in the
    canonical schema of ``raw_<source>``.

    ``validated_sha256`` is the checksum the checkpoint saw: if the file changed since, nothing is
    published (RuntimeError: the new file has not been validated). A path that is no longer a
    regular file (a link swapped in, a folder) raises :class:`include.storage.UnusableFileError`.
    Neither is retryable.

    A partition that already holds exactly what would be written (same sha256) is kept, file and
    mtime, and reported with ``"changed": False``: republishing the same landing file makes no
    feature day stale.
    """

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    root = root or data_root()
    src, schema = landing_file(source, ds, root), RAW_SCHEMAS[f"raw_{source}"]
    content, actual = read_delivered_file(src, zone_of(src, root))
    if actual != validated_sha256:
        raise RuntimeError(
            f"{src} changed after validation (sha256 {actual[:12]} != validated {validated_sha256[:12]}); "
            "rerun the validation task"
        )
    frame = parquet_frame(content)  # the bytes hashed, not the file again
    del content
    frame, refused = canonical_frame(frame, schema)
    if refused or set(frame.columns) != set(schema):  # validation refuses both: only a bypassed check gets here
        raise UnusableFileError(f"{src}: not in the canonical schema of raw_{source} "
                                f"(columns {sorted(frame.columns)}; {refused})")
    dest = partition_file("raw", source, as_date(ds), root)
    # a rerun with the same file leaves the partition (and its version) as it is: nothing computed
    # from it turns stale (include.features.pipeline, lineage)
    changed = write_parquet_if_changed(frame[list(schema)], dest)
    if changed:
        log.info("published %d %s rows to %s", len(frame), source, dest)
    else:
        log.info("%s already holds these %d %s rows (same sha256): kept as it was, nothing turns stale",
                 dest, len(frame), source)
    return {"source": source, "ds": str(as_date(ds)), "path": str(dest), "rows": len(frame), "changed": changed}


def publish_validated(source: str, validation: dict[str, Any],
                      root: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish every partition a checkpoint of ``source`` validated (``validation``: the checkpoint's
    summary, ``{"partitions": [{"ds", "sha256", ...}, ...]}`` in day order), with
    :func:`publish_landing`, in day order.

    Returns ``(summary, extra)``: ``summary`` is what the publish task reports (the one partition of a
    single-day run, else ``{"days", "rows", **extra}``); ``extra`` is the extra of the source's Asset
    event (:func:`include.run_days.event_extra`: ``{"ds", "rows"}`` for one day, ``{"start", "end",
    "rows"}`` for a range), which include.run_days.event_days reads back. Raises what
    :func:`publish_landing` raises: RuntimeError (a file changed after validation) or
    :class:`include.storage.UnusableFileError` (no longer a regular file) stop at the first such day;
    the days before it stay published (each day is atomic, and a rerun replaces it)."""
    from include.run_days import event_extra

    partitions = validation.get("partitions") or []
    if not partitions:
        raise ValueError(f"nothing to publish for {source}: the validation summary lists no partitions ({validation!r})")
    published = [publish_landing(source, partition["ds"], partition["sha256"], root) for partition in partitions]
    rows = sum(p["rows"] for p in published)
    extra = event_extra([p["ds"] for p in published], rows=rows)
    summary = published[0] if len(published) == 1 else {"days": len(published), "rows": rows, **extra}
    return summary, extra

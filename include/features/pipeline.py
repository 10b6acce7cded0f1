"""The steps of the features DAG around the Spark job: which days to compute, and publishing the
staged, validated partitions."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from include.config import data_root
from include.faults import failpoint
from include.features.baseline import label_days
from include.storage import (
    as_date,
    day_range,
    finish_staging,
    partition_file,
    publish_copy,
    published_before,
    staged_partition_file,
)

log = logging.getLogger(__name__)

FEATURE_SET = "baseline"


def plan_feature_days(
    start: str | None, end: str | None, triggered_days: Iterable[str], root: Path | None = None
) -> tuple[dt.date, dt.date]:
    """The range to compute: the ``start``/``end`` params of a manual or backfill run, else the days
    whose raw partitions triggered this run. Fails early when a day has no raw partition."""
    if start:
        first, last = as_date(start), as_date(end or start)
    else:
        days = sorted({as_date(d) for d in triggered_days})
        if not days:
            raise ValueError(
                "no feature days: the run was not triggered by a raw_transactions event carrying a ds, "
                "and no 'start' param was given (trigger with {\"start\": \"YYYY-MM-DD\", \"end\": ...})"
            )
        first, last = days[0], days[-1]
    wanted = day_range(first, last)
    missing = [d.isoformat() for d in wanted if not partition_file("raw", "transactions", d, root).exists()]
    if missing:
        raise FileNotFoundError(f"raw transactions are not published for feature days {missing}; run ingest first")
    # ingest publishes a day's labels (possibly none) with its transactions: a lookback day with
    # transactions but no labels partition is a label delivery still on its way, and features built
    # without it would count that day's frauds as genuine
    late = [d.isoformat() for d in label_days(first, last)
            if partition_file("raw", "transactions", d, root).exists()
            and not partition_file("raw", "labels", d, root).exists()]
    if late:
        raise FileNotFoundError(f"raw labels are not published for arrival days {late} that the terminal risk of "
                                f"{first}..{last} reads; run (or finish) ingest of those days first")
    return first, last


def publish_staged_features(staging: Path, start: str | dt.date, end: str | dt.date,
                            root: Path | None = None) -> dict[str, Any]:
    """Put each staged day in place as ``features/baseline/ds=<day>/data.parquet`` (one atomic rename
    each), then delete the staging folder. The staged files stay until every day is in place, so a
    publish killed halfway is retried from the same staging, and the retry equals an undisturbed run."""
    root = root or data_root()
    if (done := published_before(staging)) is not None:  # a retry after the task died at its very end
        log.info("feature partitions %s..%s were published by an earlier try", start, end)
        return done
    staged = {day: staged_partition_file(staging, day) for day in day_range(start, end)}
    missing = [day.isoformat() for day, file in staged.items() if not file.exists()]
    if missing:  # check every day before moving any: no partial publication
        raise RuntimeError(f"no staged feature file for {', '.join('ds=' + d for d in missing)} in {staging}")
    for day, file in staged.items():
        publish_copy(file, partition_file("features", FEATURE_SET, day, root))
        failpoint("features.publish.partition")
    failpoint("features.publish.done")
    published = [day.isoformat() for day in staged]
    result = {"feature_set": FEATURE_SET, "days": published, "count": len(published)}
    finish_staging(staging, result)
    log.info("published %d feature partitions %s..%s", len(published), published[0], published[-1])
    return result

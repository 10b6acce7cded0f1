"""Which file each dataset's checkpoint reads, with which run-time parameters, and where a rejected
file goes. One entry per validated dataset; :func:`validate_partitions` is what operators call."""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.config import LABEL_DELAY_DAYS, ConfigError, data_root
from include.storage import (
    MissingInputError,
    as_date,
    existing_partitions,
    parquet_row_count,
    partition_file,
    staged_partition_file,
)
from include.validation.checkpoints import (
    DataQualityError,
    ValidationReport,
    checkpoint_runner,
    quarantine,
    validate_parquet_file,
)

log = logging.getLogger(__name__)

# Raw daily volume must stay within [RELATIVE_LOW, RELATIVE_HIGH] x the median of recent days.
RELATIVE_LOW, RELATIVE_HIGH, RECENT_DAYS = 0.5, 2.0, 7


@dataclass(frozen=True)
class DatasetCheck:
    suite: str
    zone: str  # quarantine/<zone>/<dataset>/
    dataset: str
    locate: Callable[[dt.date, Path | None, Path], Path]  # (day, staging folder, data root) -> file
    parameters: Callable[[dt.date, Path, dict[str, Any]], dict[str, Any]]  # (day, root, overrides)


def day_bounds(day: dt.date) -> dict[str, str]:
    start = dt.datetime.combine(day, dt.time())  # naive UTC, like the validated frames
    end = start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return {"day_start": start.isoformat(), "day_end": end.isoformat()}


def transaction_row_bounds(day: dt.date, root: Path, floor: int = 1, ceiling: int = 5_000_000) -> dict[str, int]:
    """Absolute bounds, narrowed to a band around the median of the last published days. A band that
    lies outside the absolute bounds (a floor above twice the usual volume) leaves the absolute
    bounds alone: they are what the operators set."""
    recent_days = [day - dt.timedelta(days=i) for i in range(1, RECENT_DAYS + 1)]
    recent = [parquet_row_count(p) for p in existing_partitions("raw", "transactions", recent_days, root)]
    low, high = floor, ceiling
    if len(recent) >= 3:
        median = statistics.median(recent)
        low, high = max(floor, int(median * RELATIVE_LOW)), min(ceiling, int(median * RELATIVE_HIGH) + 1)
        if low > high:
            low, high = floor, ceiling
    return {"min_rows": low, "max_rows": high}


# The Airflow Variables the ingest DAG renders into the row-count overrides (named in the errors).
ROW_COUNT_VARIABLES = {"min_rows": "batchml_min_daily_transactions", "max_rows": "batchml_max_daily_transactions"}
ROW_COUNT_DEFAULTS = {"min_rows": 1, "max_rows": 5_000_000}


def row_count_overrides(overrides: dict[str, Any], where: str, variables: dict[str, str] | None = None,
                        defaults: dict[str, int] | None = None) -> tuple[int, int]:
    """The absolute row-count bounds of the overrides (``defaults`` where absent); ConfigError naming the
    Variable (of ``variables``: ``{"min_rows": name, "max_rows": name}``) when one is not a whole
    number >= 0 or the minimum exceeds the maximum."""
    names = variables or ROW_COUNT_VARIABLES
    bounds = {}
    for key, default in (defaults or ROW_COUNT_DEFAULTS).items():
        value = overrides.get(key, default)
        try:
            bounds[key] = int(str(value).strip())
        except ValueError:
            bounds[key] = -1
        if bounds[key] < 0:
            raise ConfigError(f"{where}: Airflow Variable {names[key]} = {value!r} is not a whole "
                              f"number >= 0 (the {key} bound of the row count); fix the Variable and clear the task")
    if bounds["min_rows"] > bounds["max_rows"]:
        raise ConfigError(f"{where}: Airflow Variable {names['min_rows']} = {bounds['min_rows']} "
                          f"exceeds {names['max_rows']} = {bounds['max_rows']}; fix the Variables "
                          "and clear the task")
    return bounds["min_rows"], bounds["max_rows"]


def _transactions_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    floor, ceiling = row_count_overrides(overrides, f"raw_transactions ds={day}")
    return {**day_bounds(day), **transaction_row_bounds(day, root, floor, ceiling)}


def _labels_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Labels arriving on ``day`` label exactly the transactions of ``day - delay``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    labelled = partition_file("raw", "transactions", day - dt.timedelta(days=LABEL_DELAY_DAYS), root)
    if not labelled.exists():  # nothing was published that day (start of history): expect an empty file
        return {"expected_rows": 0, "first_transaction_id": 0, "last_transaction_id": 0}
    ids = pq.read_table(labelled, columns=["transaction_id"]).column(0)
    bounds = pc.min_max(ids)
    return {
        "expected_rows": len(ids),
        "first_transaction_id": (bounds["min"].as_py() or 0),
        "last_transaction_id": (bounds["max"].as_py() or 0),
    }


def _features_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    raw = partition_file("raw", "transactions", day, root)
    return {**day_bounds(day), "expected_rows": parquet_row_count(raw)}


def _predictions_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"expected_rows": parquet_row_count(partition_file("features", "baseline", day, root))}


def _staged_file(day: dt.date, staging: Path | None, root: Path) -> Path:
    if staging is None:
        raise ValueError("Spark outputs are validated in their staging folder: pass staging")
    return staged_partition_file(staging, day)


DATASETS: dict[str, DatasetCheck] = {
    "raw_transactions": DatasetCheck(
        "raw_transactions", "landing", "transactions",
        lambda day, _staging, root: root / "landing" / "transactions" / f"{day.isoformat()}.parquet",
        _transactions_parameters,
    ),
    "raw_labels": DatasetCheck(
        "raw_labels", "landing", "labels",
        lambda day, _staging, root: root / "landing" / "labels" / f"{day.isoformat()}.parquet",
        _labels_parameters,
    ),
    "features_baseline": DatasetCheck(
        "features_baseline", "features", "baseline", _staged_file, _features_parameters
    ),
    "predictions": DatasetCheck("predictions", "predictions", "fraud", _staged_file, _predictions_parameters),
}


# Who registered each dataset name beyond the reference pipeline's own (register() below).
_REGISTERED_BY: dict[str, str] = {}


def register(owner: str, suites: dict[str, Callable[[], list]], checks: dict[str, DatasetCheck]) -> None:
    """Add a pipeline's expectation suites and dataset checks to the registries that
    ``GXCheckpointOperator`` and :func:`validate_partitions` read. Idempotent for the same ``owner``
    (the pipeline's module); a name the reference pipeline or another owner holds is refused, naming
    the holder. Cheap (dictionary updates): DAG files call it while they are parsed, so the worker that
    runs a check knows the dataset."""
    from include.validation import suites as suite_registry

    for name in {*suites, *checks}:
        holder = _REGISTERED_BY.get(name) or (
            "the reference pipeline" if name in DATASETS or name in suite_registry.SUITES else None)
        if holder not in (None, owner):
            raise ValueError(f"dataset {name!r} of {owner} is already registered by {holder}")
    suite_registry.SUITES.update(suites)
    DATASETS.update(checks)
    _REGISTERED_BY.update(dict.fromkeys({*suites, *checks}, owner))


def validate_partitions(
    dataset: str,
    days: Iterable[str | dt.date],
    staging: Path | None = None,
    overrides: dict[str, Any] | None = None,
    root: Path | None = None,
) -> list[ValidationReport]:
    """Validate each day's file of ``dataset``; quarantine and raise if any of them fails.

    Raises :class:`MissingInputError` when a file is absent and :class:`DataQualityError` (carrying
    every failed report) when any partition fails.
    """
    if dataset not in DATASETS:
        raise KeyError(f"no checks defined for dataset {dataset!r}; known: {sorted(DATASETS)}")
    check, root = DATASETS[dataset], root or data_root()
    reports, failed = [], []
    days = list(map(as_date, days))
    for day in days:  # every file is there before anything is validated
        path = check.locate(day, staging, root)
        if not path.exists():
            raise MissingInputError(f"{dataset} ds={day}: no file at {path}")
    with checkpoint_runner(root) as runner:  # one GX project load and one Data Docs build for all days
        for day in days:
            path = check.locate(day, staging, root)
            report, _ = validate_parquet_file(check.suite, path, day.isoformat(),
                                              check.parameters(day, root, overrides or {}), root, runner)
            log.info("%s", report.message())
            if not report.success:
                quarantine(path, report, check.zone, check.dataset, root)
                failed.append(report)
            record_quality(dataset, day, report)
            reports.append(report)
    if failed:
        raise DataQualityError(failed)
    return reports


def record_quality(dataset: str, day: dt.date, report: ValidationReport, attempts: int = 3) -> None:
    """The checkpoint's verdict into the warehouse ``data_quality`` table (the ML monitor view reads it).

    Best effort: the validation itself has already decided; a warehouse that cannot be written is
    logged as an error and does not change the task's outcome. Retried because parallel first runs
    (both ingest sources) may race to create the warehouse tables."""
    import time

    from include import warehouse

    row = {"ds": day, "dataset": dataset, "suite": report.suite, "success": report.success,
           "evaluated": report.evaluated, "failed": len(report.failures), "rows": report.rows,
           "failures": "\n".join(str(f) for f in report.failures)[:4000] or None, "path": report.path,
           "quarantined_to": report.quarantined_to}
    for attempt in range(1, attempts + 1):
        try:
            warehouse.record_data_quality(row)
            return
        except Exception:  # noqa: BLE001 - any database error; the last one is logged with its traceback
            if attempt == attempts:
                log.exception("%s ds=%s: could not record the validation result in the warehouse", dataset, day)
                return
            time.sleep(0.2 * attempt)

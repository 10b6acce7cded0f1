"""Which file each dataset's checkpoint reads, with which run-time parameters, and where a rejected
file goes. One entry per validated dataset; :func:`validate_partitions` is what operators call."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.config import LABEL_DELAY_DAYS, ConfigError, data_root
from include.pipelines import get as pipeline_spec
from include.scoring import SHADOW_CHECK, SHADOW_PREDICTIONS
from include.storage import (
    MissingInputError,
    as_date,
    existing_partitions,
    landing_file,
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
# the fraud pipeline's datasets (include/pipelines/fraud/spec.py)
_FEATURES = pipeline_spec("fraud").only("features")
_PREDICTIONS = pipeline_spec("fraud").only("predictions")
RAW_TRANSACTIONS, RAW_LABELS = (pipeline_spec("fraud").dataset(n) for n in ("raw_transactions", "raw_labels"))



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
    """Absolute bounds, narrowed to the band ``transactions.rows`` of plausibility.yaml around the
    median of the last published days. A band that lies outside the absolute bounds (a floor above
    twice the usual volume) leaves the absolute bounds alone: they are what the operators set."""
    from include.validation.plausibility import load_plausibility, median_of

    cfg = load_plausibility()
    recent_days = [day - dt.timedelta(days=i) for i in range(1, cfg.recent_days + 1)]
    recent = [parquet_row_count(p) for p in existing_partitions("raw", RAW_TRANSACTIONS.dataset, recent_days, root)]
    median, band = median_of(recent, cfg.min_recent_days), cfg.transactions.rows
    low, high = floor, ceiling
    if median is not None:
        low = max(floor, int(median * band.low)) if band.low is not None else floor
        high = min(ceiling, int(median * band.high) + 1) if band.high is not None else ceiling
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
    return {**day_bounds(day), **transaction_row_bounds(day, root, floor, ceiling),
            **transaction_plausibility(day, root)}


# --- plausibility: bounds learnt from the published days around the validated one --------------------

@dataclass(frozen=True)
class TransactionsProfile:
    """What the plausibility bounds need of one published day of transactions."""

    rows: int
    first_id: int | None
    last_id: int | None
    busiest_hour_share: float
    top_customer_share: float
    top_terminal_share: float
    distinct_customers: int


def _cached_by_version(read: Callable[[Path], Any]) -> Callable[[Path], Any]:
    """``read(path)`` once per version of the file (path, mtime, size): validating a range of days
    reads each published neighbour once, not once per day that looks at it."""
    cached = functools.lru_cache(maxsize=64)(lambda path, _mtime_ns, _size: read(Path(path)))

    @functools.wraps(read)
    def wrapper(path: Path):
        stat = path.stat()
        return cached(str(path), stat.st_mtime_ns, stat.st_size)
    return wrapper


@_cached_by_version
def transactions_profile(path: Path) -> TransactionsProfile:
    import pandas as pd

    from include.validation.expectations import largest_share

    frame = pd.read_parquet(path, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id"])
    ids = frame["transaction_id"]
    return TransactionsProfile(
        rows=len(frame), first_id=None if ids.empty else int(ids.min()), last_id=None if ids.empty else int(ids.max()),
        busiest_hour_share=largest_share(frame["tx_datetime"], per="h"),
        top_customer_share=largest_share(frame["customer_id"]),
        top_terminal_share=largest_share(frame["terminal_id"]),
        distinct_customers=int(frame["customer_id"].nunique()),
    )


@_cached_by_version
def fraud_count(path: Path) -> tuple[int, int]:
    """(labelled rows, frauds) of a published labels partition."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    labels = pq.read_table(path, columns=["tx_fraud"]).column(0)
    return len(labels), int(pc.sum(labels).as_py() or 0)


def _delivered_rows(path: Path) -> int | None:
    """Rows of a landing file, from its footer; None when it is not a readable regular parquet file
    (the checkpoint reports that itself)."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return parquet_row_count(path)
    except Exception:  # noqa: BLE001 - any reader error: the checkpoint names it
        return None


def transaction_plausibility(day: dt.date, root: Path) -> dict[str, Any]:
    """Suite parameters of the plausibility expectations of ``raw_transactions`` for ``day``: id
    continuity with the neighbouring published days, and the shares and counts of the day against
    the recent days (include/pipelines/fraud/plausibility.yaml)."""
    from include.validation.plausibility import (
        load_plausibility,
        median_of,
        relative_bounds,
        share_bounds,
    )

    cfg = load_plausibility()
    window = [day - dt.timedelta(days=i) for i in range(1, cfg.recent_days + 1)]
    recent = [transactions_profile(p) for p in existing_partitions("raw", RAW_TRANSACTIONS.dataset, window, root)]
    recent = [r for r in recent if r.rows]
    later = [day + dt.timedelta(days=i) for i in range(1, cfg.recent_days + 1)]  # a rerun of a past day
    following = next((r for r in map(transactions_profile, existing_partitions("raw", RAW_TRANSACTIONS.dataset, later, root))
                      if r.rows), None)
    # the day's own row count sets the sampling noise; without it, the recent median stands in
    n = _delivered_rows(landing_file(RAW_TRANSACTIONS.landing_source, day, root)) or median_of([r.rows for r in recent], 1)
    n = int(n) if n else None
    tx = cfg.transactions

    def upper(share: str) -> float:
        reference = median_of([getattr(r, share) for r in recent], cfg.min_recent_days)
        return share_bounds(n, reference, getattr(tx, share), cfg.false_alarm)[1]

    customers = relative_bounds(median_of([r.distinct_customers for r in recent], cfg.min_recent_days),
                                tx.distinct_customers)
    return {
        "content_unique_mostly": 1.0 - tx.max_duplicate_share,
        "max_out_of_order_share": tx.max_out_of_order_share,
        "min_transaction_id": recent[0].last_id + 1 if recent else 0,
        "max_transaction_id": following.first_id - 1 if following else None,
        "max_busiest_hour_share": upper("busiest_hour_share"),
        "max_top_customer_share": upper("top_customer_share"),
        "max_top_terminal_share": upper("top_terminal_share"),
        "min_distinct_customers": customers["min"],
        "max_distinct_customers": customers["max"],
    }


def label_plausibility(day: dt.date, root: Path, expected_rows: int) -> dict[str, int]:
    """Bounds on the frauds among the ``expected_rows`` labels arriving on ``day``: the fraud rate of
    the recent label days (pooled: frauds / rows, robust to days with few frauds) in its band, once
    they hold ``min_reference_frauds``; the absolute bounds alone before."""
    from include.validation.plausibility import count_bounds, load_plausibility

    cfg = load_plausibility()
    window = [day - dt.timedelta(days=i) for i in range(1, cfg.recent_days + 1)]
    recent = [c for c in map(fraud_count, existing_partitions("raw", RAW_LABELS.dataset, window, root)) if c[0]]
    rows, frauds = sum(r for r, _ in recent), sum(f for _, f in recent)
    # at least one fraud, whatever the file says: a rate of 0 would make any fraud implausible
    enough = len(recent) >= cfg.min_recent_days and frauds >= max(1, cfg.labels.min_reference_frauds)
    low, high = count_bounds(expected_rows, frauds / rows if enough else None, cfg.labels.fraud_rate,
                             cfg.false_alarm)
    return {"min_frauds": low, "max_frauds": high}


def _labels_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Labels arriving on ``day`` label exactly the transactions of ``day - delay``.

    Whatever the order the days are ingested in (a backfill may run newest first): a labels file with
    rows whose transactions are not published waits for them (:class:`MissingInputError`, retried;
    the file stays in landing/), it is never judged against a guess; an empty labels file with no
    transactions published for its day is accepted as the start of history (no transactions, nothing
    to label)."""
    labelled_day = day - dt.timedelta(days=LABEL_DELAY_DAYS)
    labelled = partition_file("raw", RAW_TRANSACTIONS.dataset, labelled_day, root)
    if not labelled.exists():
        delivered = _delivered_rows(landing_file(RAW_LABELS.landing_source, day, root))
        if delivered:  # the transactions of that day are late, refused or never delivered: wait for them
            raise MissingInputError(
                f"raw_labels ds={day}: the {delivered} labels arriving on {day} label the transactions of "
                f"{labelled_day}, which were not published (no partition at {labelled}; late, refused, or not yet "
                f"ingested in a backfill): redeliver landing/transactions for {labelled_day} if it was refused, "
                "ingest it, then clear validate_labels (the labels file stays in landing/)")
        # an empty file (the start of history), or one the checkpoint will refuse as unreadable
        return {"expected_rows": 0, "first_transaction_id": 0, "last_transaction_id": 0,
                **label_plausibility(day, root, 0)}
    labelled_profile = transactions_profile(labelled)  # cached: the plausibility bounds read it too
    return {
        "expected_rows": labelled_profile.rows,
        "first_transaction_id": labelled_profile.first_id or 0,
        "last_transaction_id": labelled_profile.last_id or 0,
        **label_plausibility(day, root, labelled_profile.rows),
    }


def _features_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    raw = partition_file("raw", RAW_TRANSACTIONS.dataset, day, root)
    return {**day_bounds(day), "expected_rows": parquet_row_count(raw)}


def _predictions_parameters(day: dt.date, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"expected_rows": parquet_row_count(partition_file("features", _FEATURES.dataset, day, root))}


def _staged_file(day: dt.date, staging: Path | None, root: Path) -> Path:
    if staging is None:
        raise ValueError("Spark outputs are validated in their staging folder: pass staging")
    return staged_partition_file(staging, day)


DATASETS: dict[str, DatasetCheck] = {
    "raw_transactions": DatasetCheck(
        "raw_transactions", "landing", RAW_TRANSACTIONS.dataset,
        lambda day, _staging, root: landing_file(RAW_TRANSACTIONS.landing_source, day, root),
        _transactions_parameters,
    ),
    "raw_labels": DatasetCheck(
        "raw_labels", "landing", RAW_LABELS.dataset,
        lambda day, _staging, root: landing_file(RAW_LABELS.landing_source, day, root),
        _labels_parameters,
    ),
    "features_baseline": DatasetCheck(
        "features_baseline", "features", _FEATURES.dataset, _staged_file, _features_parameters
    ),
    "predictions": DatasetCheck("predictions", "predictions", _PREDICTIONS.dataset, _staged_file,
                                _predictions_parameters),
}
# the shadow version's staged predictions (dags/shadow_scoring.py): the predictions checkpoint, quarantined
# apart from the champion's (quarantine/predictions/<its dataset>/)
DATASETS[SHADOW_CHECK] = dataclasses.replace(DATASETS["predictions"], dataset=SHADOW_PREDICTIONS[1])


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
        if not path.exists() and not path.is_symlink():  # a dangling link is refused when validated, not awaited
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

"""The churn pipeline's Great Expectations suites (docs/churn.md, "Suites"): one per raw dataset of
include/pipelines/churn/spec.py and one for the staged features, in the form of the platform's
(include/validation/suites.py, whose type lists and parameter helper they reuse). Values that depend
on the partition are suite parameters, filled in by the checks of :data:`CHECKS`.

:func:`register` adds them to the registries the platform's checkpoint runner and
``validate_partitions`` read (include/validation/datasets.py ``register``); cheap, so a DAG file may
call it while it is parsed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.pipelines.churn import features as cf
from include.pipelines.churn.simulator import CONTRACTS, PAYMENT_FAILURE_KINDS, PLANS, SUPPORT_KINDS
from include.storage import landing_file, parquet_row_count, partition_file, staged_partition_file
from include.validation.suites import FLOAT_TYPES, INT_TYPES, UTC_TIMESTAMP_TYPES
from include.validation.suites import _param as param

# pandas 3 reads parquet strings as "str"; older versions as object
STRING_TYPES = ["str", "string", "object"]
MAX_FEE = 1_000.0  # a monthly fee above this is a corrupt file, not a plan
MAX_SESSIONS_A_DAY = 200  # usage records are one per customer and day
MAX_MINUTES_A_DAY = 24 * 60.0
# a fee change of the 28 days between two extracts: -100 % .. +200 % (the simulator's increase is at most +200 %)
FEE_CHANGE_BOUNDS = (-1.0, 2.0)
OWNER = __name__


def _not_null(columns) -> list:
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _events(extra: dict[str, list[str]], values: list) -> Callable[[], list]:
    """A daily event table: customer, event time inside the day, and its own columns."""

    def suite() -> list:
        import great_expectations.expectations as gxe

        columns = ["customer_id", "event_time", *extra]
        return [
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            gxe.ExpectColumnValuesToBeInTypeList(column="customer_id", type_list=INT_TYPES),
            gxe.ExpectColumnValuesToBeInTypeList(column="event_time", type_list=UTC_TIMESTAMP_TYPES),
            *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=types) for c, types in extra.items()],
            *_not_null(columns),
            gxe.ExpectColumnValuesToBeBetween(column="customer_id", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="event_time", min_value=param("day_start"),
                                              max_value=param("day_end")),
            *values,
        ]

    return suite


def _usage_values() -> list:
    import great_expectations.expectations as gxe

    return [
        # one record per customer and day
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
        gxe.ExpectColumnValuesToBeBetween(column="sessions", min_value=1, max_value=MAX_SESSIONS_A_DAY),
        gxe.ExpectColumnValuesToBeBetween(column="minutes", min_value=0, max_value=MAX_MINUTES_A_DAY,
                                          strict_min=True),
    ]


def _kinds(kinds: tuple[str, ...]) -> list:
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=list(kinds))]


def _raw_usage_events() -> list:
    return _events({"sessions": INT_TYPES, "minutes": FLOAT_TYPES}, _usage_values())()


def _raw_support_contacts() -> list:
    return _events({"kind": STRING_TYPES}, _kinds(SUPPORT_KINDS))()


def _raw_payment_failures() -> list:
    return _events({"kind": STRING_TYPES}, _kinds(PAYMENT_FAILURE_KINDS))()


def _raw_customers() -> list:
    """The weekly extract of the active customers (no cancellation date: that is the future)."""
    import great_expectations.expectations as gxe

    columns = ["customer_id", "signup_date", "plan", "contract_type", "monthly_fee"]
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),  # an empty extract is a failed export, not a quiet week
        gxe.ExpectColumnValuesToBeInTypeList(column="customer_id", type_list=INT_TYPES),
        gxe.ExpectColumnValuesToBeInTypeList(column="monthly_fee", type_list=FLOAT_TYPES),
        *_not_null(columns),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
        gxe.ExpectColumnValuesToBeBetween(column="customer_id", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="plan", value_set=list(PLANS)),
        gxe.ExpectColumnValuesToBeInSet(column="contract_type", value_set=list(CONTRACTS)),
        gxe.ExpectColumnValuesToBeBetween(column="monthly_fee", min_value=0, max_value=MAX_FEE, strict_min=True),
    ]


def _raw_cancellations() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=["customer_id", "cancel_date"], exact_match=True),
        gxe.ExpectColumnValuesToBeInTypeList(column="customer_id", type_list=INT_TYPES),
        *_not_null(["customer_id", "cancel_date"]),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),  # a customer cancels once
        gxe.ExpectColumnValuesToBeBetween(column="customer_id", min_value=0),
    ]


def _raw_labels() -> list:
    import great_expectations.expectations as gxe

    columns = ["snapshot_date", "customer_id", cf.LABEL]
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
        gxe.ExpectColumnValuesToBeInTypeList(column="customer_id", type_list=INT_TYPES),
        gxe.ExpectColumnValuesToBeInTypeList(column=cf.LABEL, type_list=INT_TYPES),
        *_not_null(columns),
        gxe.ExpectColumnValuesToBeUnique(column="customer_id"),  # one snapshot per file (landed on S + 30)
        gxe.ExpectColumnValuesToBeInSet(column=cf.LABEL, value_set=[0, 1]),
    ]


def _features() -> list:
    import great_expectations.expectations as gxe

    counts = [*cf.SESSION_COLUMNS, *cf.SUPPORT_COLUMNS, *cf.FAILURE_COLUMNS]
    flags = [*cf.PLAN_COLUMNS, *cf.CONTRACT_COLUMNS]
    floats = [c for c in cf.MODEL_INPUTS if c in cf.FLOAT_INPUTS]
    ints = [c for c in cf.MODEL_INPUTS if c not in cf.FLOAT_INPUTS]
    nested = [*zip(cf.SESSION_COLUMNS, cf.SESSION_COLUMNS[1:], strict=False),
              *zip(cf.MINUTE_COLUMNS, cf.MINUTE_COLUMNS[1:], strict=False),
              *zip(cf.SUPPORT_COLUMNS, cf.SUPPORT_COLUMNS[1:], strict=False),
              *zip(cf.FAILURE_COLUMNS, cf.FAILURE_COLUMNS[1:], strict=False)]
    active_days = f"active_days_{cf.ACTIVE_DAYS_WINDOW}d"
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(cf.OUTPUT_COLUMNS), exact_match=True),
        # at most one row per customer of the snapshot's extract (fewer: signed up on S, cancelled before S)
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=param("max_rows")),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(cf.KEY_COLUMNS)),
        *_not_null(cf.OUTPUT_COLUMNS),
        *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=INT_TYPES) for c in ("customer_id", *ints)],
        *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=FLOAT_TYPES) for c in floats],
        gxe.ExpectColumnValuesToBeInSet(column="plan", value_set=list(PLANS)),
        gxe.ExpectColumnValuesToBeInSet(column="contract_type", value_set=list(CONTRACTS)),
        *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[0, 1]) for c in flags],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in (*counts, *cf.MINUTE_COLUMNS)],
        # a customer's usage over a window is part of its usage over a longer one
        *[gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=long, column_B=short, or_equal=True)
          for short, long in nested],
        gxe.ExpectColumnValuesToBeBetween(column="tenure_days", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="monthly_fee", min_value=0, max_value=MAX_FEE, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="fee_change_28d", min_value=FEE_CHANGE_BOUNDS[0],
                                          max_value=FEE_CHANGE_BOUNDS[1]),
        gxe.ExpectColumnValuesToBeBetween(column=active_days, min_value=0, max_value=cf.ACTIVE_DAYS_WINDOW),
        gxe.ExpectColumnValuesToBeBetween(column="days_since_last_use", min_value=1, max_value=cf.NO_USE_DAYS),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=cap) for c, cap in cf.TREND_CAP.items()],
    ]


SUITES: dict[str, Callable[[], list]] = {
    "churn_customers": _raw_customers,
    "churn_usage_events": _raw_usage_events,
    "churn_support_contacts": _raw_support_contacts,
    "churn_payment_failures": _raw_payment_failures,
    "churn_cancellations": _raw_cancellations,
    "churn_labels": _raw_labels,
    "churn_features": _features,
}


def _day_bounds(day: dt.date, _root: Path, _overrides: dict[str, Any]) -> dict[str, Any]:
    from include.validation.datasets import day_bounds

    return day_bounds(day)


def _no_parameters(_day: dt.date, _root: Path, _overrides: dict[str, Any]) -> dict[str, Any]:
    return {}


def _features_parameters(day: dt.date, root: Path, _overrides: dict[str, Any]) -> dict[str, Any]:
    extract = partition_file("raw", cf.RAW_DATASETS["customers"], day, root)
    return {"max_rows": parquet_row_count(extract)}


def _landed(source: str) -> Callable[[dt.date, Path | None, Path], Path]:
    return lambda day, _staging, root: landing_file(source, day, root)


def _staged(day: dt.date, staging: Path | None, _root: Path) -> Path:
    if staging is None:
        raise ValueError("churn features are validated in their staging folder: pass staging")
    return staged_partition_file(staging, day)


def checks() -> dict[str, Any]:
    """The :class:`include.validation.datasets.DatasetCheck` of each suite: where a day's file is
    and its parameters (raw files are judged in landing/, before they are published)."""
    from include.validation.datasets import DatasetCheck

    events = {"usage_events", "support_contacts", "payment_failures"}
    out = {}
    for table, dataset in cf.RAW_DATASETS.items():
        out[dataset] = DatasetCheck(dataset, "landing", dataset, _landed(dataset),
                                    _day_bounds if table in events else _no_parameters)
    out["churn_features"] = DatasetCheck("churn_features", "features", cf.FEATURE_SET, _staged, _features_parameters)
    return out


def register() -> None:
    """Make the churn suites and checks known to the platform's checkpoint runner (idempotent)."""
    from include.validation.datasets import register as register_datasets

    register_datasets(OWNER, SUITES, checks())

"""Expectations the Great Expectations library does not ship, for the plausibility checks of a feed.

GX 1.x has no expectation for "how much of the day's traffic one value, or one hour, holds": a
day whose timestamps all fell on midnight or whose ``terminal_id`` defaulted to 0 passes every
per-row check. :class:`ExpectColumnLargestShareToBeBetween` measures the largest share of the rows
that one value of a column holds, with datetime values first floored to a period (``per="h"``:
the busiest hour of the day). Pandas only, like every batch this project validates.

Importing this module registers the metric and the expectation with GX (its metaclasses do);
:mod:`include.validation.suites` imports it before building a suite that uses them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)

LARGEST_SHARE = "column.largest_share"


def largest_share(column, per: str | None = None) -> float:
    """The largest share of the non-null values of a pandas Series that one value holds, datetimes
    floored to ``per`` first; 0.0 when there is none. What the metric below computes on a batch, and
    what :mod:`include.validation.datasets` computes on recent partitions for the reference."""
    values = column.dropna()
    if values.empty:
        return 0.0
    if per:
        values = values.dt.floor(per)
    return float(values.value_counts(normalize=True).iloc[0])


class ColumnLargestShare(ColumnAggregateMetricProvider):
    """The largest share of the non-null rows that one value holds (after flooring datetimes to
    ``per``, a pandas frequency such as ``"h"``); 0.0 on an empty column."""

    metric_name = LARGEST_SHARE
    value_keys = ("per",)
    filter_column_isnull = True

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, per: str | None = None, **kwargs):
        return largest_share(column, per)


class ExpectColumnLargestShareToBeBetween(ColumnAggregateExpectation):
    """Expect the largest share of rows held by one value of the column (or, with ``per``, by one
    period of a datetime column: ``per="h"`` is the busiest hour) to lie in [min_value, max_value].

    The observed value is that share (0..1); bounds are usually suite parameters learnt from
    recent partitions."""

    per: str | None = None
    min_value: float | SuiteParameterDict | None = pydantic.Field(default=None)
    max_value: float | SuiteParameterDict | None = pydantic.Field(default=None)
    strict_min: bool = False
    strict_max: bool = False

    metric_dependencies: ClassVar[tuple[str, ...]] = (LARGEST_SHARE,)
    success_keys: ClassVar[tuple[str, ...]] = ("per", "min_value", "max_value", "strict_min", "strict_max")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "min_value", "max_value")

    def _validate(self, metrics: dict[str, Any], runtime_configuration: dict | None = None,
                  execution_engine=None):
        return self._validate_metric_value_between(
            metric_name=LARGEST_SHARE, metrics=metrics, runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )

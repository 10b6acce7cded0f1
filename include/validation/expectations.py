"""Expectations the Great Expectations library does not ship, for the plausibility checks of a feed.

GX 1.x has no expectation for "how much of the day's traffic one value, or one hour, holds": a
day whose timestamps all fell on midnight or whose ``terminal_id`` defaulted to 0 passes every
per-row check. :class:`ExpectColumnLargestShareToBeBetween` measures the largest share of the rows
that one value of a column holds, with datetime values first floored to a period (``per="h"``:
the busiest hour of the day). Nor has it one for "ids are assigned in time order":
:class:`ExpectShareOutOfOrderToBeBetween` measures the share of rows that, taken in the order of
one column (``order_by``), step back in another (``ordered``). Pandas only, like every batch this
project validates.

Importing this module registers the metric and the expectation with GX (its metaclasses do);
:mod:`include.validation.suites` imports it before building a suite that uses them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

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


SHARE_OUT_OF_ORDER = "table.share_out_of_order"


def share_out_of_order(frame, order_by: str, ordered: str) -> float:
    """The share of the rows of a pandas DataFrame whose ``ordered`` value is below the previous row's
    when the rows are taken in ``order_by`` order (ties and nulls step back nowhere); 0.0 when empty."""
    if len(frame) < 2:
        return 0.0
    values = frame.sort_values(order_by, kind="stable")[ordered]
    return float((values < values.shift()).sum() / len(frame))


class TableShareOutOfOrder(TableMetricProvider):
    metric_name = SHARE_OUT_OF_ORDER
    value_keys = ("order_by", "ordered")

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration):
        frame, _, _ = execution_engine.get_compute_domain(domain_kwargs=metric_domain_kwargs,
                                                          domain_type=MetricDomainTypes.TABLE)
        return share_out_of_order(frame, metric_value_kwargs["order_by"], metric_value_kwargs["ordered"])


class ExpectShareOutOfOrderToBeBetween(BatchExpectation):
    """Expect the share of rows that step back in ``ordered`` when taken in ``order_by`` order (ids
    assigned in time order: ``order_by="transaction_id", ordered="tx_datetime"``) to lie in
    [min_value, max_value]."""

    order_by: str
    ordered: str
    min_value: float | SuiteParameterDict | None = pydantic.Field(default=None)
    max_value: float | SuiteParameterDict | None = pydantic.Field(default=None)
    strict_min: bool = False
    strict_max: bool = False

    metric_dependencies: ClassVar[tuple[str, ...]] = (SHARE_OUT_OF_ORDER,)
    success_keys: ClassVar[tuple[str, ...]] = ("order_by", "ordered", "min_value", "max_value", "strict_min",
                                               "strict_max")
    args_keys: ClassVar[tuple[str, ...]] = ("order_by", "ordered", "min_value", "max_value")

    def _validate(self, metrics: dict[str, Any], runtime_configuration: dict | None = None,
                  execution_engine=None):
        return self._validate_metric_value_between(
            metric_name=SHARE_OUT_OF_ORDER, metrics=metrics, runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )

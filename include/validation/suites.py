"""Expectation suites, in code. Values that depend on the partition are suite parameters
(``{"$PARAMETER": name}``) filled in at run time by :mod:`include.validation.datasets`."""

from __future__ import annotations

from collections.abc import Callable

from include.pipelines.fraud.features.baseline import (
    CUSTOMER_WINDOWS,
    FEATURE_COLUMNS,
    OUTPUT_COLUMNS,
    TERMINAL_WINDOWS,
)
from include.pipelines.fraud.features.groups import GROUP_BOUNDS

INT_TYPES = ["int64", "Int64", "int32", "Int32"]
FLOAT_TYPES = ["float64", "Float64", "float32"]
# timestamps are validated as naive UTC (see checkpoints.utc_naive)
UTC_TIMESTAMP_TYPES = ["datetime64[us]", "datetime64[ns]", "datetime64[ms]"]

# The largest amount a card transaction may carry before we call the file corrupt.
MAX_AMOUNT = 100_000


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _stat(name: str) -> dict[str, str]:
    """The ``meta`` of a plausibility expectation: the statistic it bounds, in words, for the failure
    message (include/validation/checkpoints.py ``_failures``)."""
    return {"statistic": name}


# A replayed delivery repeats the content of its rows under new ids: the same card at the same
# terminal for the same amount in the same second.
CONTENT_KEY = ["tx_datetime", "customer_id", "terminal_id", "tx_amount"]


def _raw_transactions() -> list:
    import great_expectations.expectations as gxe

    from include.validation.expectations import ExpectColumnLargestShareToBeBetween as LargestShare
    from include.validation.expectations import ExpectShareOutOfOrderToBeBetween

    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"], exact_match=True
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=_param("min_rows"), max_value=_param("max_rows"),
            meta=_stat("rows of the day, against the median of the last published days (the band "
                       "transactions.rows of plausibility.yaml: widen it for a known quiet or busy day) and the "
                       "Variables batchml_min_daily_transactions / batchml_max_daily_transactions")),
        *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=INT_TYPES)
          for c in ("transaction_id", "customer_id", "terminal_id")],
        gxe.ExpectColumnValuesToBeInTypeList(column="tx_amount", type_list=FLOAT_TYPES),
        gxe.ExpectColumnValuesToBeInTypeList(column="tx_datetime", type_list=UTC_TIMESTAMP_TYPES),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c)
          for c in ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")],
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        gxe.ExpectColumnValuesToBeBetween(column="tx_amount", min_value=0, max_value=MAX_AMOUNT),
        gxe.ExpectColumnValuesToBeBetween(column="customer_id", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="terminal_id", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(
            column="tx_datetime", min_value=_param("day_start"), max_value=_param("day_end")
        ),
        # plausibility: bounds from include/validation/plausibility.yaml and the recent published days
        gxe.ExpectCompoundColumnsToBeUnique(column_list=CONTENT_KEY, mostly=_param("content_unique_mostly"),
                                            meta=_stat("rows repeating another row's content under a new id")),
        # ids never go back: after the last published id of the days before, before the next day's first
        gxe.ExpectColumnValuesToBeBetween(column="transaction_id", min_value=_param("min_transaction_id"),
                                          max_value=_param("max_transaction_id"),
                                          meta=_stat("transaction ids (>= 0, after the previous published "
                                                     "day's last id, before the next day's first)")),
        ExpectShareOutOfOrderToBeBetween(order_by="transaction_id", ordered="tx_datetime", min_value=0,
                                         max_value=_param("max_out_of_order_share"),
                                         meta=_stat("share of transactions earlier than the one of the id "
                                                    "before (ids are assigned in time order)")),
        LargestShare(column="tx_datetime", per="h", min_value=0, max_value=_param("max_busiest_hour_share"),
                     meta=_stat("share of the day's transactions in its busiest hour")),
        LargestShare(column="customer_id", min_value=0, max_value=_param("max_top_customer_share"),
                     meta=_stat("share of the day's transactions of its most active customer")),
        LargestShare(column="terminal_id", min_value=0, max_value=_param("max_top_terminal_share"),
                     meta=_stat("share of the day's transactions at its busiest terminal")),
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="customer_id", min_value=_param("min_distinct_customers"),
            max_value=_param("max_distinct_customers"), meta=_stat("distinct customers of the day")),
    ]


def _raw_labels() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["transaction_id", "tx_fraud", "tx_fraud_scenario"], exact_match=True
        ),
        # exactly one label per transaction of the labelled day, and no label for any other transaction
        gxe.ExpectTableRowCountToBeBetween(min_value=_param("expected_rows"), max_value=_param("expected_rows")),
        *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=INT_TYPES)
          for c in ("transaction_id", "tx_fraud", "tx_fraud_scenario")],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("transaction_id", "tx_fraud", "tx_fraud_scenario")],
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="transaction_id", min_value=_param("first_transaction_id"), max_value=_param("last_transaction_id")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="tx_fraud", value_set=[0, 1]),
        gxe.ExpectColumnValuesToBeInSet(column="tx_fraud_scenario", value_set=[0, 1, 2, 3]),
        # plausibility: a fraud has its scenario (1-3), a genuine transaction none (0)
        gxe.ExpectColumnPairValuesToBeInSet(column_A="tx_fraud", column_B="tx_fraud_scenario",
                                            value_pairs_set=[(0, 0), (1, 1), (1, 2), (1, 3)],
                                            meta=_stat("(tx_fraud, tx_fraud_scenario) pairs")),
        # the frauds of the day (a sum: an empty day has 0, where a mean has none), within the fraud-rate
        # band of the recent label days times the day's rows, widened by sampling noise
        gxe.ExpectColumnSumToBeBetween(column="tx_fraud", min_value=_param("min_frauds"),
                                       max_value=_param("max_frauds"),
                                       meta=_stat("frauds among the day's labels")),
    ]


def _features_baseline() -> list:
    import great_expectations.expectations as gxe

    counts = [f"customer_nb_tx_{n}d" for n in CUSTOMER_WINDOWS]
    terminal_counts = [f"terminal_nb_tx_{n}d" for n in TERMINAL_WINDOWS]
    risks = [f"terminal_risk_{n}d" for n in TERMINAL_WINDOWS]
    # amounts and their means: a NaN is caught as a null, an infinity or a corrupt mean only here
    amounts = ["tx_amount", *[f"customer_avg_amount_{n}d" for n in CUSTOMER_WINDOWS]]
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=OUTPUT_COLUMNS, exact_match=True),
        # one feature row per raw transaction of the day
        gxe.ExpectTableRowCountToBeBetween(min_value=_param("expected_rows"), max_value=_param("expected_rows")),
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ["transaction_id", *FEATURE_COLUMNS]],
        *[gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[0, 1])
          for c in ("tx_during_weekend", "tx_during_night")],
        # the current transaction is always inside its customer windows
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=1) for c in counts],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in terminal_counts],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1) for c in risks],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=MAX_AMOUNT) for c in amounts],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=low, max_value=high)
          for c, (low, high) in GROUP_BOUNDS.items() if c in FEATURE_COLUMNS],
        gxe.ExpectColumnValuesToBeBetween(
            column="tx_datetime", min_value=_param("day_start"), max_value=_param("day_end")
        ),
    ]


def _predictions() -> list:
    import great_expectations.expectations as gxe

    from include.scoring import PREDICTION_COLUMNS

    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=PREDICTION_COLUMNS, exact_match=True),
        # one prediction per feature row of the day
        gxe.ExpectTableRowCountToBeBetween(min_value=_param("expected_rows"), max_value=_param("expected_rows")),
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in PREDICTION_COLUMNS],
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="flagged", value_set=[0, 1]),
    ]


SUITES: dict[str, Callable[[], list]] = {
    "raw_transactions": _raw_transactions,
    "raw_labels": _raw_labels,
    "features_baseline": _features_baseline,
    "predictions": _predictions,
}


def build_suite(name: str):
    import great_expectations as gx

    if name not in SUITES:
        raise KeyError(f"no expectation suite named {name!r}; known: {sorted(SUITES)}")
    return gx.ExpectationSuite(name=name, expectations=SUITES[name]())

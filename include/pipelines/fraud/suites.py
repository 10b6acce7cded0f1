"""The fraud pipeline's expectation suites (its datasets in include/pipelines/fraud/spec.py), in code.
Values that depend on the partition are suite parameters filled in at run time by
:mod:`include.validation.datasets`. The platform's pieces (types, ``param``, ``stat``) are imported inside
each suite: include/validation/suites.py imports this module for its registry."""

from __future__ import annotations

from collections.abc import Callable

from include.pipelines.fraud.features.baseline import (
    CUSTOMER_WINDOWS,
    FEATURE_COLUMNS,
    OUTPUT_COLUMNS,
    TERMINAL_WINDOWS,
)
from include.pipelines.fraud.features.groups import GROUP_BOUNDS

# The largest amount a card transaction may carry before we call the file corrupt.
MAX_AMOUNT = 100_000


# A replayed delivery repeats the content of its rows under new ids: the same card at the same
# terminal for the same amount in the same second.
CONTENT_KEY = ["tx_datetime", "customer_id", "terminal_id", "tx_amount"]


def _raw_transactions() -> list:
    import great_expectations.expectations as gxe

    from include.validation.expectations import ExpectColumnLargestShareToBeBetween as LargestShare
    from include.validation.expectations import ExpectShareOutOfOrderToBeBetween
    from include.validation.suites import FLOAT_TYPES, INT_TYPES, UTC_TIMESTAMP_TYPES, param, stat

    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"], exact_match=True
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=param("min_rows"), max_value=param("max_rows"),
            meta=stat("rows of the day, against the median of the last published days (the band "
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
            column="tx_datetime", min_value=param("day_start"), max_value=param("day_end")
        ),
        # plausibility: bounds from include/pipelines/fraud/plausibility.yaml and the recent published days
        gxe.ExpectCompoundColumnsToBeUnique(column_list=CONTENT_KEY, mostly=param("content_unique_mostly"),
                                            meta=stat("rows repeating another row's content under a new id")),
        # ids never go back: after the last published id of the days before, before the next day's first
        gxe.ExpectColumnValuesToBeBetween(column="transaction_id", min_value=param("min_transaction_id"),
                                          max_value=param("max_transaction_id"),
                                          meta=stat("transaction ids (>= 0, after the previous published "
                                                     "day's last id, before the next day's first)")),
        ExpectShareOutOfOrderToBeBetween(order_by="transaction_id", ordered="tx_datetime", min_value=0,
                                         max_value=param("max_out_of_order_share"),
                                         meta=stat("share of transactions earlier than the one of the id "
                                                    "before (ids are assigned in time order)")),
        LargestShare(column="tx_datetime", per="h", min_value=0, max_value=param("max_busiest_hour_share"),
                     meta=stat("share of the day's transactions in its busiest hour")),
        LargestShare(column="customer_id", min_value=0, max_value=param("max_top_customer_share"),
                     meta=stat("share of the day's transactions of its most active customer")),
        LargestShare(column="terminal_id", min_value=0, max_value=param("max_top_terminal_share"),
                     meta=stat("share of the day's transactions at its busiest terminal")),
        gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="customer_id", min_value=param("min_distinct_customers"),
            max_value=param("max_distinct_customers"), meta=stat("distinct customers of the day")),
    ]


def _raw_labels() -> list:
    import great_expectations.expectations as gxe

    from include.validation.suites import INT_TYPES, param, stat

    return [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["transaction_id", "tx_fraud", "tx_fraud_scenario"], exact_match=True
        ),
        # exactly one label per transaction of the labelled day, and no label for any other transaction
        gxe.ExpectTableRowCountToBeBetween(min_value=param("expected_rows"), max_value=param("expected_rows")),
        *[gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=INT_TYPES)
          for c in ("transaction_id", "tx_fraud", "tx_fraud_scenario")],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("transaction_id", "tx_fraud", "tx_fraud_scenario")],
        gxe.ExpectColumnValuesToBeUnique(column="transaction_id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="transaction_id", min_value=param("first_transaction_id"), max_value=param("last_transaction_id")
        ),
        gxe.ExpectColumnValuesToBeInSet(column="tx_fraud", value_set=[0, 1]),
        gxe.ExpectColumnValuesToBeInSet(column="tx_fraud_scenario", value_set=[0, 1, 2, 3]),
        # plausibility: a fraud has its scenario (1-3), a genuine transaction none (0)
        gxe.ExpectColumnPairValuesToBeInSet(column_A="tx_fraud", column_B="tx_fraud_scenario",
                                            value_pairs_set=[(0, 0), (1, 1), (1, 2), (1, 3)],
                                            meta=stat("(tx_fraud, tx_fraud_scenario) pairs")),
        # the frauds of the day (a sum: an empty day has 0, where a mean has none), within the fraud-rate
        # band of the recent label days times the day's rows, widened by sampling noise
        gxe.ExpectColumnSumToBeBetween(column="tx_fraud", min_value=param("min_frauds"),
                                       max_value=param("max_frauds"),
                                       meta=stat("frauds among the day's labels")),
    ]


def _features_baseline() -> list:
    import great_expectations.expectations as gxe

    from include.validation.suites import param

    counts = [f"customer_nb_tx_{n}d" for n in CUSTOMER_WINDOWS]
    terminal_counts = [f"terminal_nb_tx_{n}d" for n in TERMINAL_WINDOWS]
    risks = [f"terminal_risk_{n}d" for n in TERMINAL_WINDOWS]
    # amounts and their means: a NaN is caught as a null, an infinity or a corrupt mean only here
    amounts = ["tx_amount", *[f"customer_avg_amount_{n}d" for n in CUSTOMER_WINDOWS]]
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=OUTPUT_COLUMNS, exact_match=True),
        # one feature row per raw transaction of the day
        gxe.ExpectTableRowCountToBeBetween(min_value=param("expected_rows"), max_value=param("expected_rows")),
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
            column="tx_datetime", min_value=param("day_start"), max_value=param("day_end")
        ),
    ]


def _predictions() -> list:
    import great_expectations.expectations as gxe

    from include.scoring import PREDICTION_COLUMNS
    from include.validation.suites import param

    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=PREDICTION_COLUMNS, exact_match=True),
        # one prediction per feature row of the day
        gxe.ExpectTableRowCountToBeBetween(min_value=param("expected_rows"), max_value=param("expected_rows")),
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

"""Feature groups beyond the handbook's baseline, each aimed at how fraud shows in this data.

Every group is point-in-time correct and reads no more history than the baseline does (37 days of
transactions, 30 days of label arrivals), so a feature day computed alone equals the same day of a
range. A group enters the model only if it paid on the rolling quality benchmark
(``bench/bench_quality.py``; figures in docs/benchmarks.md): ``MODEL_GROUPS`` lists those; the
others stay defined here so that the benchmark can measure them again when the data changes.

| group | columns | aimed at |
|---|---|---|
| amount_profile | the amount against the customer's own earlier amounts: ratio to the mean and z-score over 7 and 30 days, ratio to the maximum over 14 days | compromised cards, whose fraudulent amounts are 5x the card's usual (scenario 3) |
| recency | hours since the customer's previous transaction | bursts of card use |
| customer_terminal | the customer's earlier transactions at this terminal over 30 days | a first visit to a terminal |
| terminal_fraud | known frauds at the terminal over 7 and 30 days (labels already arrived), and the 7-day risk minus the 30-day risk | compromised terminals (scenario 2), and whether their risk is rising |
| hour_activity | the customer's earlier transactions in this hour of day over 30 days | use at an unusual hour |

"Earlier" means strictly before the transaction's second (a range frame ending at -1 s): the current
transaction never describes itself. A card with no earlier transaction in a window gets the neutral
value (ratio 1, z-score 0, count 0, the 30-day cap for the gap). Ratios and z-scores are clipped to
keep the network's inputs bounded; trees are indifferent to the clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, Window

DAY_SECONDS = 86_400
HISTORY_DAYS = 30          # the longest customer window of a group (the baseline's lookback holds it)
MAX_AMOUNT_DAYS = 14
RATIO_CLIP = 50.0
ZSCORE_CLIP = 20.0

GROUP_COLUMNS: dict[str, list[str]] = {
    "amount_profile": [
        *[f"customer_amount_{kind}_{n}d" for n in (7, 30) for kind in ("ratio", "zscore")],
        f"customer_amount_to_max_{MAX_AMOUNT_DAYS}d",
    ],
    "recency": ["customer_hours_since_previous"],
    "customer_terminal": [f"customer_terminal_nb_tx_{HISTORY_DAYS}d"],
    "terminal_fraud": ["terminal_nb_fraud_7d", "terminal_nb_fraud_30d", "terminal_risk_trend_7d_30d"],
    "hour_activity": [f"customer_nb_tx_same_hour_{HISTORY_DAYS}d"],
}
# What the features checkpoint accepts for each group column (include/validation/suites.py)
GROUP_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    **{f"customer_amount_ratio_{n}d": (0.0, RATIO_CLIP) for n in (7, 30)},
    **{f"customer_amount_zscore_{n}d": (-ZSCORE_CLIP, ZSCORE_CLIP) for n in (7, 30)},
    f"customer_amount_to_max_{MAX_AMOUNT_DAYS}d": (0.0, RATIO_CLIP),
    "customer_hours_since_previous": (0.0, HISTORY_DAYS * 24.0),
    f"customer_terminal_nb_tx_{HISTORY_DAYS}d": (0, None),
    "terminal_nb_fraud_7d": (0, None),
    "terminal_nb_fraud_30d": (0, None),
    "terminal_risk_trend_7d_30d": (-1.0, 1.0),
    f"customer_nb_tx_same_hour_{HISTORY_DAYS}d": (0, None),
}
# The groups the model uses, chosen on the rolling benchmark (docs/benchmarks.md, "Model quality").
MODEL_GROUPS: tuple[str, ...] = ("amount_profile",)


def column_names(groups: tuple[str, ...]) -> list[str]:
    """The output columns of ``groups``, in order."""
    return [c for g in groups for c in GROUP_COLUMNS[g]]


def delayed_terminal_window(days: int, label_delay_seconds: int) -> Window:
    """The terminal's transactions over (t - (delay + days), t - delay]: only labels known at t."""
    from pyspark.sql import Window

    return (Window.partitionBy("terminal_id").orderBy("ts")
            .rangeBetween(-label_delay_seconds - days * DAY_SECONDS + 1, -label_delay_seconds))


def group_columns(group: str, label_delay_seconds: int) -> list[Column]:
    """The Spark columns of ``group`` over a frame with customer_id, terminal_id, tx_datetime, ``ts``
    (epoch seconds), transaction_id, tx_amount and tx_fraud (null where the label has not arrived)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if group not in GROUP_COLUMNS:
        raise ValueError(f"unknown feature group {group!r}; known: {sorted(GROUP_COLUMNS)}")

    def earlier(days: int, *keys: str | Column) -> Window:
        return Window.partitionBy(*keys).orderBy("ts").rangeBetween(-days * DAY_SECONDS + 1, -1)

    amount = F.col("tx_amount")
    if group == "amount_profile":
        cols = []
        for n in (7, 30):
            w = earlier(n, "customer_id")
            mean, std = F.avg(amount).over(w), F.stddev_samp(amount).over(w)
            ratio = F.when(mean > 0, amount / mean).otherwise(F.lit(1.0))
            zscore = F.when(std > 0, (amount - mean) / std).otherwise(F.lit(0.0))
            cols += [_clip(ratio, 0.0, RATIO_CLIP).alias(f"customer_amount_ratio_{n}d"),
                     _clip(zscore, -ZSCORE_CLIP, ZSCORE_CLIP).alias(f"customer_amount_zscore_{n}d")]
        top = F.max(amount).over(earlier(MAX_AMOUNT_DAYS, "customer_id"))
        to_max = F.when(top > 0, amount / top).otherwise(F.lit(1.0))
        return [*cols, _clip(to_max, 0.0, RATIO_CLIP).alias(f"customer_amount_to_max_{MAX_AMOUNT_DAYS}d")]
    if group == "recency":
        previous = F.lag("ts").over(Window.partitionBy("customer_id").orderBy("ts", "transaction_id"))
        hours = (F.col("ts") - previous) / 3600.0
        cap = float(HISTORY_DAYS * 24)
        return [F.least(F.coalesce(hours, F.lit(cap)), F.lit(cap)).alias("customer_hours_since_previous")]
    if group == "customer_terminal":
        w = earlier(HISTORY_DAYS, "customer_id", "terminal_id")
        return [F.count(F.lit(1)).over(w).alias(f"customer_terminal_nb_tx_{HISTORY_DAYS}d")]
    if group == "terminal_fraud":
        risks, cols = {}, []
        for n in (7, 30):
            w = delayed_terminal_window(n, label_delay_seconds)
            frauds = F.coalesce(F.sum("tx_fraud").over(w), F.lit(0))
            nb = F.count(F.lit(1)).over(w)
            risks[n] = F.when(nb > 0, frauds / nb).otherwise(F.lit(0.0))
            cols.append(frauds.cast("long").alias(f"terminal_nb_fraud_{n}d"))
        return [*cols, (risks[7] - risks[30]).alias("terminal_risk_trend_7d_30d")]
    # hour_activity
    w = earlier(HISTORY_DAYS, "customer_id", F.hour("tx_datetime"))
    return [F.count(F.lit(1)).over(w).alias(f"customer_nb_tx_same_hour_{HISTORY_DAYS}d")]


def _clip(col: Column, low: float, high: float) -> Column:
    from pyspark.sql import functions as F

    return F.least(F.greatest(col, F.lit(low)), F.lit(high))

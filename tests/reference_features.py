"""An independent, brute-force pandas computation of the features (the test oracle).

It follows the text of shared/SIMULATOR.md (baseline) and the table of include/pipelines/fraud/features/groups.py
(every group, used by the model or not) directly, one transaction at a time, sharing no code with
the Spark job beyond the column names.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

DAY = 86_400
DELAY = 7


def reference_features(transactions: pd.DataFrame, labels: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """``transactions``: all history; ``labels``: (transaction_id, tx_fraud) known at the end of ``days``."""
    columns = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    tx = transactions[columns].merge(labels[["transaction_id", "tx_fraud"]], on="transaction_id", how="left")
    tx["t"] = tx["tx_datetime"].astype("int64") // 1_000_000  # microseconds -> seconds
    by_customer = {k: g for k, g in tx.groupby("customer_id")}
    by_terminal = {k: g for k, g in tx.groupby("terminal_id")}
    targets = tx[tx["tx_datetime"].dt.date.isin(days)]
    rows = []
    for row in targets.itertuples():
        ts = row.tx_datetime
        out = {
            "transaction_id": row.transaction_id,
            "tx_amount": row.tx_amount,
            "tx_during_weekend": int(ts.weekday() >= 5),
            "tx_during_night": int(ts.hour <= 6),
        }
        c = by_customer[row.customer_id]
        for n in (1, 7, 30):
            inside = c[(c["t"] > row.t - n * DAY) & (c["t"] <= row.t)]
            out[f"customer_nb_tx_{n}d"] = len(inside)
            out[f"customer_avg_amount_{n}d"] = inside["tx_amount"].mean()
        term = by_terminal[row.terminal_id]
        for n in (1, 7, 30):
            inside = term[(term["t"] > row.t - (DELAY + n) * DAY) & (term["t"] <= row.t - DELAY * DAY)]
            out[f"terminal_nb_tx_{n}d"] = len(inside)
            frauds = np.nansum(inside["tx_fraud"].to_numpy(dtype=float))
            out[f"terminal_risk_{n}d"] = frauds / len(inside) if len(inside) else 0.0
            out[f"terminal_nb_fraud_{n}d"] = int(frauds)
        out["terminal_risk_trend_7d_30d"] = out["terminal_risk_7d"] - out["terminal_risk_30d"]
        out.update(_customer_history(row, c))
        rows.append(out)
    return pd.DataFrame(rows).sort_values("transaction_id", ignore_index=True)


def _customer_history(row, c: pd.DataFrame) -> dict:
    """The groups over the customer's transactions strictly before this one's second."""
    out = {}
    amount = row.tx_amount
    for n in (7, 30):
        earlier = c.loc[(c["t"] > row.t - n * DAY) & (c["t"] < row.t), "tx_amount"]
        mean = earlier.mean() if len(earlier) else np.nan
        std = earlier.std(ddof=1) if len(earlier) > 1 else np.nan
        out[f"customer_amount_ratio_{n}d"] = float(np.clip(amount / mean, 0, 50)) if mean > 0 else 1.0
        out[f"customer_amount_zscore_{n}d"] = float(np.clip((amount - mean) / std, -20, 20)) if std > 0 else 0.0
    top = c.loc[(c["t"] > row.t - 14 * DAY) & (c["t"] < row.t), "tx_amount"].max()
    out["customer_amount_to_max_14d"] = float(np.clip(amount / top, 0, 50)) if top > 0 else 1.0
    before = c[(c["t"] < row.t) | ((c["t"] == row.t) & (c["transaction_id"] < row.transaction_id))]
    gap_hours = (row.t - before["t"].max()) / 3600 if len(before) else np.inf
    out["customer_hours_since_previous"] = min(gap_hours, 30 * 24.0)
    month = c[(c["t"] > row.t - 30 * DAY) & (c["t"] < row.t)]
    out["customer_terminal_nb_tx_30d"] = int((month["terminal_id"] == row.terminal_id).sum())
    hours = pd.to_datetime(month["t"], unit="s").dt.hour
    out["customer_nb_tx_same_hour_30d"] = int((hours == row.tx_datetime.hour).sum())
    return out

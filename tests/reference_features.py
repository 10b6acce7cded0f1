"""An independent, brute-force pandas computation of the baseline features (the test oracle).

It follows the text of shared/SIMULATOR.md directly, one transaction at a time, sharing no code
with the Spark job beyond the column names.
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
        rows.append(out)
    return pd.DataFrame(rows).sort_values("transaction_id", ignore_index=True)

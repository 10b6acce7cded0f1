"""Evaluation metrics of shared/SIMULATOR.md and the cost-based decision threshold.

All functions take plain arrays or frames and are independent of the model family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ThresholdChoice:
    """Flag a transaction when its score is >= ``threshold``."""

    threshold: float
    expected_cost: float
    flagged: int


def rounded(v: float) -> float:
    """Six decimals for summaries and tables; NaN stays NaN."""
    return float(round(v, 6)) if v == v else v


def card_precision_at_k(frame: pd.DataFrame, k: int = 100, score: str = "score", label: str = "tx_fraud",
                        card: str = "customer_id", day: str = "ds") -> float:
    """CP@k as SIMULATOR.md defines it (mean over test days, in day order).

    For each day: drop the cards already detected on earlier days, group the day's transactions by
    card (max score, max label), take the ``k`` highest-scored cards; CP@k(day) = frauds among them / k.
    Cards found fraudulent among a day's top k count as detected from the next day on.
    """
    if frame.empty:
        return float("nan")
    detected: set = set()
    per_day = []
    for _, today in frame.groupby(day, sort=True):
        today = today[~today[card].isin(detected)]
        cards = today.groupby(card).agg(score=(score, "max"), fraud=(label, "max"))
        # a stable sort on the card id under equal scores keeps the result reproducible
        top = cards.sort_values(["score"], ascending=False, kind="mergesort").head(k)
        per_day.append(top["fraud"].sum() / k)
        detected.update(top.index[top["fraud"] == 1])
    return float(np.mean(per_day))


def cost_minimising_threshold(y_true, scores, missed_fraud_cost: float, false_alarm_cost: float) -> ThresholdChoice:
    """The score threshold with the lowest total cost: missed frauds x cost + false alarms x cost.

    Every distinct score is a candidate (flag all transactions scoring at least that), plus flagging
    nothing (threshold just above the highest score). Ties in cost go to the higher threshold.
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    if len(y) == 0:
        raise ValueError("cannot choose a threshold on an empty validation set")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # the last index of each run of equal scores: flagging stops only between distinct scores
    last_of_run = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = (last_of_run + 1) - tp
    costs = (y.sum() - tp) * missed_fraud_cost + fp * false_alarm_cost
    nothing_cost = y.sum() * missed_fraud_cost
    best = int(np.argmin(costs))
    if costs[best] < nothing_cost:
        return ThresholdChoice(float(s_sorted[last_of_run[best]]), float(costs[best]), int(last_of_run[best] + 1))
    return ThresholdChoice(float(np.nextafter(s_sorted[0], np.inf)), float(nothing_cost), 0)


def evaluate(frame: pd.DataFrame, threshold: float, k: int = 100, missed_fraud_cost: float = 1000,
             false_alarm_cost: float = 50) -> dict[str, float]:
    """All reported metrics on an evaluation frame with columns score, tx_fraud, customer_id, ds."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, s = frame["tx_fraud"].to_numpy(dtype=int), frame["score"].to_numpy(dtype=float)
    both_classes = 0 < y.sum() < len(y)
    flagged = s >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    return {
        "auc_roc": float(roc_auc_score(y, s)) if both_classes else float("nan"),
        "average_precision": float(average_precision_score(y, s)) if both_classes else float("nan"),
        "card_precision": card_precision_at_k(frame, k),  # CP@k, k logged as a parameter
        "brier_score": float(brier_score_loss(y, s)) if len(y) else float("nan"),
        "precision_at_threshold": tp / (tp + fp) if tp + fp else 0.0,
        "recall_at_threshold": tp / (tp + fn) if tp + fn else 0.0,
        "expected_cost": float(fn * missed_fraud_cost + fp * false_alarm_cost),
        "n_transactions": int(len(y)),
        "n_frauds": int(y.sum()),
    }


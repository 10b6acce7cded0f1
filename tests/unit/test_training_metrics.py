"""CP@k, the cost-minimising threshold and the other metrics against hand-computed values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from include.training.metrics import card_precision_at_k, cost_minimising_threshold, evaluate

D1, D2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)


def _tx(rows):
    return pd.DataFrame(rows, columns=["ds", "customer_id", "score", "tx_fraud"])


def test_card_precision_hand_computed():
    frame = _tx([
        # day 1, cards grouped by max score / max label: A (0.9, fraud), B (0.8, no), C (0.7, fraud), D (0.1, no)
        (D1, "A", 0.9, 1), (D1, "A", 0.2, 0), (D1, "B", 0.8, 0), (D1, "C", 0.3, 0), (D1, "C", 0.7, 1),
        (D1, "D", 0.1, 0),
        # day 2: A was detected on day 1 and is dropped; C was not in day 1's top 2, so it stays
        (D2, "A", 0.99, 1), (D2, "C", 0.95, 1), (D2, "B", 0.5, 0), (D2, "E", 0.6, 1),
    ])
    # day 1 top 2: A (fraud), B -> 1/2; A detected. Day 2 without A: C (0.95, fraud), E (0.6, fraud) -> 2/2
    assert card_precision_at_k(frame, k=2) == pytest.approx((0.5 + 1.0) / 2)
    # k larger than the number of cards, still divided by k: day 1 takes all four cards, A and C are
    # frauds (2/10) and both are detected; day 2 keeps B and E, one fraud (1/10)
    assert card_precision_at_k(frame, k=10) == pytest.approx((2 / 10 + 1 / 10) / 2)


def test_card_precision_empty_is_nan():
    assert np.isnan(card_precision_at_k(_tx([]), k=100))


def test_cost_threshold_hand_computed():
    # scores descending: 0.9 F, 0.8 G, 0.7 F, 0.4 G, 0.2 F, 0.1 G; costs: missed 100, false alarm 10
    y = [1, 0, 1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.4, 0.2, 0.1]
    # flag >= 0.9: FN 2, FP 0 -> 200; >= 0.8: 2,1 -> 210; >= 0.7: 1,1 -> 110; >= 0.4: 1,2 -> 120;
    # >= 0.2: 0,2 -> 20; >= 0.1: 0,3 -> 30; nothing: 300
    choice = cost_minimising_threshold(y, s, missed_fraud_cost=100, false_alarm_cost=10)
    assert (choice.threshold, choice.expected_cost, choice.flagged) == (0.2, 20.0, 5)


def test_cost_threshold_flags_nothing_when_alarms_cost_more():
    choice = cost_minimising_threshold([1, 0, 0, 0], [0.1, 0.9, 0.8, 0.7], missed_fraud_cost=10, false_alarm_cost=50)
    assert choice.flagged == 0 and choice.expected_cost == 10 and choice.threshold > 0.9


def test_cost_threshold_keeps_ties_together():
    # two transactions share score 0.5: a threshold cannot split them
    choice = cost_minimising_threshold([1, 0, 1], [0.5, 0.5, 0.1], missed_fraud_cost=100, false_alarm_cost=1)
    assert choice.threshold == 0.1 and choice.flagged == 3 and choice.expected_cost == 1


def test_cost_threshold_rejects_empty():
    with pytest.raises(ValueError, match="empty validation set"):
        cost_minimising_threshold([], [], 1000, 50)


def test_evaluate_matches_sklearn():
    rng = np.random.default_rng(3)
    n = 2_000
    y = (rng.random(n) < 0.05).astype(int)
    s = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
    frame = pd.DataFrame({"ds": [D1] * (n // 2) + [D2] * (n // 2), "customer_id": rng.integers(0, 500, n),
                          "score": s, "tx_fraud": y})
    m = evaluate(frame, threshold=0.6, k=100, missed_fraud_cost=1000, false_alarm_cost=50)
    assert m["auc_roc"] == pytest.approx(roc_auc_score(y, s))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s))
    assert m["brier_score"] == pytest.approx(brier_score_loss(y, s))
    flagged = s >= 0.6
    assert m["precision_at_threshold"] == pytest.approx((flagged & (y == 1)).sum() / flagged.sum())
    assert m["recall_at_threshold"] == pytest.approx((flagged & (y == 1)).sum() / y.sum())
    assert m["expected_cost"] == 1000 * (~flagged & (y == 1)).sum() + 50 * (flagged & (y == 0)).sum()
    assert m["n_frauds"] == y.sum()


def test_constant_scores_give_the_protocol_baseline():
    rng = np.random.default_rng(0)
    y = (rng.random(5_000) < 0.01).astype(int)
    frame = pd.DataFrame({"ds": D1, "customer_id": np.arange(5_000), "score": 0.5, "tx_fraud": y})
    m = evaluate(frame, threshold=0.5)
    assert m["auc_roc"] == pytest.approx(0.5)
    assert m["average_precision"] == pytest.approx(y.mean())

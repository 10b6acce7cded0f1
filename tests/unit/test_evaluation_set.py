"""The handbook's evaluation set (shared/SIMULATOR.md), on a hand-built case: which test transactions
are kept once the cards already known to be compromised are removed."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from include.training.dataset import LABEL, evaluation_rows
from include.training.windows import Block

D = dt.date(2026, 1, 1)


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n - 1)


# train on Jan 10..16, a 7-day gap (the label delay), test on Jan 24..30
BLOCK = Block(train_start=day(10), train_end=day(16), test_start=day(24), test_end=day(30))
# card -> the day of its fraud (None: never)
FRAUD_DAY = {
    "before_training": day(5),  # a fraud before the block's training window: not known, the card stays
    "in_training": day(12),  # known from the start of the test
    "in_gap": day(18),  # label known on test day d once Jan 18 <= d - 8, i.e. from Jan 26
    "in_test": day(25),  # known only from Feb 2: stays for the whole test
    "honest": None,
}


def examples() -> pd.DataFrame:
    rows = []
    for card, (name, fraud_day) in enumerate(FRAUD_DAY.items()):
        for n in range(1, 31):
            rows.append({"customer_id": card, "card": name, "ds": day(n), LABEL: int(day(n) == fraud_day)})
    return pd.DataFrame(rows)


def kept_days(frame: pd.DataFrame) -> dict[str, list[int]]:
    return {card: sorted(d.day for d in frame.loc[frame["card"] == card, "ds"]) for card in FRAUD_DAY}


def test_known_cards_follow_the_handbook_rule():
    kept = kept_days(evaluation_rows(examples(), BLOCK, label_delay=7))
    test_days = list(range(24, 31))
    assert kept == {
        "before_training": test_days,
        "in_training": [],
        "in_gap": [24, 25],
        "in_test": test_days,
        "honest": test_days,
    }


def test_the_test_set_does_not_depend_on_how_far_back_the_examples_reach():
    """The tuning folds make the loaded examples start earlier than the block's training window; the
    evaluation set must be the same as with the block's own days only (the bug: it dropped cards whose
    fraud came before the training window, so it changed with the number of folds)."""
    full = examples()
    own_days_only = full[full["ds"] >= BLOCK.train_start]
    assert evaluation_rows(full, BLOCK, 7).equals(evaluation_rows(own_days_only, BLOCK, 7))

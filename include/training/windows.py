"""Training, gap and test windows of the evaluation protocol (shared/SIMULATOR.md), as dates.

On day T the newest labelled transaction day is T - label delay. The evaluation block ends there;
prequential tuning folds are the same block shifted back one test length at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from include.config import LABEL_DELAY_DAYS
from include.storage import as_date, day_range
from include.training.config import WindowConfig


@dataclass(frozen=True)
class Block:
    """Train on [train_start, train_end], skip the gap, test on [test_start, test_end] (inclusive)."""

    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date

    @classmethod
    def ending(cls, test_end: dt.date, w: WindowConfig) -> Block:
        test_start = test_end - dt.timedelta(days=w.test_days - 1)
        train_end = test_start - dt.timedelta(days=w.gap_days + 1)
        return cls(train_end - dt.timedelta(days=w.train_days - 1), train_end, test_start, test_end)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> Block:
        return cls(**{k: dt.date.fromisoformat(v) for k, v in raw.items()})


@dataclass(frozen=True)
class TrainingPlan:
    as_of: dt.date
    evaluation: Block
    folds: tuple[Block, ...]  # newest first

    @property
    def first_day(self) -> dt.date:
        return min(b.train_start for b in (self.evaluation, *self.folds))

    @property
    def last_labelled_day(self) -> dt.date:
        return self.evaluation.test_end

    def days(self) -> list[dt.date]:
        return day_range(self.first_day, self.last_labelled_day)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "evaluation": self.evaluation.as_dict(),
                "folds": [f.as_dict() for f in self.folds]}


def plan_training(as_of: str | dt.date, w: WindowConfig, label_delay: int = LABEL_DELAY_DAYS) -> TrainingPlan:
    """The windows of a training run on day ``as_of``: no label newer than ``as_of - label_delay`` is used."""
    as_of = as_date(as_of)
    last = as_of - dt.timedelta(days=label_delay)
    folds = tuple(Block.ending(last - dt.timedelta(days=k * w.test_days), w) for k in range(1, w.folds + 1))
    return TrainingPlan(as_of, Block.ending(last, w), folds)

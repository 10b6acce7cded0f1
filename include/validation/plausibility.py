"""Plausibility bounds of the raw feed (include/validation/plausibility.yaml, or the file named by
BATCHML_PLAUSIBILITY_CONFIG) as a schema, and the arithmetic that turns a recent reference into a
day's bounds. The suite parameters themselves are computed in :mod:`include.validation.datasets`.

A bound on a share of the day's rows (the fraud rate, the busiest hour's share...) is a band around
the reference learnt from recent days, clipped to absolute bounds, then widened by the sampling noise
of the day's row count: the count of a share ``p`` of ``n`` rows is binomial, and a bound is only
broken when chance alone would break it with probability below ``false_alarm``. So small days do
not false-alarm, and large days are held tight.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from include.schema import STRICT, Fraction, Invalid, read_yaml, validate_config

DEFAULT_PATH = Path(__file__).with_name("plausibility.yaml")
ENV_VAR = "BATCHML_PLAUSIBILITY_CONFIG"

Factor = Annotated[float, Field(gt=0)]


class Band(BaseModel):
    """Relative factors of the recent reference: [low x reference, high x reference]."""

    model_config = STRICT

    low: Factor | None = None  # None: no lower bound
    high: Factor | None = None  # None: no upper bound

    @model_validator(mode="after")
    def _around_the_reference(self) -> Band:
        if self.low is not None and self.low > 1:
            raise Invalid(f"'low' ({self.low}) must be <= 1: the reference itself must pass", show_value=False)
        if self.high is not None and self.high < 1:
            raise Invalid(f"'high' ({self.high}) must be >= 1: the reference itself must pass", show_value=False)
        return self


class ShareBand(Band):
    """A share of the day's rows: the relative band, inside the absolute bounds [min, max]."""

    min: Fraction = 0.0
    max: Fraction = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> ShareBand:
        if self.min > self.max:
            raise Invalid(f"'min' ({self.min}) must be <= 'max' ({self.max})", show_value=False)
        return self


class TransactionsPlausibility(BaseModel):
    model_config = STRICT

    rows: Band = Band(low=0.5, high=2.0)
    max_duplicate_share: Fraction = 0.01
    max_out_of_order_share: Fraction = 0.01
    busiest_hour_share: ShareBand = ShareBand(high=2.5, max=0.5)
    top_customer_share: ShareBand = ShareBand(high=3.0, max=0.25)
    top_terminal_share: ShareBand = ShareBand(high=3.0, max=0.25)
    distinct_customers: Band = Band(low=0.5, high=2.0)


class LabelsPlausibility(BaseModel):
    model_config = STRICT

    fraud_rate: ShareBand = ShareBand(low=0.25, high=6.0, max=0.5)
    min_reference_frauds: Annotated[int, Field(ge=0)] = 20


class PlausibilityConfig(BaseModel):
    model_config = STRICT

    # at most a year: a window of 10^6 days ran dates out of range (OverflowError, retried)
    recent_days: Annotated[int, Field(ge=1, le=366)] = 7
    min_recent_days: Annotated[int, Field(ge=1, le=366)] = 3
    false_alarm: Annotated[float, Field(gt=0, lt=0.5)] = 1e-6
    transactions: TransactionsPlausibility = TransactionsPlausibility()
    labels: LabelsPlausibility = LabelsPlausibility()

    @model_validator(mode="after")
    def _enough_days(self) -> PlausibilityConfig:
        if self.min_recent_days > self.recent_days:
            raise Invalid(f"'min_recent_days' ({self.min_recent_days}) must be <= 'recent_days' "
                          f"({self.recent_days})", show_value=False)
        return self


def config_path() -> Path:
    return Path(os.environ.get(ENV_VAR, "").strip() or DEFAULT_PATH)


def load_plausibility(path: str | Path | None = None) -> PlausibilityConfig:
    """The plausibility bounds; ConfigError naming the file, the key, the value and the rule."""
    path = Path(path) if path else config_path()
    stat = path.stat() if path.is_file() else None
    return _load(str(path), stat.st_mtime_ns if stat else None)


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int | None) -> PlausibilityConfig:  # one parse per file version
    return validate_config(PlausibilityConfig, read_yaml(Path(path)), path)


def median_of(values: Sequence[float], minimum: int) -> float | None:
    """The median of ``values``, or None when there are fewer than ``minimum`` of them."""
    return statistics.median(values) if len(values) >= max(minimum, 1) else None


def band_of(reference: float | None, band: ShareBand) -> tuple[float, float]:
    """``band`` around ``reference`` inside its absolute bounds; the absolute bounds alone without a
    reference, or when the band lies outside them."""
    low, high = band.min, band.max
    if reference is not None:
        rel_low = max(low, reference * band.low) if band.low is not None else low
        rel_high = min(high, reference * band.high) if band.high is not None else high
        if rel_low <= rel_high:
            low, high = rel_low, rel_high
    return low, high


def count_bounds(n: int, reference: float | None, band: ShareBand, false_alarm: float) -> tuple[int, int]:
    """[min, max] count of ``n`` rows holding a share within :func:`band_of`, widened by sampling
    noise: the counts a binomial(n, bound) passes with probability ``false_alarm`` only."""
    from scipy.stats import binom

    low, high = band_of(reference, band)
    lowest = int(binom.ppf(false_alarm, n, low)) if n and low > 0 else 0
    highest = int(binom.isf(false_alarm, n, high)) if n and high < 1 else n
    return lowest, highest


def share_bounds(n: int | None, reference: float | None, band: ShareBand, false_alarm: float) -> tuple[float, float]:
    """:func:`count_bounds` as shares of ``n`` rows (the band itself when ``n`` is unknown), rounded
    outwards to 6 decimals for messages that read."""
    if n:
        lowest, highest = count_bounds(n, reference, band, false_alarm)
        low, high = lowest / n, highest / n
    else:
        low, high = band_of(reference, band)
    return math.floor(low * 1e6) / 1e6, min(1.0, math.ceil(high * 1e6) / 1e6)


def relative_bounds(reference: float | None, band: Band) -> dict[str, Any]:
    """``{"min": int, "max": int | None}`` of a count against the median of recent days; [0, no
    maximum] without a reference."""
    if reference is None:
        return {"min": 0, "max": None}
    return {"min": math.floor(reference * band.low) if band.low is not None else 0,
            "max": math.ceil(reference * band.high) if band.high is not None else None}

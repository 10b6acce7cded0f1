"""Plausibility bounds of a pipeline's raw feeds: the mechanism. A pipeline that has bounds names its
file and its schema in its spec (``plausibility``: ``config``, ``schema_ref``; include/spec.py), both in
its package (include/pipelines/<name>/plausibility.yaml and the schema's module beside it); the file named
by ``BATCHML_<PIPELINE>_PLAUSIBILITY_CONFIG`` (for the default pipeline also
``BATCHML_PLAUSIBILITY_CONFIG``) replaces it. This module holds what every such schema is built from
(:class:`Band`, :class:`ShareBand`, the shared keys of :class:`PlausibilityConfig`), the loader, and the
arithmetic that turns a recent reference into a day's bounds. The suite parameters themselves are
computed in :mod:`include.validation.datasets`.

A bound on a share of the day's rows (a label rate, the busiest hour's share...) is a band around
the reference learnt from recent days, clipped to absolute bounds, then widened by the sampling noise
of the day's row count: the count of a share ``p`` of ``n`` rows is binomial, and a bound is only
broken when chance alone would break it with probability below ``false_alarm``. So small days do
not false-alarm, and large days are held tight.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from include import pipelines
from include.config import ConfigError
from include.schema import STRICT, Fraction, Invalid, read_yaml, validate_config

Factor = Annotated[float, Field(gt=0)]
# the default pipeline's shipped file (include.pipelines.DEFAULT), when it has plausibility bounds
DEFAULT_PATH = pipelines.get().shipped_config("plausibility") if pipelines.get().plausibility else None


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


class PlausibilityConfig(BaseModel):
    """The keys every pipeline's plausibility file has; a pipeline's schema adds its feeds' sections."""

    model_config = STRICT

    # at most a year: a window of 10^6 days ran dates out of range (OverflowError, retried)
    recent_days: Annotated[int, Field(ge=1, le=366)] = 7
    min_recent_days: Annotated[int, Field(ge=1, le=366)] = 3
    false_alarm: Annotated[float, Field(gt=0, lt=0.5)] = 1e-6

    @model_validator(mode="after")
    def _enough_days(self) -> PlausibilityConfig:
        if self.min_recent_days > self.recent_days:
            raise Invalid(f"'min_recent_days' ({self.min_recent_days}) must be <= 'recent_days' "
                          f"({self.recent_days})", show_value=False)
        return self


def config_path(pipeline: str | None = None) -> Path:
    """The plausibility file of ``pipeline`` (None: the default pipeline): its environment variable's
    file, else its package's (include/spec.py ``config_file``)."""
    return pipelines.get(pipeline).config_file("plausibility")


def schema(pipeline: str | None = None) -> type[PlausibilityConfig]:
    """The schema class the spec of ``pipeline`` names; ConfigError when it is not a PlausibilityConfig."""
    from include.spec import resolve

    spec = pipelines.get(pipeline)
    if spec.plausibility is None:
        return PlausibilityConfig
    model = resolve(spec.plausibility.schema_ref)
    if not (isinstance(model, type) and issubclass(model, PlausibilityConfig)):
        raise ConfigError(f"pipeline spec {spec.name!r}: 'plausibility.schema_ref' ({spec.plausibility.schema_ref}) "
                          "must name a subclass of include.validation.plausibility.PlausibilityConfig")
    return model


def load_plausibility(path: str | Path | None = None, *, pipeline: str | None = None) -> PlausibilityConfig:
    """The plausibility bounds of ``pipeline`` (None: the default pipeline), read from ``path`` or
    :func:`config_path`, in the schema its spec names; ConfigError naming the file, the key, the value
    and the rule."""
    path = Path(path) if path else config_path(pipeline)
    stat = path.stat() if path.is_file() else None
    return _load(str(path), stat.st_mtime_ns if stat else None, schema(pipeline))


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int | None, model: type[PlausibilityConfig]) -> PlausibilityConfig:
    return validate_config(model, read_yaml(Path(path)), path)  # one parse per file version and schema


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

"""Drift statistics of one column against its stored reference: PSI and the two-sample KS test.

One function per statistic, each returning a small result with the verdict; empty input gives NaN
and "not drifted" (nothing to compare is not evidence of drift).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from include.drift.reference import ReferenceDistribution

# Replaces an empty bin's proportion, so that PSI stays finite (log of zero).
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class PSIResult:
    psi: float
    level: str  # "ok" | "warn" | "alert" | "no data"
    current_proportions: list[float]
    reference_proportions: list[float]
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KSResult:
    statistic: float
    p_value: float
    drifted: bool
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def psi_from_proportions(reference, current, epsilon: float = PSI_EPSILON) -> float:
    """sum((cur - ref) * ln(cur / ref)) over bins, empty bins counted as ``epsilon``."""
    ref = np.maximum(np.asarray(reference, dtype=float), epsilon)
    cur = np.maximum(np.asarray(current, dtype=float), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi(reference: ReferenceDistribution, values, warn: float = 0.1, alert: float = 0.2) -> PSIResult:
    """PSI of ``values`` in the reference's bins. Values of a category the reference never saw go to an
    extra bin whose reference proportion is empty (so they raise PSI); NaN values are ignored."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    ref = list(reference.proportions)
    if len(v) == 0:
        return PSIResult(float("nan"), "no data", [], ref, 0)
    counts = reference.bin_counts(v)
    if reference.kind == "categorical":
        counts = np.append(counts, len(v) - counts.sum())  # unseen categories
        ref = [*ref, 0.0]
    cur = (counts / len(v)).tolist()
    value = psi_from_proportions(ref, cur)
    level = "alert" if value >= alert else "warn" if value >= warn else "ok"
    return PSIResult(value, level, cur, ref, int(len(v)))


def ks(reference: ReferenceDistribution, values, p_threshold: float = 0.05, statistic_threshold: float = 0.1) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test of ``values`` against the reference sample (scipy's
    ``ks_2samp``, two-sided). Against a 5,000-value reference sample p < 0.05 as soon as D exceeds
    about 0.02, a difference no one would retrain for, so drift needs both p < ``p_threshold`` and
    a statistic above ``statistic_threshold``."""
    from scipy.stats import ks_2samp

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0 or len(reference.sample) == 0:
        return KSResult(float("nan"), float("nan"), False, int(len(v)))
    result = ks_2samp(np.asarray(reference.sample, dtype=float), v)
    stat, p = float(result.statistic), float(result.pvalue)
    return KSResult(stat, p, bool(p < p_threshold and stat > statistic_threshold and not math.isnan(stat)), int(len(v)))

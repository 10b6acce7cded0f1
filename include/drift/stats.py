"""Drift statistics of one column against its stored reference: PSI and the two-sample KS test.

One function per statistic, each returning a small result with the verdict; empty input gives NaN
and "not drifted" (nothing to compare is not evidence of drift). The thresholds have no defaults:
they come from the monitoring config (include/drift/config.py), and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from include.drift.reference import ReferenceDistribution

# Replaces an empty bin's proportion, so that PSI stays finite (log of zero).
PSI_EPSILON = 1e-4

# scipy's ks_2samp(method="auto") computes the exact p-value when neither sample has more values than
# this (MAX_AUTO_N in scipy/stats/_stats_py.py), and Smirnov's asymptotic one otherwise.
KS_EXACT_MAX_N = 10_000


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


def psi(reference: ReferenceDistribution, values, *, warn: float, alert: float) -> PSIResult:
    """PSI of ``values`` in the reference's bins, "warn" from ``warn`` and "alert" from ``alert`` up.
    Values of a category the reference never saw go to an extra bin whose reference proportion is
    empty (so they raise PSI); NaN values are ignored. The one-batch case of :class:`ColumnCounts`."""
    return ColumnCounts(reference, ks_test=False).add(values).psi(warn=warn, alert=alert)


def ks_statistic(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> float:
    """sup over x of |F_ref(x) - F_cur(x)| of two sorted, NaN-free, non-empty samples, computed from
    counts at the distinct reference values only, to the bit as scipy's ``ks_2samp`` computes it
    (:func:`ks_statistic_from_counts`)."""
    u = np.unique(reference_sorted)
    return ks_statistic_from_counts(reference_sorted, np.searchsorted(current_sorted, u, side="right"),
                                    np.searchsorted(current_sorted, u, side="left"), len(current_sorted))


def ks_statistic_from_counts(reference_sorted: np.ndarray, cur_le: np.ndarray, cur_lt: np.ndarray, n2: int) -> float:
    """The KS statistic from ``cur_le`` and ``cur_lt``, the numbers of current values at or below and
    strictly below each distinct reference value (``np.unique(reference_sorted)``), of ``n2`` values.
    The counts add up over batches of the day, so the day need never be held or sorted whole.

    scipy evaluates ``a/n1 - b/n2`` (a, b: the counts of each sample at or below x) at every value x of
    both samples. Between two consecutive reference values u[j-1] < u[j], ``a`` is constant, so
    - the largest ``a/n1 - b/n2`` is reached at a reference value (b is smallest at u[j-1]);
    - the largest ``b/n2 - a/n1`` is reached either at a reference value or at the last current value
      before u[j], where b = #{current < u[j]}: the left limit at u[j].
    Each candidate is one of scipy's own terms (or bounds them from above with the same floats, since
    division and subtraction round monotonically), so the maximum is the same float.
    """
    n1 = len(reference_sorted)
    _, ref_counts = np.unique(reference_sorted, return_counts=True)
    ref_le = np.cumsum(ref_counts)  # #{reference <= u[j]}
    ref_lt = ref_le - ref_counts  # #{reference < u[j]}
    ref_cdf_le, ref_cdf_lt = ref_le / n1, ref_lt / n1
    cur_cdf_le, cur_cdf_lt = np.asarray(cur_le) / n2, np.asarray(cur_lt) / n2
    above = float(np.max(ref_cdf_le - cur_cdf_le))  # >= 0: it is 1 - F_cur >= 0 at the last value
    below = float(max(np.max(cur_cdf_le - ref_cdf_le), np.max(cur_cdf_lt - ref_cdf_lt), 0.0))
    return below if below > above else above


def ks(reference: ReferenceDistribution, values, *, p_threshold: float, statistic_threshold: float) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test of ``values`` against the reference sample: the statistic and
    p-value of scipy's ``ks_2samp`` (two-sided, method "auto"); the one-batch case of
    :class:`ColumnCounts`, whose :meth:`ColumnCounts.ks` says how."""
    return ColumnCounts(reference, psi_bins=False, ks_test=True).add(values).ks(p_threshold=p_threshold,
                                                                   statistic_threshold=statistic_threshold)


class ColumnCounts:
    """What PSI and KS need of one column of a day, added up batch by batch: the counts in the
    reference's bins, and the counts of the day at or below / below each distinct value of the
    reference's sorted KS sample. Memory is the reference's size plus, up to ``KS_EXACT_MAX_N`` values,
    the day itself (scipy's exact p-value needs the values), never more: the statistics of a day of any
    size are those of the whole column, to the bit (counts are integers; the statistic is
    :func:`ks_statistic_from_counts`).

    ``psi_bins=False`` / ``ks_test=False`` leave one statistic out; ``ks_test=None`` counts for the KS
    test of numeric references only (on a 0/1 flag it says nothing PSI does not)."""

    def __init__(self, reference: ReferenceDistribution, *, psi_bins: bool = True, ks_test: bool | None = None):
        self.reference = reference
        self.n = 0
        self._bins = np.zeros(len(reference.categories) if reference.kind == "categorical"
                              else len(reference.edges) + 1) if psi_bins else None
        self._sample = np.sort(np.asarray(reference.sample, dtype=float))  # stored sorted since fit; older ones not
        self._ks = reference.kind == "numeric" if ks_test is None else ks_test
        self._distinct = np.unique(self._sample)
        self._le = np.zeros(self._distinct.size, dtype=np.int64)
        self._lt = np.zeros(self._distinct.size, dtype=np.int64)
        self._small: list[np.ndarray] | None = []  # the day's values while it may still need the exact test

    def add(self, values) -> ColumnCounts:
        """Count one batch of the day's values (NaN ignored); returns self."""
        v = np.asarray(values, dtype=float)
        nan = np.count_nonzero(np.isnan(v))
        self.n += int(v.size - nan)
        if self._bins is not None:
            self._bins += self.reference.bin_counts(v)  # ignores the NaN itself: no filtered copy of the batch
        if self._ks and self._sample.size:
            batch = np.sort(v)[: v.size - nan]  # NaN sort last
            self._le += np.searchsorted(batch, self._distinct, side="right")
            self._lt += np.searchsorted(batch, self._distinct, side="left")
            if self._small is not None:
                self._small = [*self._small, batch] if self.n <= KS_EXACT_MAX_N else None
        return self

    def psi(self, *, warn: float, alert: float) -> PSIResult:
        ref = list(self.reference.proportions)
        if self.n == 0:
            return PSIResult(float("nan"), "no data", [], ref, 0)
        counts = self._bins
        if self.reference.kind == "categorical":
            counts = np.append(counts, self.n - counts.sum())  # unseen categories
            ref = [*ref, 0.0]
        cur = (counts / self.n).tolist()
        value = psi_from_proportions(ref, cur)
        level = "alert" if value >= alert else "warn" if value >= warn else "ok"
        return PSIResult(value, level, cur, ref, self.n)

    def ks(self, *, p_threshold: float, statistic_threshold: float) -> KSResult:
        """Against a 5,000-value reference sample p < 0.05 as soon as D exceeds about 0.02, a difference
        no one would retrain for, so drift needs both p < ``p_threshold`` and a statistic above
        ``statistic_threshold``.

        Up to ``KS_EXACT_MAX_N`` values a side, scipy itself computes it (its exact p-value) on the
        values kept. For larger days the statistic comes from the counts at the reference values
        (:func:`ks_statistic_from_counts`), and the p-value from scipy's asymptotic ``kstwo``
        distribution, as ``ks_2samp`` does: the same numbers without sorting or holding the day."""
        from scipy.stats import ks_2samp, kstwo

        n1, n2 = self._sample.size, self.n
        if n1 == 0 or n2 == 0:
            return KSResult(float("nan"), float("nan"), False, int(n2))
        if max(n1, n2) <= KS_EXACT_MAX_N:
            result = ks_2samp(self._sample, np.concatenate(self._small))
            stat, p = float(result.statistic), float(result.pvalue)
        else:
            stat = ks_statistic_from_counts(self._sample, self._le, self._lt, n2)
            m, n = float(max(n1, n2)), float(min(n1, n2))
            p = float(np.clip(kstwo.sf(stat, np.round(m * n / (m + n))), 0.0, 1.0))
        return KSResult(stat, p, bool(p < p_threshold and stat > statistic_threshold and not math.isnan(stat)),
                        int(n2))

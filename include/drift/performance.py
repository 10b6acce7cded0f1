"""Live performance of a model: the cost model, the confidence-based performance estimate (CBPE, as
NannyML computes it) of a day whose labels have not arrived yet, and its error once they have (the
realised figures are those of include.training.metrics.evaluate).

CBPE reads a calibrated probability ``p`` as the chance that the transaction is a fraud. For a
decision threshold ``t`` (flag when score >= t) the expected confusion matrix of the day is

    E[TP] = sum(p, flagged)        E[FP] = sum(1 - p, flagged)
    E[FN] = sum(p, not flagged)    E[TN] = sum(1 - p, not flagged)

so expected precision = E[TP] / flagged, expected recall = E[TP] / (E[TP] + E[FN]) = E[TP] / sum(p), and
the expected cost = E[FN] x missed-fraud cost + E[FP] x false-alarm cost. The expected AUC ROC and
average precision are those of the day's scores with every transaction counted once as a fraud with
weight ``p`` and once as genuine with weight ``1 - p`` (NannyML's estimator for ROC AUC; the same
weighting gives AP). They are exact in expectation only for precision and recall's numerator and the
cost; the ratios and the AUC/AP are their plug-in (ratio of expectations) estimates.

The estimate holds only as far as the probabilities are calibrated and the relation between the
features and fraud (concept) has not changed: CBPE sees covariate shift, never concept drift. The
project's models are trained with class weighting (training.yaml ``class_weight``: a fraud weighs
sqrt(neg/pos) or neg/pos genuine transactions), which inflates their scores' odds by that weight:
the raw scores are *not* calibrated. :class:`Calibration` maps them to probabilities with an
isotonic fit on the version's own labelled predictions (the newest labelled days it scored); without
enough labelled frauds the estimate is left out, never computed from raw scores.

Only numpy is needed at import; scikit-learn is imported where used.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# the figures of a day, realised or estimated; the keys of the warehouse's performance_days columns
ESTIMATED = ("precision_at_threshold", "recall_at_threshold", "auc_roc", "average_precision", "expected_cost",
             "expected_frauds")


def cost(missed_frauds: float, false_alarms: float, missed_fraud_cost: float, false_alarm_cost: float) -> float:
    """The cost model: each missed fraud costs ``missed_fraud_cost``, each false alarm ``false_alarm_cost``
    (both from the monitoring configuration's ``performance`` section)."""
    if missed_fraud_cost < 0 or false_alarm_cost < 0:
        raise ValueError(f"costs must be >= 0, got missed fraud {missed_fraud_cost}, false alarm {false_alarm_cost}")
    return float(missed_frauds * missed_fraud_cost + false_alarms * false_alarm_cost)


def _finite(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


@dataclass(frozen=True)
class Calibration:
    """Scores to probabilities: an isotonic (monotone) fit of the labels on the scores of ``rows``
    labelled predictions with ``frauds`` frauds; ``identity`` when the scores are taken as they are
    (a model known to be calibrated, or a test)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    rows: int
    frauds: int
    identity: bool = False

    @classmethod
    def fit(cls, scores, labels) -> Calibration:
        from sklearn.isotonic import IsotonicRegression

        s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
        if len(s) != len(y) or len(s) == 0:
            raise ValueError(f"calibration needs as many labels as scores, got {len(s)} scores and {len(y)} labels")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
        return cls(tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)), len(s), int(y.sum()))

    @classmethod
    def none(cls) -> Calibration:
        return cls((), (), 0, 0, identity=True)

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        if self.identity:
            return np.clip(s, 0.0, 1.0)
        return np.interp(s, self.xs, self.ys)

    def describe(self) -> str:
        if self.identity:
            return "scores taken as probabilities (no calibration)"
        return f"isotonic on {self.rows:,} labelled predictions ({self.frauds:,} frauds) of the version"


def estimate(scores, threshold: float, missed_fraud_cost: float, false_alarm_cost: float,
             calibration: Calibration | None = None) -> dict[str, float | None]:
    """CBPE of one day from its scores alone (module docstring): expected precision and recall at
    ``threshold``, AUC ROC, average precision, cost and frauds. ``calibration`` maps the scores to
    probabilities first (None: they are taken as probabilities). A figure that is not defined (no
    flagged row for precision, no expected fraud for recall) is None."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.asarray(scores, dtype=float)
    p = (calibration or Calibration.none())(s)
    flagged = s >= threshold
    tp, fp = float(p[flagged].sum()), float((1 - p[flagged]).sum())
    fn = float(p[~flagged].sum())
    frauds = float(p.sum())
    out: dict[str, float | None] = {
        "precision_at_threshold": tp / int(flagged.sum()) if flagged.any() else None,
        "recall_at_threshold": tp / frauds if frauds > 0 else None,
        "expected_cost": cost(fn, fp, missed_fraud_cost, false_alarm_cost),
        "expected_frauds": frauds, "auc_roc": None, "average_precision": None,
    }
    if 0 < frauds < len(s):  # both classes expected: the weighted curves are defined
        both = np.r_[s, s]
        y = np.r_[np.ones(len(s)), np.zeros(len(s))]
        w = np.r_[p, 1 - p]
        out["auc_roc"] = _finite(roc_auc_score(y, both, sample_weight=w))
        out["average_precision"] = _finite(average_precision_score(y, both, sample_weight=w))
    return out


def errors(estimated: dict[str, Any], got: dict[str, Any]) -> dict[str, float | None]:
    """Estimate - realised (the figures of include.training.metrics.evaluate, ``n_frauds`` as the
    realised ``expected_frauds``), per figure of :data:`ESTIMATED` that both have."""
    got = {"expected_frauds": got.get("n_frauds"), **got}
    return {k: (None if estimated.get(k) is None or got.get(k) is None else _finite(float(estimated[k]) - float(got[k])))
            for k in ESTIMATED}


# performance_days.role: the version that scores the days (the decision), and the one scored beside it
# (include.registry.SHADOW, dags/shadow_scoring.py); the names of their registry aliases
CHAMPION_ROLE, SHADOW_ROLE = "champion", "shadow"
# the realised figures kept per day (the keys of include.drift.monitor.performance_verdict's result)
REALISED = ("n_labelled", "n_frauds", "auc_roc", "average_precision", "card_precision", "precision_at_threshold",
            "recall_at_threshold", "expected_cost")


def parts(day: dt.date, performance: dict[str, Any] | None, day_estimate: dict[str, Any] | None,
          label_delay_days: int, role: str = CHAMPION_ROLE) -> list[dict[str, Any]]:
    """What one monitoring run of ``day`` writes to the warehouse's ``performance_days`` (one row per
    label-arrival day ``ds``): the realised half of the row ``ds = day`` (the labels arriving today, of
    the day scored ``label_delay_days`` before) and the estimate half of the row ``ds = day +
    label_delay_days`` (today's scores, whose labels arrive then). A half without figures (no labels
    today, no estimate) clears its columns: a rerun replaces both halves. ``performance`` and
    ``day_estimate`` are the report's (include.drift.monitor.day_performance and day_estimate), so the
    warehouse rebuild derives the same rows from the lake's reports."""
    delay = dt.timedelta(days=label_delay_days)
    realised = None
    if performance:
        realised = {k: performance.get(k) for k in REALISED}
        realised["alerts"] = "; ".join(performance.get("alerts") or []) or None
        realised["verdict"] = performance.get("verdict")
    figures = None
    if day_estimate and "skipped" not in day_estimate:
        figures = {k: day_estimate.get(k) for k in ESTIMATED} | {
            "n_scored": day_estimate.get("n_scored"), "calibration": day_estimate.get("calibration")}
    return [
        {"part": "realised", "ds": day, "scored_day": day - delay, "role": role, "figures": realised,
         "model_version": (performance or {}).get("model_version"), "threshold": (performance or {}).get("threshold"),
         "reference": (performance or {}).get("expected")},
        {"part": "estimate", "ds": day + delay, "scored_day": day, "role": role, "figures": figures,
         "model_version": (day_estimate or {}).get("model_version"), "threshold": (day_estimate or {}).get("threshold"),
         "reference": (day_estimate or {}).get("expected"), "note": (day_estimate or {}).get("skipped")},
    ]


class RealisedCounts:
    """The figures of include.training.metrics.evaluate on one day of labelled predictions (AUC ROC,
    average precision, CP@k, precision and recall at ``threshold``, cost, counts), added up over
    batches in two passes, so that the day is never held whole:

    1. :meth:`add` every batch (scores, labels, cards): the counts at the threshold, the scores of the
       frauds (a fraction of a percent of a day), the cards with a fraud and the ``k`` best-scored cards
       so far (card max score; ties go to the smaller card id, as evaluate's stable sort does);
    2. :meth:`add_genuine` every batch again: for each genuine transaction, the frauds scored above and
       level with it (AUC ROC, ties half) and the genuine transactions at or above each distinct fraud
       score (the precision where recall steps, average precision as scikit-learn sums it).

    Memory: the frauds' scores and cards plus ``k`` cards. Same figures as evaluate to floating-point
    rounding (the sums are integers; only the order of the final float sums differs)."""

    def __init__(self, threshold: float, k: int = 100, missed_fraud_cost: float = 1000, false_alarm_cost: float = 50):
        self.threshold, self.k = threshold, k
        self.missed_fraud_cost, self.false_alarm_cost = missed_fraud_cost, false_alarm_cost
        self.n = self.tp = self.fp = self.fn = 0
        self._fraud_scores: list[np.ndarray] = []
        self._fraud_cards: set = set()
        self._top = None  # pandas Series card -> max score, the k best cards so far
        self._positives: np.ndarray | None = None  # the frauds' scores, sorted (after the first pass)
        self._pairs2 = 0  # 2 x sum over genuine of (#frauds above + half #frauds level)
        self._genuine_at: np.ndarray | None = None  # per distinct fraud score: genuine transactions at or above
        self._genuine_seen = 0

    def add(self, scores, labels, cards) -> RealisedCounts:
        import pandas as pd

        if self._positives is not None:
            raise RuntimeError("RealisedCounts.add after the second pass began")
        s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
        c = np.asarray(cards)
        flagged, fraud = s >= self.threshold, y == 1
        self.n += len(s)
        self.tp += int(np.count_nonzero(flagged & fraud))
        self.fp += int(np.count_nonzero(flagged & ~fraud))
        self.fn += int(np.count_nonzero(~flagged & fraud))
        self._fraud_scores.append(s[fraud])
        self._fraud_cards.update(c[fraud].tolist())
        if len(s):
            best = pd.Series(s, index=c).groupby(level=0).max()
            if self._top is not None:
                best = pd.concat([self._top, best]).groupby(level=0).max()  # sorted by card id
            self._top = best.sort_values(ascending=False, kind="mergesort").head(self.k)
        return self

    @property
    def frauds(self) -> int:
        return self.tp + self.fn

    def _fraud_sorted(self) -> np.ndarray:
        if self._positives is None:
            self._positives = np.sort(np.concatenate(self._fraud_scores)) if self._fraud_scores else np.zeros(0)
            self._fraud_scores = []
            self._distinct, counts = np.unique(self._positives, return_counts=True)
            self._at_or_above = np.cumsum(counts[::-1])[::-1]  # frauds at or above each distinct fraud score
            self._counts = counts
            self._genuine_at = np.zeros(self._distinct.size + 1, dtype=np.int64)
        return self._positives

    def add_genuine(self, scores, labels) -> RealisedCounts:
        """The second pass: the same batches, in any order (only the genuine transactions count)."""
        positives = self._fraud_sorted()
        s = np.asarray(scores, dtype=float)[np.asarray(labels, dtype=int) == 0]
        self._genuine_seen += len(s)
        right = np.searchsorted(positives, s, side="right")
        left = np.searchsorted(positives, s, side="left")
        self._pairs2 += int(np.sum(2 * len(positives) - right - left, dtype=np.int64))
        # a genuine transaction scored x is at or above the distinct fraud scores <= x
        self._genuine_at += np.bincount(np.searchsorted(self._distinct, s, side="right"),
                                        minlength=self._distinct.size + 1)
        return self

    def figures(self) -> dict[str, float]:
        """evaluate's keys (less the Brier score); NaN where evaluate has NaN."""
        positives = self._fraud_sorted()
        frauds, genuine = self.frauds, self.n - self.frauds
        if self._genuine_seen != genuine:
            raise RuntimeError(f"the second pass saw {self._genuine_seen} genuine transactions, the first {genuine}")
        auc = ap = card = float("nan")
        if 0 < frauds < self.n:
            auc = self._pairs2 / (2.0 * frauds * genuine)
            genuine_at = np.cumsum(self._genuine_at[::-1])[::-1][1:]  # at or above each distinct fraud score
            ap = float(np.sum(self._counts / len(positives) * self._at_or_above / (self._at_or_above + genuine_at)))
        if self.n:
            card = sum(1 for c in self._top.index if c in self._fraud_cards) / self.k
        flagged = self.tp + self.fp
        return {
            "auc_roc": float(auc), "average_precision": float(ap), "card_precision": float(card),
            "precision_at_threshold": self.tp / flagged if flagged else 0.0,
            "recall_at_threshold": self.tp / frauds if frauds else 0.0,
            "expected_cost": float(self.fn * self.missed_fraud_cost + self.fp * self.false_alarm_cost),
            "n_transactions": int(self.n), "n_frauds": int(frauds),
        }

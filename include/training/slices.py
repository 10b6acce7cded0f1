"""Evaluation per slice of the evaluation window: the bands of each slice the training configuration
declares (``slices.definitions``: a column or an expression over the evaluation frame, cut at edges),
with AUC, AP, the business metric and the number of frauds per band. The gate compares these rows of
the challenger and the champion (include/training/gate.py); the model card and the MLflow run show them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from include.training.dataset import LABEL
from include.training.metrics import evaluate, rounded

if TYPE_CHECKING:
    import pandas as pd

    from include.training.config import MetricsConfig, SlicesConfig, SliceSpec

MISSING = "missing"  # the band of rows whose slice value is null
# what a row keeps of include/training/metrics.py:evaluate
KEPT = ("n_transactions", "n_frauds", "auc_roc", "average_precision", "card_precision", "expected_cost",
        "recall_at_threshold", "precision_at_threshold")
SHORT = {"auc_roc": "auc", "average_precision": "ap", "card_precision": "cp", "expected_cost": "cost",
         "recall_at_threshold": "recall", "precision_at_threshold": "precision", "n_frauds": "positives",
         "n_transactions": "rows"}


class SliceError(ValueError):
    """A slice of the configuration cannot be computed on the evaluation frame (not retryable)."""


def slice_values(frame: pd.DataFrame, spec: SliceSpec, source: str = "") -> np.ndarray:
    """The values of ``spec`` on ``frame`` as floats; SliceError naming the slice, what it reads and
    the columns the frame has when a column is missing or the expression fails."""
    where = f" ({source})" if source else ""
    try:
        if spec.column is not None:
            if spec.column not in frame.columns:
                raise KeyError(spec.column)
            values = frame[spec.column]
        else:
            values = frame.eval(spec.expression, engine="python")
        return np.asarray(values, dtype=float)
    except (KeyError, NameError) as exc:  # pandas' UndefinedVariableError is a NameError
        missing = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise SliceError(f"slice {spec.name!r}{where} reads {spec.source!r}, which the evaluation frame lacks "
                         f"({missing}); it has {sorted(frame.columns)}") from None
    except (TypeError, ValueError, AttributeError, SyntaxError) as exc:
        raise SliceError(f"slice {spec.name!r}{where}: {spec.source!r} does not give numbers on the evaluation "
                         f"frame: {exc}") from None


def assign_bands(frame: pd.DataFrame, spec: SliceSpec, source: str = "") -> np.ndarray:
    """The band label of every row: band i holds edges[i-1] <= value < edges[i]; null values ``missing``."""
    values = slice_values(frame, spec, source)
    labels = np.array([*spec.bands, MISSING], dtype=object)
    index = np.searchsorted(np.asarray(spec.edges, dtype=float), values, side="right")
    index[np.isnan(values)] = len(spec.bands)
    return labels[index]


def evaluate_slices(scored: pd.DataFrame, threshold: float, slices: SlicesConfig, metrics: MetricsConfig,
                    source: str = "") -> list[dict[str, Any]]:
    """One row per (slice, band) of the configuration, in its order, with the metrics of ``KEPT`` for
    the rows of ``scored`` (columns score, tx_fraud, customer_id, ds and what the slices read) in the
    band, at the model's decision threshold. A band with no rows is reported with n_transactions 0;
    ``missing`` is reported only when some value is null. An undefined metric (AUC and AP of a band
    without frauds) is None: the rows travel as XCom, which is strict JSON."""
    rows = []
    for spec in slices.definitions:
        bands = assign_bands(scored, spec, source)
        names = [*spec.bands, *([MISSING] if (bands == MISSING).any() else [])]
        for band in names:
            m = evaluate(scored[bands == band], threshold, metrics.top_k, metrics.missed_fraud_cost,
                         metrics.false_alarm_cost)
            rows.append({"slice": spec.name, "band": band, **{k: _jsonable(m[k]) for k in KEPT}})
    return rows


def band_frauds(evaluation: pd.DataFrame, slices: SlicesConfig, source: str = "") -> dict[str, int]:
    """``{"<slice>=<band>": frauds}`` on the evaluation rows: computing it checks every slice on the
    real frame before any model trains (SliceError), and shows which bands the gate will judge."""
    out = {}
    for spec in slices.definitions:
        bands = assign_bands(evaluation, spec, source)
        for band in [*spec.bands, *([MISSING] if (bands == MISSING).any() else [])]:
            out[f"{spec.name}={band}"] = int(evaluation.loc[bands == band, LABEL].sum())
    return out


def mlflow_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``slice_<name>_<band>_<ap|auc|cost|...>`` for every defined (not None) value of every row."""
    return {f"slice_{r['slice']}_{r['band']}_{SHORT[k]}": float(r[k]) for r in rows for k in KEPT
            if r[k] is not None}


def _jsonable(v: float | int) -> float | int | None:
    return v if isinstance(v, int) else None if v != v else rounded(v)

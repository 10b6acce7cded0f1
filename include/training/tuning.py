"""Hyperparameter search with Optuna over prequential validation folds.

Each trial fits the family on every fold's training window and scores the fold's test window
(known-compromised cards removed); the objective is the mean of the primary metric over folds.

The budget is a number of trials, so the search is the same on any machine: the seeded TPE sampler
proposes the same parameters in the same order, and every fit runs with the configured fixed thread
count (include/training/models.py). A wall-clock safety cap stops a search that runs far too long
(checked between trials); when it fires the search is shorter than configured and depends on the
machine's speed, so it is logged as a warning and the caller records it on the run (:func:`capped`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training.config import DEFAULT_THREADS
from include.training.dataset import LABEL
from include.training.metrics import evaluate
from include.training.models import build_estimator, pinned_threads, sample_weights

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from include.training.config import MetricsConfig, ModelSpec, SearchSpace

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    number: int
    params: dict[str, Any]
    value: float
    fold_metrics: list[dict[str, float]]
    seconds: float
    validation: pd.DataFrame | None = field(default=None, repr=False)  # scored fold test rows


def suggest(trial: optuna.Trial, search: dict[str, SearchSpace]) -> dict[str, Any]:
    """Sample one value per searched parameter: {low, high[, log][, int]} or {choices: [...]}."""
    params = {}
    for name, space in search.items():
        if space.choices is not None:
            params[name] = trial.suggest_categorical(name, space.choices)
        elif space.integer:
            params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
        else:
            params[name] = trial.suggest_float(name, float(space.low), float(space.high), log=space.log)
    return params


def fit_and_score(spec: ModelSpec, params: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame, seed: int, *,
                  inputs: list[str] | None = None, threads: int = DEFAULT_THREADS):
    """Fit on the ``inputs`` columns of ``train`` (default :data:`MODEL_INPUTS`, the production set)
    with ``threads`` threads; return the estimator and ``test`` with a score column."""
    inputs = MODEL_INPUTS if inputs is None else inputs
    y = train[LABEL].to_numpy()
    with pinned_threads(threads):
        model = build_estimator(spec.family, params, seed, threads).fit(train[inputs], y,
                                                                        sample_weights(y, spec.class_weight))
    with pinned_threads(threads):  # again: the fit may have imported torch, whose pool is pinned only if loaded
        scored = test.assign(score=model.predict_proba(test[inputs]))
    return model, scored


def planned_trials(spec: ModelSpec, trials: int) -> int:
    """The trials a search runs when no safety cap stops it: one evaluates the configured parameters
    when nothing is searched."""
    return max(1, trials) if spec.search else 1


def capped(spec: ModelSpec, trials: int, results: list[TrialResult]) -> bool:
    """Whether the safety cap stopped the search before its ``trials``."""
    return len(results) < planned_trials(spec, trials)


def tune(spec: ModelSpec, folds: list[tuple[pd.DataFrame, pd.DataFrame]], metrics: MetricsConfig, *, trials: int,
         safety_timeout_seconds: float, seed: int, threads: int = DEFAULT_THREADS,
         on_trial: Callable[[TrialResult], None] | None = None, inputs: list[str] | None = None) -> list[TrialResult]:
    """Run ``trials`` trials on the ``inputs`` columns (default :data:`MODEL_INPUTS`), each fit with
    ``threads`` threads; returns every completed trial (the best has the highest ``value``). A search
    still running after ``safety_timeout_seconds`` stops after its current trial (the first trial always
    runs), with a warning."""
    import optuna
    import pandas as pd

    if not (trials >= 1 and safety_timeout_seconds > 0):  # training.yaml refuses these; a caller gets their names
        raise ValueError(f"{spec.name}: tuning needs trials >= 1 and safety_timeout_seconds > 0, got trials={trials}, "
                         f"safety_timeout_seconds={safety_timeout_seconds}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: list[TrialResult] = []

    def objective(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        params = {**spec.params, **suggest(trial, spec.search)}
        scored, per_fold = [], []
        for train, test in folds:
            _, s = fit_and_score(spec, params, train, test, seed, inputs=inputs, threads=threads)
            scored.append(s)
            per_fold.append(evaluate(s, threshold=0.5, k=metrics.top_k))
        value = float(np.nanmean([m[metrics.primary] for m in per_fold]))
        result = TrialResult(trial.number, params, value, per_fold, time.perf_counter() - t0)
        best = max(results, key=_rank, default=None)
        if best is None or _rank(result) > _rank(best):
            # only the best trial's validation scores are kept (they choose the decision threshold)
            result.validation = pd.concat([s[["ds", "customer_id", LABEL, "score"]] for s in scored],
                                          ignore_index=True)
            if best is not None:
                best.validation = None
        results.append(result)
        if on_trial:
            on_trial(result)
        log.info("%s trial %d: %s=%.4f %s (%.1fs)", spec.name, trial.number, metrics.primary, value,
                 params, result.seconds)
        return value

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    planned = planned_trials(spec, trials)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=1)  # the cap never leaves a search without a trial
    left = safety_timeout_seconds - (time.perf_counter() - t0)
    if planned > 1 and left > 0:
        study.optimize(objective, n_trials=planned - 1, timeout=left)
    if capped(spec, trials, results):
        log.warning("%s: tuning stopped by the safety cap (tuning.safety_timeout_seconds=%s) after %d of %d trials "
                    "and %.0f s: the best parameters depend on this machine's speed and load, so this run is not "
                    "reproducible; raise the cap, or lower the trials or the data", spec.name,
                    safety_timeout_seconds, len(results), planned, time.perf_counter() - t0)
    return results


def best_trial(results: list[TrialResult]) -> TrialResult:
    return max(results, key=_rank)


def _rank(r: TrialResult) -> tuple[float, int]:
    return (float(np.nan_to_num(r.value, nan=-1.0)), -r.number)  # ties go to the earlier trial

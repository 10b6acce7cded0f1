"""The tuning budget is a number of trials; the wall-clock limit is only a safety cap, and a search it
shortens is logged, recorded in the run's summary and shown on the model card. The families train
with the configured thread count, not the machine's."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training.config import parse_training_config
from include.training.dataset import LABEL
from include.training.model_card import render
from include.training.models import build_estimator
from include.training.tuning import best_trial, capped, planned_trials, tune
from tests.training_config import small_config_dict


def _frame(seed: int, rows: int = 600) -> pd.DataFrame:
    """Rows whose fraud label depends on two inputs, with the id columns the metrics need."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(MODEL_INPUTS)))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.8, size=rows) > 1.8).astype("int8")
    frame = pd.DataFrame(x, columns=MODEL_INPUTS)
    frame[LABEL] = y
    frame["customer_id"] = rng.integers(0, 50, rows)
    frame["ds"] = [dt.date(2026, 3, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 5, rows)]
    return frame


@pytest.fixture(scope="module")
def cfg():
    return parse_training_config(small_config_dict())


def test_the_budget_is_trials_not_seconds(cfg):
    spec = cfg.spec("logistic")
    folds = [(_frame(1), _frame(2))]
    results = tune(spec, folds, cfg.metrics, trials=3, safety_timeout_seconds=600, seed=cfg.seed, threads=1)
    assert [r.number for r in results] == [0, 1, 2] and not capped(spec, 3, results)
    again = tune(spec, folds, cfg.metrics, trials=3, safety_timeout_seconds=600, seed=cfg.seed, threads=2)
    # the same seeded proposals, and (one or two threads) the same scores
    assert [(r.params, r.value) for r in again] == [(r.params, r.value) for r in results]
    assert planned_trials(spec.model_copy(update={"search": {}}), 8) == 1  # nothing to search: one trial


def test_the_safety_cap_is_logged_and_shown_on_the_card(cfg, caplog):
    spec = cfg.spec("logistic")
    with caplog.at_level(logging.WARNING, logger="include.training.tuning"):
        results = tune(spec, [(_frame(1), _frame(2))], cfg.metrics, trials=4, safety_timeout_seconds=1e-6,
                       seed=cfg.seed, threads=1)
    assert len(results) == 1 and capped(spec, 4, results)  # the cap is checked between trials: one ran
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "logistic: tuning stopped by the safety cap" in warning[0]
    assert "after 1 of 4 trials" in warning[0] and "not reproducible" in warning[0]

    summary = {"model": "logistic", "family": "logistic_regression", "run_id": "r1", "as_of": "2026-04-19",
               "training_window": "a..b", "train_rows": 600, "evaluation_window": "c..d", "inputs_sha256": "0" * 64,
               "trials": len(results), "trials_planned": 4, "tuning_capped": True, "safety_timeout_seconds": 1e-6,
               "tuning_seconds": 0.1, "best_params": best_trial(results).params, "threshold": 0.5,
               "metrics": {"average_precision": 0.5}}
    card = render(summary, "3", "fraud-detector", (1000, 50))
    assert "**stopped by the safety cap** of 0 s after 1 of 4 trials: not reproducible" in card
    assert "safety cap" not in render({**summary, "tuning_capped": False}, "3", "fraud-detector", (1000, 50))
    old = {k: v for k, v in summary.items() if k not in ("tuning_capped", "trials_planned")}  # an older version
    assert "safety cap" not in render(old, "3", "fraud-detector", (1000, 50))


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_the_boosters_train_with_the_configured_threads_and_seed(cfg, family):
    spec = next(m for m in cfg.models if m.family == family)
    # a thread setting in the params (a copied notebook's n_jobs: -1) does not override the configured one
    got = build_estimator(family, {**spec.params, "n_jobs": -1}, seed=3, threads=3).model.get_params()
    assert (got["n_jobs"], got["random_state"]) == (3, 3)
    if family == "lightgbm":  # its documented recipe for stable results
        assert got["deterministic"] is True and got["force_row_wise"] is True


def test_the_mlp_and_the_ensemble_members_get_the_configured_threads(cfg):
    mlp = build_estimator("pytorch_mlp", cfg.spec("mlp").params, seed=3, threads=3)
    assert (mlp.threads, mlp.random_state) == (3, 3)
    ensemble = build_estimator("mean_ensemble", cfg.spec("ensemble").params, seed=3, threads=3)
    frame = _frame(1, rows=300)
    ensemble.fit(frame[MODEL_INPUTS], frame[LABEL].to_numpy(), np.ones(len(frame)))
    members = [getattr(e, "model", e) for e in ensemble.estimators_]
    assert [m.threads if hasattr(m, "threads") else m.get_params()["n_jobs"] for m in members] == [3, 3, 3]


def test_the_mlp_gives_the_same_scores_whatever_torch_threads_the_process_had():
    """torch's intra-op pool follows OMP_NUM_THREADS or the core count; sums split over another number
    of threads round differently (1 and 7 threads: scores up to 1.8e-7 apart). The MLP fits with its
    own count, and fit_and_score scores with it, so the process's setting does not matter."""
    import torch

    from include.training.models import pinned_threads

    frame = _frame(4, rows=3000)
    x, y = frame[MODEL_INPUTS], frame[LABEL].to_numpy()
    before = torch.get_num_threads()
    scores = []
    try:
        for ambient in (1, 7):
            torch.set_num_threads(ambient)
            model = build_estimator("pytorch_mlp", {"hidden": [32, 16], "max_epochs": 2, "batch_size": 256},
                                    seed=5, threads=2).fit(x, y, np.where(y == 1, 3.0, 1.0))
            assert torch.get_num_threads() == ambient  # the fit put the process's setting back
            with pinned_threads(2):
                scores.append(model.predict_proba(x))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(scores[0], scores[1])

"""A small training configuration for tests: the real model families with a tiny budget."""

from __future__ import annotations

import copy

import yaml

from include.training.config import DEFAULT_PATH, TrainingConfig, parse_training_config

SMALL_OVERRIDES = {
    "window": {"train_days": 7, "gap_days": 7, "test_days": 5, "folds": 1},
    "tuning": {"trials": 2, "safety_timeout_seconds": 600},
    "gate": {"min_eval_frauds": 10, "floor": {"average_precision": 0.1, "auc_roc": 0.6}},
}


def small_config_dict() -> dict:
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw.update(copy.deepcopy(SMALL_OVERRIDES))
    for m in raw["models"]:
        if m["family"] in ("xgboost", "lightgbm"):
            m["params"] = {**m["params"], "n_estimators": 40}
        if m["family"] == "pytorch_mlp":
            m["params"].update(max_epochs=4, hidden=[16])
            m["trials"] = 1
    return raw


def small_config(**changes) -> TrainingConfig:
    raw = small_config_dict()
    raw.update(changes)
    return parse_training_config(raw, source="tests/training_config.py")

"""Promotion gate decisions over a table of cases, and the training windows."""

from __future__ import annotations

import datetime as dt

import pytest

from include.training.config import ConfigError, GateConfig, WindowConfig, parse_training_config
from include.training.gate import decide
from include.training.windows import plan_training

GATE = GateConfig(min_improvement=0.01, auc_roc_tolerance=0.02, card_precision_tolerance=0.03, min_eval_frauds=50,
                  floor={"average_precision": 0.3, "auc_roc": 0.8})
CHAMPION = {"average_precision": 0.60, "auc_roc": 0.90, "card_precision": 0.25, "n_frauds": 400}


def m(ap=0.60, auc=0.90, cp=0.25, frauds=400):
    return {"average_precision": ap, "auc_roc": auc, "card_precision": cp, "n_frauds": frauds}


@pytest.mark.parametrize(("challenger", "champion", "promote", "reason"), [
    (m(ap=0.62), CHAMPION, True, "+0.0200 >= margin"),
    (m(ap=0.605), CHAMPION, False, "below the required margin"),
    (m(ap=0.60), CHAMPION, False, "below the required margin"),
    (m(ap=0.55), CHAMPION, False, "below the required margin"),
    (m(ap=0.65, auc=0.87), CHAMPION, False, "guardrail auc_roc drops by 0.0300"),
    (m(ap=0.65, auc=0.885), CHAMPION, True, "guardrails auc_roc and card_precision hold"),
    (m(ap=0.65, cp=0.21), CHAMPION, False, "guardrail card_precision drops by 0.0400"),
    (m(ap=0.65, frauds=49), CHAMPION, False, "only 49 labelled frauds"),
    (m(ap=float("nan")), CHAMPION, False, "undefined"),
    (m(ap=0.65), {**CHAMPION, "average_precision": float("nan")}, True, "champion average_precision is undefined"),
    (m(ap=0.35, auc=0.85), None, True, "first champion"),
    (m(ap=0.25, auc=0.85), None, False, "average_precision 0.2500 < floor 0.3"),
    (m(ap=0.35, auc=0.75), None, False, "auc_roc 0.7500 < floor 0.8"),
    (m(ap=0.35, auc=0.85, frauds=10), None, False, "only 10 labelled frauds"),
])
def test_gate_decisions(challenger, champion, promote, reason):
    decision = decide(challenger, champion, GATE, "average_precision")
    assert decision.promote is promote
    assert reason in decision.reason


def test_gate_on_another_primary_metric():
    decision = decide(m(ap=0.5, auc=0.95), CHAMPION, GATE, "auc_roc")
    assert decision.promote and decision.primary == "auc_roc" and decision.champion_value == 0.90


def test_windows_respect_the_label_delay():
    plan = plan_training("2026-05-31", WindowConfig(train_days=14, gap_days=7, test_days=7, folds=2))
    e = plan.evaluation
    assert e.test_end == dt.date(2026, 5, 24)  # newest labelled day: as_of - 7
    assert (e.test_start, e.train_end, e.train_start) == (dt.date(2026, 5, 18), dt.date(2026, 5, 10),
                                                          dt.date(2026, 4, 27))
    # folds shift back by one test length each; the newest fold ends the day before the evaluation block
    assert [f.test_end for f in plan.folds] == [dt.date(2026, 5, 17), dt.date(2026, 5, 10)]
    assert plan.first_day == dt.date(2026, 4, 13) and plan.days()[-1] == dt.date(2026, 5, 24)


@pytest.mark.parametrize(("change", "message"), [
    ({"models": [{"name": "x", "family": "svm"}]}, "unknown family 'svm'"),
    ({"models": [{"name": "x", "family": "xgboost", "class_weight": "heavy"}]}, "'models[0].class_weight' names an unknown class_weight 'heavy'"),
    ({"models": [{"name": "x", "family": "xgboost"}, {"name": "x", "family": "lightgbm"}]}, "'models' needs unique model names, got ['x', 'x']"),
    ({"window": {"train_days": 0}}, "train_days"),
    ({"window": {"trian_days": 3}}, "unknown key(s) ['trian_days'] in 'window'"),
    ({"metrics": {"primary": "accuracy"}}, "metrics.primary"),
    ({"experiment": ""}, "'experiment' is required"),
])
def test_config_errors_name_the_key(change, message):
    raw = {"experiment": "e", "registered_model": "r", "models": [{"name": "lr", "family": "logistic_regression"}]}
    raw.update(change)
    with pytest.raises(ConfigError) as err:
        parse_training_config(raw, source="training.yaml")
    assert message in str(err.value) and "training.yaml" in str(err.value)


def test_shipped_config_parses():
    from include.training.config import load_training_config

    cfg = load_training_config()
    assert [s.family for s in cfg.models] == ["logistic_regression", "xgboost", "lightgbm", "pytorch_mlp",
                                               "mean_ensemble"]

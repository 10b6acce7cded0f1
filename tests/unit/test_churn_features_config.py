"""The churn pipeline's training.yaml loads in the platform's schema and agrees with its spec and
its features."""

from __future__ import annotations

from include.config import REPO_ROOT
from include.pipelines import get
from include.pipelines.churn.features import MODEL_INPUTS
from include.training.config import FAMILIES, load_training_config


def test_churn_training_config_loads_and_matches_the_spec():
    spec = get("churn")
    cfg = load_training_config(REPO_ROOT / spec.training_config)
    assert cfg.registered_model == spec.registered_model
    assert cfg.metrics.primary == spec.primary_metric
    # the four families, each once
    families = [m.family for m in cfg.models]
    assert sorted(families) == sorted(f for f in FAMILIES if f != "mean_ensemble")
    # no training label reaches into the test snapshots
    assert cfg.window.gap_days >= spec.label_delay_days
    # weekly snapshots: whole weeks of training and test
    assert cfg.window.train_days % 7 == 0 and cfg.window.test_days % 7 == 0
    # slices cut columns the features have
    assert {s.column for s in cfg.slices.definitions} <= set(MODEL_INPUTS)


def test_churn_monitoring_config_loads_against_its_model_inputs():
    from include.drift.config import load_monitoring_config

    spec = get("churn")
    cfg = load_monitoring_config(REPO_ROOT / spec.monitoring_config, columns=MODEL_INPUTS)
    assert cfg.psi_alert >= cfg.psi_warn
    assert cfg.performance is not None and cfg.cooldown_days >= 7  # at least one weekly snapshot apart

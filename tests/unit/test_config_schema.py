"""The configuration schemas (pydantic): every rule of training.yaml and monitoring.yaml, and an error
that names the file, the key (dotted path), the value and the rule, one line per broken rule."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from include.config import ConfigError
from include.drift.config import DEFAULT_PATH as MONITORING_YAML
from include.drift.config import MonitoringConfig, load_monitoring_config
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training.config import DEFAULT_PATH as TRAINING_YAML
from include.training.config import GateConfig, load_training_config, parse_training_config


def _shipped(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _edit(raw: dict, dotted: str, value) -> dict:
    """``raw`` with the value at a dotted path (``models.1.family``) replaced; ``...`` deletes it."""
    raw = copy.deepcopy(raw)
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


TRAINING = [
    # key, value, what the one-line message must say after "<file>: "
    ("gate.min_improvement", -1.0, "'gate.min_improvement' must be >= 0 (a negative margin promotes a challenger "
                                   "worse than the champion), got -1.0"),
    ("tuning.safety_timeout_seconds", -5, "'tuning.safety_timeout_seconds' must be > 0, got -5"),
    ("tuning.safety_timeout_seconds", 0, "'tuning.safety_timeout_seconds' must be > 0, got 0"),
    ("tuning.timeout_seconds", 60, "'tuning' takes safety_timeout_seconds or its old name timeout_seconds, not both"),
    ("threads", 0, "'threads' must be >= 1, got 0"),
    ("threads", 1000, "'threads' must be <= 256, got 1000"),
    ("threads", 2.0, "'threads' must be an int, got 2.0"),
    ("tuning.trials", 0, "'tuning.trials' must be >= 1, got 0"),
    ("tuning.trials", -3, "'tuning.trials' must be >= 1, got -3"),
    ("models.3.trials", -1, "'models[3].trials' must be >= 1, got -1"),
    ("tuning.trials", 2.5, "'tuning.trials' must be an int, got 2.5"),
    ("tuning.trials", True, "'tuning.trials' must be an int, got True"),
    ("gate.require_approval", "yes", "'gate.require_approval' must be a bool (true or false), got 'yes'"),
    ("gate.auc_roc_tolerance", -0.01, "'gate.auc_roc_tolerance' must lie in [0, 1], got -0.01"),
    ("gate.min_eval_frauds", -1, "'gate.min_eval_frauds' must be >= 0, got -1"),
    ("gate.floor.average_precison", 0.3, "'gate.floor.average_precison' names an unknown metric "
                                         "'average_precison'; known: ['average_precision', 'auc_roc', "
                                         "'card_precision']"),
    ("gate.floor.auc_roc", 1.5, "'gate.floor.auc_roc' must lie in [0, 1], got 1.5"),
    ("metrics.primary", "accuracy", "'metrics.primary' names an unknown metric 'accuracy'; known:"),
    ("metrics.top_k", 0, "'metrics.top_k' must be >= 1, got 0"),
    ("metrics.false_alarm_cost", 0, "'metrics.false_alarm_cost' must be > 0, got 0"),
    ("window.gap_days", -1, "'window.gap_days' must be >= 0 (window needs train_days, test_days and folds >= 1 "
                            "and gap_days >= 0), got -1"),
    ("window.folds", 0, "'window.folds' must be >= 1 (window needs"),
    ("seed", -1, "'seed' must be >= 0, got -1"),
    ("models.1.family", "xgb", "'models[1].family' names an unknown family 'xgb'; known: ['logistic_regression', "
                               "'xgboost', 'lightgbm', 'pytorch_mlp', 'mean_ensemble']"),
    ("models.0.class_weight", "heavy", "'models[0].class_weight' names an unknown class_weight 'heavy'; known:"),
    ("models.0.search.C.low", 20.0, "'models[0].search.C' needs low <= high, got {'low': 20.0, 'high': 10.0"),
    ("models.0.search.C.low", 0.0, "'models[0].search.C' needs low > 0 on a log scale, got"),
    ("models.1.search.max_depth.low", 2.5, "'models[1].search.max_depth' needs whole numbers for low and high "
                                           "when int is true, got"),
    ("models.0.search.C.step", 1, "unknown key(s) ['step'] in 'models[0].search.C'; known: ['low', 'high', "
                                  "'log', 'int', 'choices']"),
    ("models.0.search.C", {"choices": []}, "'models[0].search.C.choices' needs at least 1 item(s), got []"),
    ("models.1.name", "logistic", "'models' needs unique model names, got ['logistic', 'logistic', 'lightgbm', "
                                  "'mlp', 'ensemble']"),
    ("models.4.members", ["xgboost"], "'models' model 'ensemble' (mean_ensemble) needs members: at least two "
                                      "distinct model names"),
    ("models.4.members", ["xgboost", "catboost"], "'models' model 'ensemble' names member 'catboost', which is not "
                                                  "a model of the file (or is itself an ensemble); known: ['logistic', "),
    ("models.4.params", {"C": 1.0}, "'models' model 'ensemble' (mean_ensemble) takes no params or search"),
    ("models.0.members", ["xgboost", "mlp"], "'models' model 'logistic' has members, which only a mean_ensemble "
                                             "model takes"),
    ("models", [], "'models' needs at least one model, got []"),
    ("models", ..., "'models' is required"),
    ("experiment", "", "'experiment' is required, got ''"),
    ("registered_model", 7, "'registered_model' must be a string, got 7"),
    ("gate", [0.005], "'gate' must be a mapping of keys to values, got [0.005]"),
    ("windows", {"train_days": 7}, "unknown top-level key(s) ['windows']; known: ['experiment', "),
    ("gate.min_improvment", 0.01, "unknown key(s) ['min_improvment'] in 'gate'; known: ['min_improvement', "),
]


@pytest.mark.parametrize(("key", "value", "says"), TRAINING, ids=[f"{k}={v!r}" for k, v, _ in TRAINING])
def test_a_training_rule_names_file_key_value_and_rule(tmp_path, key, value, says):
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(_edit(_shipped(TRAINING_YAML), key, value)))
    with pytest.raises(ConfigError) as refused:
        load_training_config(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1, message  # one broken rule, one line
    assert message.startswith(f"{path}: {says}"), message


def test_every_broken_rule_is_one_line(tmp_path):
    raw = _edit(_edit(_edit(_shipped(TRAINING_YAML), "gate.min_improvement", -1.0), "tuning.safety_timeout_seconds", -5),
                "window.train_dayz", 3)
    with pytest.raises(ConfigError) as refused:
        parse_training_config(raw, source="training.yaml")
    lines = str(refused.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("training.yaml: ") for line in lines), lines
    assert any("'gate.min_improvement' must be >= 0" in line for line in lines)
    assert any("'tuning.safety_timeout_seconds' must be > 0, got -5" in line for line in lines)
    assert any("unknown key(s) ['train_dayz'] in 'window'" in line for line in lines)


MONITORING = [
    ("exclude_columns", "tx_during_weekend", "'exclude_columns' must be a list, got 'tx_during_weekend'"),
    ("exclude_columns", ["tx_during_wekend"], "'exclude_columns[0]' names an unknown column 'tx_during_wekend'; "
                                              "known: ['tx_amount', 'tx_during_weekend', "),
    ("exclude_columns", ["tx_amount", "tx_amount"], "'exclude_columns' needs each column once, got ['tx_amount', "
                                                    "'tx_amount']"),
    ("exclude_columns", [3], "'exclude_columns[0]' must be a string, got 3"),
    ("min_drifted_columns", 99, f"'min_drifted_columns' must be <= {len(MODEL_INPUTS)} (the monitored columns: "
                                f"{len(MODEL_INPUTS)} model inputs less 1 excluded, plus the score), got 99"),
    ("psi_alert", 0.05, "'psi_alert' must be >= psi_warn (0.1), got 0.05"),
    ("psi_warn", 0, "'psi_warn' must be > 0, got 0"),
    ("ks_p_value", 5, "'ks_p_value' must lie in (0, 1), got 5"),
    ("ks_statistic", -0.1, "'ks_statistic' must lie in [0, 1], got -0.1"),
    ("psi_alert", "high", "'psi_alert' must be a float (a number), got 'high'"),
    ("psi_alert", "0.2", "'psi_alert' must be a float (a number), got '0.2'"),
    ("cooldown_days", -1, "'cooldown_days' must be >= 0, got -1"),
    ("performance.auc_roc_drop", 2, "'performance.auc_roc_drop' must lie in [0, 1], got 2"),
    ("performance.min_frauds", -1, "'performance.min_frauds' must be >= 0, got -1"),
    ("performance.auc_drop", 0.1, "unknown key(s) ['auc_drop'] in 'performance'; known: ['auc_roc_drop', "),
    ("psi_alrt", 0.2, "unknown key(s) ['psi_alrt']; known: ['psi_warn', "),
]


@pytest.mark.parametrize(("key", "value", "says"), MONITORING, ids=[f"{k}={v!r}" for k, v, _ in MONITORING])
def test_a_monitoring_rule_names_file_key_value_and_rule(tmp_path, key, value, says):
    path = tmp_path / "monitoring.yaml"
    path.write_text(yaml.safe_dump(_edit(_shipped(MONITORING_YAML), key, value)))
    with pytest.raises(ConfigError) as refused:
        load_monitoring_config(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: {says}"), message


def test_malformed_or_missing_files_are_named(tmp_path):
    bad = tmp_path / "monitoring.yaml"
    bad.write_text("psi_warn: [0.1\n")
    for load in (load_monitoring_config, load_training_config):
        with pytest.raises(ConfigError, match=f"^{bad}: not valid YAML: "):
            load(bad)
        with pytest.raises(ConfigError, match=f"configuration file not found: {tmp_path / 'nope.yaml'}"):
            load(tmp_path / "nope.yaml")
    bad.write_text("- psi_warn\n")
    with pytest.raises(ConfigError, match=f"^{bad}: expected a mapping of keys to values, got \\['psi_warn'\\]"):
        load_monitoring_config(bad)


def test_the_shipped_files_and_their_defaults():
    assert load_monitoring_config().exclude_columns == ("tx_during_weekend",)
    cfg = load_training_config()
    assert cfg.source == str(TRAINING_YAML) and cfg.trials == 8 and cfg.safety_timeout_seconds == 3600.0
    assert cfg.threads == 2  # a fixed number, not the core count
    assert cfg.trials_for(cfg.spec("mlp")) == 4 and cfg.models[0].search["C"].log is True


def test_a_minimal_file_relies_on_defaults(tmp_path):
    path = tmp_path / "training.yaml"
    path.write_text("# only what has no default\nmodels:\n  - {family: xgboost, name: xgb}\n"
                    "registered_model: m\nexperiment: e\n")
    cfg = load_training_config(path)
    assert (cfg.gate, cfg.trials, cfg.seed, cfg.models[0].class_weight) == (GateConfig(), 8, 42, "sqrt")
    assert (cfg.threads, cfg.safety_timeout_seconds) == (2, 3600.0)
    thresholds = {"psi_warn": 0.1, "psi_alert": 0.2, "ks_p_value": 0.05, "ks_statistic": 0.1}  # no defaults
    minimal = tmp_path / "monitoring.yaml"
    minimal.write_text("# only the drift thresholds: everything else at its default\n"
                       + "".join(f"{k}: {v}\n" for k, v in thresholds.items()))
    assert load_monitoring_config(minimal) == MonitoringConfig(**thresholds)


def test_the_drift_thresholds_have_no_default(tmp_path):
    """The monitoring file is their only source: a file without them is refused, naming each."""
    empty = tmp_path / "monitoring.yaml"
    empty.write_text("# no thresholds\n")
    with pytest.raises(ConfigError) as refused:
        load_monitoring_config(empty)
    for key in ("psi_warn", "psi_alert", "ks_p_value", "ks_statistic"):
        assert f"{empty}: '{key}' is required" in str(refused.value), str(refused.value)


def test_columns_are_checked_against_the_pipeline_given(tmp_path):
    """A scaffolded pipeline names its own columns; without a list, the reference pipeline's inputs."""
    path = tmp_path / "monitoring.yaml"
    path.write_text("exclude_columns: [age_days]\npsi_warn: 0.1\npsi_alert: 0.2\nks_p_value: 0.05\nks_statistic: 0.1\n")
    with pytest.raises(ConfigError, match="unknown column 'age_days'"):
        load_monitoring_config(path)
    assert load_monitoring_config(path, columns=["age_days", "n_orders"]).exclude_columns == ("age_days",)
    assert "tx_amount" in MODEL_INPUTS


def test_objects_built_in_code_are_validated_too():
    with pytest.raises(ValueError, match="min_improvement"):
        GateConfig(min_improvement=-0.5)
    thresholds = load_monitoring_config().model_dump(include={"psi_warn", "psi_alert", "ks_p_value", "ks_statistic"})
    assert MonitoringConfig(exclude_columns=["a"], **thresholds).exclude_columns == ("a",)  # no column list: shape only


def test_a_budget_that_runs_no_trial_is_named_not_max_of_nothing():
    """What a negative timeout did before training.yaml refused it: Optuna ran no trial and training
    crashed with "max() arg is an empty sequence". A caller passing one gets the names of the values."""
    from include.training.tuning import tune

    cfg = load_training_config()
    with pytest.raises(ValueError, match=r"logistic: tuning needs trials >= 1 and safety_timeout_seconds > 0, "
                                         r"got trials=2, safety_timeout_seconds=-1"):
        tune(cfg.spec("logistic"), [], cfg.metrics, trials=2, safety_timeout_seconds=-1, seed=0)
    with pytest.raises(ValueError, match="got trials=0, safety_timeout_seconds=60"):
        tune(cfg.spec("logistic"), [], cfg.metrics, trials=0, safety_timeout_seconds=60, seed=0)


def test_the_old_name_of_the_tuning_cap_is_still_read(tmp_path):
    """``tuning.timeout_seconds`` (when the cap was a budget) is read as ``safety_timeout_seconds``;
    its errors name the key the file wrote."""
    raw = _edit(_shipped(TRAINING_YAML), "tuning", {"trials": 3, "timeout_seconds": 90})
    assert parse_training_config(raw).safety_timeout_seconds == 90.0
    with pytest.raises(ConfigError, match="'tuning.timeout_seconds' must be > 0, got -5"):
        parse_training_config(_edit(raw, "tuning.timeout_seconds", -5), source="training.yaml")


def test_a_blank_config_variable_is_unset_for_every_file(monkeypatch, reliability):
    """``BATCHML_TRAINING_CONFIG=${UNSET}`` in a compose file sets it to "": it was read as ".",
    "configuration file . is a directory", while a blank BATCHML_PLAUSIBILITY_CONFIG meant the shipped file."""
    from include.validation.plausibility import load_plausibility

    case = reliability.case("unusual input", "BATCHML_TRAINING_CONFIG, BATCHML_MONITORING_CONFIG and "
                                             "BATCHML_PLAUSIBILITY_CONFIG set but blank (' ')",
                            expected="each read as unset: the shipped file")
    for name in ("BATCHML_TRAINING_CONFIG", "BATCHML_MONITORING_CONFIG", "BATCHML_PLAUSIBILITY_CONFIG"):
        monkeypatch.setenv(name, " ")
    assert load_training_config() == load_training_config(TRAINING_YAML)
    assert load_monitoring_config() == load_monitoring_config(MONITORING_YAML)
    assert load_plausibility().recent_days == 7
    case.observed = "the shipped training.yaml, monitoring.yaml and plausibility.yaml"

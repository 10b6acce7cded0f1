"""A pipeline's configuration lives in its package and is read by the platform's loaders with the
pipeline as a parameter (include/spec.py ``config_file``): every pipeline's training.yaml,
monitoring.yaml and plausibility bounds load through the same calls; the environment variables replace
the file of their pipeline only; the cost model has one owner, the training configuration."""

from __future__ import annotations

import logging

import pytest
import yaml

from include import pipelines
from include.config import REPO_ROOT, ConfigError
from include.drift.config import load_monitoring_config
from include.spec import declare
from include.training.config import load_training_config
from include.validation.plausibility import PlausibilityConfig, load_plausibility


@pytest.mark.parametrize("name", pipelines.names())
def test_every_pipelines_configuration_loads_through_the_platform_loaders(name, monkeypatch):
    for var in ("BATCHML_TRAINING_CONFIG", "BATCHML_MONITORING_CONFIG", f"BATCHML_{name.upper()}_TRAINING_CONFIG",
                f"BATCHML_{name.upper()}_MONITORING_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    spec = pipelines.get(name)
    package = REPO_ROOT / "include" / "pipelines" / name
    # the files are in the pipeline's own package, where its spec says
    assert spec.training_config_path.parent == package and spec.monitoring_config_path.parent == package
    training = load_training_config(pipeline=name)
    assert training.source == str(spec.training_config_path)
    assert training.registered_model == spec.registered_model
    monitoring = load_monitoring_config(pipeline=name)  # exclude_columns checked against its own model inputs
    assert set(monitoring.exclude_columns) <= set(spec.resolve_model_inputs())
    if monitoring.performance is not None:  # the costs are the training configuration's, written once
        raw = yaml.safe_load(spec.monitoring_config_path.read_text())
        assert not {"missed_fraud_cost", "false_alarm_cost"} & raw["performance"].keys()
        assert (monitoring.performance.missed_fraud_cost, monitoring.performance.false_alarm_cost) == (
            training.metrics.missed_fraud_cost, training.metrics.false_alarm_cost)
    if spec.plausibility is not None:
        bounds = load_plausibility(pipeline=name)
        assert isinstance(bounds, PlausibilityConfig) and type(bounds).__module__.startswith(f"include.pipelines.{name}")
        assert (REPO_ROOT / spec.plausibility.config).parent == package


def test_no_pipeline_argument_means_the_default_pipeline(monkeypatch):
    for var in ("BATCHML_TRAINING_CONFIG", "BATCHML_MONITORING_CONFIG", "BATCHML_PLAUSIBILITY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    default = pipelines.get()
    assert default is pipelines.get(pipelines.DEFAULT)
    assert load_training_config() == load_training_config(pipeline=pipelines.DEFAULT)
    assert load_monitoring_config() == load_monitoring_config(pipeline=pipelines.DEFAULT)
    assert load_plausibility() == load_plausibility(pipeline=pipelines.DEFAULT)


def test_an_environment_variable_replaces_the_file_of_its_own_pipeline_only(tmp_path, monkeypatch):
    """BATCHML_TRAINING_CONFIG keeps meaning the default pipeline's file, as before the packages;
    BATCHML_<PIPELINE>_TRAINING_CONFIG is any pipeline's, and wins over the old name."""
    other = next(n for n in pipelines.names() if n != pipelines.DEFAULT)
    raw = yaml.safe_load(pipelines.get().training_config_path.read_text())
    legacy, own = tmp_path / "legacy.yaml", tmp_path / "own.yaml"
    legacy.write_text(yaml.safe_dump({**raw, "experiment": "from-legacy-variable"}))
    own.write_text(yaml.safe_dump({**raw, "experiment": "from-own-variable"}))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(legacy))
    assert load_training_config().experiment == "from-legacy-variable"
    assert load_training_config(pipeline=other).registered_model == pipelines.get(other).registered_model
    monkeypatch.setenv(f"BATCHML_{pipelines.DEFAULT.upper()}_TRAINING_CONFIG", str(own))
    assert load_training_config().experiment == "from-own-variable"
    monkeypatch.setenv(f"BATCHML_{other.upper()}_TRAINING_CONFIG", str(legacy))
    assert load_training_config(pipeline=other).experiment == "from-legacy-variable"
    monkeypatch.setenv(f"BATCHML_{other.upper()}_TRAINING_CONFIG", "  ")  # blank: unset
    assert load_training_config(pipeline=other).source == str(pipelines.get(other).training_config_path)


def test_an_unknown_pipeline_is_refused_naming_the_known_ones():
    for load in (load_training_config, load_monitoring_config, load_plausibility):
        with pytest.raises(KeyError, match="no pipeline named 'nope'; known: .*churn"):
            load(pipeline="nope")


def _monitoring(tmp_path, **performance) -> str:
    raw = yaml.safe_load(pipelines.get().monitoring_config_path.read_text())
    raw["performance"] = {**raw["performance"], **performance}
    path = tmp_path / "monitoring.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_the_cost_model_follows_the_training_configuration(tmp_path, monkeypatch):
    raw = yaml.safe_load(pipelines.get().training_config_path.read_text())
    raw["metrics"] = {**raw["metrics"], "missed_fraud_cost": 700, "false_alarm_cost": 35}
    training = tmp_path / "training.yaml"
    training.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(training))
    perf = load_monitoring_config(_monitoring(tmp_path)).performance
    assert (perf.missed_fraud_cost, perf.false_alarm_cost) == (700, 35)


def test_costs_still_written_in_monitoring_are_used_and_a_difference_is_logged(tmp_path, caplog):
    """Refuse nothing that worked: a monitoring.yaml that still gives both costs is read as before."""
    with caplog.at_level(logging.WARNING, logger="include.drift.config"):
        perf = load_monitoring_config(_monitoring(tmp_path, missed_fraud_cost=1000, false_alarm_cost=50)).performance
    assert (perf.missed_fraud_cost, perf.false_alarm_cost) == (1000, 50) and not caplog.records
    with caplog.at_level(logging.WARNING, logger="include.drift.config"):
        perf = load_monitoring_config(_monitoring(tmp_path, missed_fraud_cost=10, false_alarm_cost=5)).performance
    assert (perf.missed_fraud_cost, perf.false_alarm_cost) == (10, 5)
    assert "differ from those of the training configuration" in caplog.text and "training.yaml" in caplog.text


def test_costs_in_monitoring_do_not_need_a_readable_training_configuration(tmp_path, monkeypatch):
    bad = tmp_path / "broken-training.yaml"
    bad.write_text("experiment: [\n")
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(bad))
    path = _monitoring(tmp_path, missed_fraud_cost=1000, false_alarm_cost=50)
    assert load_monitoring_config(path).performance.missed_fraud_cost == 1000
    with pytest.raises(ConfigError, match="broken-training.yaml"):  # without them: the owner is needed, named
        load_monitoring_config(pipelines.get().monitoring_config_path)


def test_one_cost_without_the_other_is_refused_naming_both(tmp_path):
    path = _monitoring(tmp_path, missed_fraud_cost=1000)
    with pytest.raises(ConfigError) as caught:
        load_monitoring_config(path)
    message = str(caught.value)
    assert message.startswith(path) and "'performance'" in message
    assert "missed_fraud_cost and false_alarm_cost or neither" in message


def test_a_pipeline_without_plausibility_bounds_is_told_so(monkeypatch):
    without = [n for n in pipelines.names() if pipelines.get(n).plausibility is None]
    if not without:
        pytest.skip("every pipeline declares plausibility bounds")
    with pytest.raises(ConfigError, match=f"pipeline '{without[0]}' declares no plausibility bounds"):
        load_plausibility(pipeline=without[0])


@pytest.mark.parametrize(("change", "key", "rule"), [
    ({"plausibility": {"config": "/etc/p.yaml", "schema_ref": "a.b:C"}}, "'plausibility.config'",
     "relative to the repository root"),
    ({"plausibility": {"config": "p.yaml", "schema_ref": "a.b"}}, "'plausibility.schema_ref'", "package.module:ATTRIBUTE"),
    ({"plausibility": {"config": "p.yaml"}}, "'plausibility.schema_ref'", "required"),
])
def test_a_bad_plausibility_entry_of_a_spec_is_refused_naming_the_key(change, key, rule):
    with pytest.raises(ConfigError) as caught:
        declare({**pipelines.get().model_dump(), **change})
    assert key in str(caught.value) and rule in str(caught.value), str(caught.value)


def test_a_plausibility_schema_that_is_not_one_is_refused(monkeypatch):
    from include.validation import plausibility

    spec = pipelines.get()
    broken = spec.model_copy(update={"plausibility": spec.plausibility.model_copy(
        update={"schema_ref": "include.validation.plausibility:Band"})})
    monkeypatch.setattr(pipelines, "_get", lambda name: broken)
    with pytest.raises(ConfigError, match="'plausibility.schema_ref'.*must name a subclass"):
        plausibility.load_plausibility(spec.shipped_config("plausibility"))


def test_raw_columns_are_the_canonical_schema_and_only_raw_datasets_have_them():
    from include.ingest import RAW_SCHEMAS

    spec = pipelines.get("fraud")
    assert RAW_SCHEMAS == {d.name: dict(d.columns) for d in spec.in_zone("raw")}
    assert list(RAW_SCHEMAS["raw_transactions"]) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id",
                                                     "tx_amount"]
    hash(spec)  # still hashable, columns and all
    datasets = [d.model_dump() for d in spec.datasets]
    for bad, rule in (({**datasets[-1], "columns": {"score": "float64"}}, "only a raw dataset has columns"),
                      ({**datasets[0], "columns": {"tx_amount": "decimal"}}, "unknown column type 'decimal'")):
        with pytest.raises(ConfigError, match=rule):
            declare({**spec.model_dump(), "datasets": [bad, *datasets[1:-1], datasets[-1]] if bad["zone"] == "raw"
                     else [*datasets[:-1], bad]})

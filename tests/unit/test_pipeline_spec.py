"""The pipeline specs (include/spec.py) and their registry (include.pipelines): both pipelines load and
validate, a bad spec is refused with one line per broken rule naming the key, and the fraud spec's
values are the ones the platform uses."""

from __future__ import annotations

import pytest

from include import pipelines
from include.config import ConfigError
from include.spec import PipelineSpec, declare, resolve


def _raw(spec: PipelineSpec, **changes) -> dict:
    return {**spec.model_dump(), **changes}


def test_names_lists_fraud_and_churn():
    assert {"fraud", "churn"} <= set(pipelines.names())
    assert pipelines.names() == sorted(pipelines.names())


@pytest.mark.parametrize("name", ["fraud", "churn"])
def test_each_spec_loads_and_is_frozen(name):
    spec = pipelines.get(name)
    assert isinstance(spec, PipelineSpec) and spec.name == name
    assert {d.zone for d in spec.datasets} == {"raw", "features", "predictions"}
    assert declare(spec.model_dump()) == spec  # its own dump validates back to it
    with pytest.raises(Exception, match="frozen"):
        spec.label_delay_days = 1  # type: ignore[misc]


def test_churn_spec_is_weekly_per_customer_with_a_30_day_delay():
    spec = pipelines.get("churn")
    assert (spec.cadence, spec.entity_key, spec.label_delay_days) == ("weekly", ("customer_id",), 30)
    from include.pipelines.churn.simulator import LABEL_HORIZON_DAYS, landing_source

    assert spec.label_delay_days == LABEL_HORIZON_DAYS
    # its raw datasets are delivered where the simulator writes them
    assert {d.landing_source for d in spec.in_zone("raw")} == {
        landing_source(t) for t in ("customers", "usage_events", "support_contacts", "payment_failures",
                                    "cancellations", "labels")}


def test_unknown_pipeline_is_one_line_listing_the_known_ones():
    with pytest.raises(KeyError) as caught:
        pipelines.get("nope")
    message = str(caught.value)
    assert "\n" not in message and "'nope'" in message
    assert all(name in message for name in pipelines.names())


@pytest.mark.parametrize(("changes", "key", "rule"), [
    ({"label_delay_days": -1}, "'label_delay_days'", "must be >= 0, got -1"),
    ({"cadence": "hourly"}, "'cadence'", "unknown cadence 'hourly'"),
    ({"name": "Fraud Detector"}, "'name'", "lower-case letters"),
    ({"feature_job": "include/jobs/build_features.py"}, "'feature_job'", "dotted module path"),
    ({"model_inputs": "include.pipelines.fraud.features.baseline"}, "'model_inputs'", "package.module:ATTRIBUTE"),
    ({"training_config": "/etc/training.yaml"}, "'training_config'", "relative to the repository root"),
    ({"entity_key": ()}, "'entity_key'", "at least 1"),
    ({"colour": "red"}, "'colour'", "unknown top-level key"),
])
def test_a_bad_spec_is_one_line_naming_the_key(changes, key, rule):
    with pytest.raises(ConfigError) as caught:
        declare(_raw(pipelines.get("fraud"), **changes))
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith("pipeline spec ") and key in message and rule in message, message


def test_datasets_must_be_unique_and_cover_every_zone():
    fraud = pipelines.get("fraud")
    datasets = [d.model_dump() for d in fraud.datasets]
    for bad, expected in [
        ([*datasets, datasets[1]], "'datasets' needs unique names, ['raw_labels'] appear twice"),
        ([*datasets, {**datasets[1], "name": "labels_again"}], "'datasets' needs one lake path"),
        (datasets[:3], "'datasets' needs at least one dataset of each zone"),
        ([], "none in ['raw', 'features', 'predictions']"),
        ([*datasets[:3], {**datasets[3], "source": "x"}], "'datasets[3]' dataset 'predictions_fraud': only a raw"),
        ([{**datasets[0], "zone": "lake"}, *datasets[1:]], "'datasets[0].zone' names an unknown zone 'lake'"),
    ]:
        with pytest.raises(ConfigError) as caught:
            declare(_raw(fraud, datasets=bad))
        assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_an_unresolvable_reference_names_it():
    with pytest.raises(ConfigError, match="'include.pipelines.fraud.features.baseline:NOPE' cannot be resolved"):
        resolve("include.pipelines.fraud.features.baseline:NOPE")


def test_fraud_spec_is_what_the_platform_uses():
    """The platform modules read these values from the spec (single source); the rest is checked
    against the modules and files that hold them today."""
    import importlib

    from include import config, ingest
    from include.features.pipeline import FEATURE_SET
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS
    from include.schema import read_yaml
    from include.validation.datasets import DATASETS

    spec = pipelines.get("fraud")
    assert config.LABEL_DELAY_DAYS == spec.label_delay_days == 7
    assert spec.resolve_model_inputs() == MODEL_INPUTS
    training = read_yaml(spec.training_config_path)
    assert training["registered_model"] == spec.registered_model
    assert training["metrics"]["primary"] == spec.primary_metric
    assert training["slices"]["business_metric"] == spec.business_metric
    assert spec.monitoring_config_path.is_file()
    assert importlib.util.find_spec(spec.feature_job) is not None
    # the lake paths: raw/<source>, features/<set>, predictions/<name>, checked by the suites of the spec
    assert ingest.SOURCES == tuple(d.dataset for d in spec.in_zone("raw")) == ("transactions", "labels")
    assert FEATURE_SET == spec.only("features").dataset
    for dataset in spec.datasets:
        check = DATASETS[dataset.suite]
        assert (check.suite, check.dataset) == (dataset.suite, dataset.dataset)
    # its suites are its package's, in the registry the checkpoints read
    from include.pipelines.fraud import suites
    from include.validation.suites import SUITES

    assert set(suites.SUITES) == {d.suite for d in spec.datasets}
    assert all(SUITES[name] is suites.SUITES[name] for name in suites.SUITES)
    # the Assets that connect the DAGs carry the datasets' logical names
    from include import assets

    assert {a.name for a in (assets.RAW_TRANSACTIONS, assets.RAW_LABELS, assets.FEATURES_BASELINE,
                             assets.PREDICTIONS)} == {d.name for d in spec.datasets}


def test_churn_spec_is_what_its_package_uses():
    from include.pipelines.churn import features

    spec = pipelines.get("churn")
    assert set(features.RAW_DATASETS.values()) == {d.dataset for d in spec.in_zone("raw")}
    assert features.FEATURE_SET == spec.only("features").dataset
    assert spec.resolve_model_inputs() == list(features.MODEL_INPUTS)
    assert spec.feature_job == features.__name__

"""A pipeline's spec: what the platform needs to know about one pipeline, declared once in
``include/pipelines/<name>/spec.py`` as ``SPEC = declare({...})`` and read with
:func:`include.pipelines.get`.

A spec names things; it imports nothing of the pipeline. The feature job and the model inputs are
references (``package.module`` and ``package.module:ATTRIBUTE``) resolved on use, so that reading a
spec stays cheap for DAG files (pydantic only). A spec that breaks a rule is refused with one line per
broken rule naming the pipeline, the key, the value and the rule (include/schema.py):

    pipeline spec '<name>': 'label_delay_days' must be >= 0, got -1

A pipeline's configuration files (training.yaml, monitoring.yaml, and optionally its plausibility
bounds) are in its package; the spec names them and :meth:`PipelineSpec.config_file` is how the
platform's loaders (include/training/config.py, include/drift/config.py,
include/validation/plausibility.py) find the one to read, environment overrides included.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from include.config import REPO_ROOT, ConfigError
from include.schema import STRICT, Invalid, one_of, validate_config

SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
SLUG_RULE = "must be lower-case letters, digits and _ starting with a letter"
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MODULE_RULE = "must be a dotted module path (package.module)"
REF_RULE = "must be a reference package.module:ATTRIBUTE"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ZONES = ("raw", "features", "predictions")  # a dataset's role is the lake zone it is published to
CADENCES = ("daily", "weekly")
# the canonical column types of a raw dataset (include.storage.canonical_frame casts a delivery to them)
COLUMN_TYPES = ("int64", "float64", "datetime64[us, UTC]")
# the configuration files of a pipeline, each read by its platform loader (config_file below)
CONFIG_KINDS = ("training", "monitoring", "plausibility")


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise Invalid(SLUG_RULE)
    return value


def _module(value: str) -> str:
    if not MODULE.match(value):
        raise Invalid(MODULE_RULE)
    return value


def _ref(value: str) -> str:
    module, _, attribute = value.partition(":")
    if not MODULE.match(module) or not attribute.isidentifier():
        raise Invalid(REF_RULE)
    return value


def _model_name(value: str) -> str:
    if not MODEL_NAME.match(value):
        raise Invalid("must be letters, digits, '.', '_' and '-' (an MLflow registered model name)")
    return value


def _config_path(value: str) -> str:
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or path.suffix not in (".yaml", ".yml"):
        raise Invalid("must be a .yaml path relative to the repository root")
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Column = Annotated[str, Field(min_length=1)]
Module = Annotated[str, AfterValidator(_module)]
Reference = Annotated[str, AfterValidator(_ref)]
ConfigPath = Annotated[str, AfterValidator(_config_path)]


class DatasetSpec(BaseModel):
    """One dataset of the pipeline: its logical name (the Asset's and the GX checkpoint's), where it
    lies in the lake (``<zone>/<dataset>/ds=<day>/``) and the GX suite that checks each partition.
    A raw dataset is delivered as ``landing/<source>/`` (default: its lake name)."""

    model_config = STRICT

    name: Slug
    zone: Annotated[str, one_of("zone", ZONES)]
    dataset: Slug
    suite: Slug
    source: Slug | None = None
    # raw only: the canonical schema of every published partition, column -> type (include/ingest.py)
    columns: dict[Column, Annotated[str, one_of("column type", COLUMN_TYPES)]] | None = None

    @model_validator(mode="after")
    def _source_of_raw_only(self) -> DatasetSpec:
        if self.source is not None and self.zone != "raw":
            raise Invalid(f"dataset {self.name!r}: only a raw dataset has a landing source", show_value=False)
        if self.columns is not None and (self.zone != "raw" or not self.columns):
            raise Invalid(f"dataset {self.name!r}: only a raw dataset has columns, at least one", show_value=False)
        return self

    @property
    def landing_source(self) -> str:
        return self.source or self.dataset

    def __hash__(self) -> int:  # frozen, and hashable with its columns (a dict) like a spec without them
        return hash((self.name, self.zone, self.dataset, self.suite, self.source,
                     tuple((self.columns or {}).items())))


class PlausibilitySpec(BaseModel):
    """Where a pipeline's plausibility bounds live: the file (``config``) and the schema that reads it
    (``schema_ref``: ``package.module:CLASS``, a subclass of
    :class:`include.validation.plausibility.PlausibilityConfig`), both in the pipeline's package."""

    model_config = STRICT

    config: ConfigPath
    schema_ref: Reference


class PipelineSpec(BaseModel):
    """What the platform needs to know about one pipeline. Frozen."""

    model_config = STRICT

    name: Slug
    description: Annotated[str, Field(min_length=1)]
    entity_key: Annotated[tuple[Column, ...], Field(strict=False, min_length=1)]
    event_time: Column
    label: Column
    label_delay_days: Annotated[int, Field(ge=0, le=366)]
    cadence: Annotated[str, one_of("cadence", CADENCES)]
    datasets: Annotated[tuple[DatasetSpec, ...], Field(strict=False)]  # one of each zone at least (below)
    feature_job: Module
    model_inputs: Reference
    registered_model: Annotated[str, AfterValidator(_model_name)]
    primary_metric: Slug
    business_metric: Slug
    training_config: ConfigPath
    monitoring_config: ConfigPath
    plausibility: PlausibilitySpec | None = None  # None: no plausibility bounds beyond the suites

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, datasets: tuple[DatasetSpec, ...]) -> tuple[DatasetSpec, ...]:
        names = [d.name for d in datasets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise Invalid(f"needs unique names, {twice} appear twice", show_value=False)
        places = [(d.zone, d.dataset) for d in datasets]
        if len(set(places)) != len(places):
            raise Invalid("needs one lake path (zone, dataset) per dataset, two share one", show_value=False)
        missing = [z for z in ZONES if z not in {d.zone for d in datasets}]
        if missing:
            raise Invalid(f"needs at least one dataset of each zone {list(ZONES)}, none in {missing}",
                          show_value=False)
        return datasets

    # -- lookups ---------------------------------------------------------------------------------
    def dataset(self, name: str) -> DatasetSpec:
        """The dataset of logical name ``name``; KeyError naming the known ones."""
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"pipeline {self.name!r} has no dataset {name!r}; known: {[d.name for d in self.datasets]}")

    def in_zone(self, zone: str) -> tuple[DatasetSpec, ...]:
        return tuple(d for d in self.datasets if d.zone == zone)

    def only(self, zone: str) -> DatasetSpec:
        """The single dataset of ``zone`` (features, predictions); ValueError when there are several."""
        found = self.in_zone(zone)
        if len(found) != 1:
            raise ValueError(f"pipeline {self.name!r} has {len(found)} {zone} datasets, expected one: "
                             f"{[d.name for d in found]}")
        return found[0]

    @property
    def training_config_path(self) -> Path:
        return self.shipped_config("training")

    @property
    def monitoring_config_path(self) -> Path:
        return self.shipped_config("monitoring")

    def shipped_config(self, kind: str) -> Path:
        """The package's file of configuration ``kind`` (:data:`CONFIG_KINDS`); ConfigError when the
        pipeline has none."""
        if kind not in CONFIG_KINDS:
            raise ValueError(f"unknown configuration {kind!r}; known: {list(CONFIG_KINDS)}")
        if kind == "plausibility":
            if self.plausibility is None:
                raise ConfigError(f"pipeline {self.name!r} declares no plausibility bounds "
                                  f"(key 'plausibility' of include/pipelines/{self.name}/spec.py)")
            return REPO_ROOT / self.plausibility.config
        return REPO_ROOT / (self.training_config if kind == "training" else self.monitoring_config)

    def config_file(self, kind: str) -> Path:
        """The file of configuration ``kind`` a loader reads: the one an environment variable of
        :func:`config_env_vars` names (set and not blank), else :meth:`shipped_config`."""
        if kind not in CONFIG_KINDS:
            raise ValueError(f"unknown configuration {kind!r}; known: {list(CONFIG_KINDS)}")
        for var in config_env_vars(self.name, kind):
            value = os.environ.get(var, "").strip()  # blank (X=${UNSET} in a compose file) is unset
            if value:
                return Path(value)
        return self.shipped_config(kind)

    def resolve_model_inputs(self) -> list[str]:
        """The model input columns (imports the module that defines them)."""
        return list(resolve(self.model_inputs))


def resolve(reference: str) -> Any:
    """The object named by ``package.module:ATTRIBUTE``; ConfigError naming the reference."""
    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"reference {reference!r} cannot be resolved: {exc}") from None


def config_env_vars(pipeline: str, kind: str) -> tuple[str, ...]:
    """The environment variables that replace the ``kind`` file of ``pipeline``, the first set wins:
    ``BATCHML_<PIPELINE>_<KIND>_CONFIG``, and for the default pipeline (include.pipelines.DEFAULT) also
    ``BATCHML_<KIND>_CONFIG``, the name it had when it was the only pipeline."""
    from include.pipelines import DEFAULT

    own = f"BATCHML_{pipeline.upper()}_{kind.upper()}_CONFIG"
    return (own, f"BATCHML_{kind.upper()}_CONFIG") if pipeline == DEFAULT else (own,)


def declare(raw: dict[str, Any]) -> PipelineSpec:
    """The validated spec of ``raw``; ConfigError with one line per broken rule."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return validate_config(PipelineSpec, raw, f"pipeline spec {name!r}" if name else "pipeline spec")

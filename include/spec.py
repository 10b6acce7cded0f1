"""A pipeline's spec: what the platform needs to know about one pipeline, declared once in
``include/pipelines/<name>/spec.py`` as ``SPEC = declare({...})`` and read with
:func:`include.pipelines.get`.

A spec names things; it imports nothing of the pipeline. The feature job and the model inputs are
references (``package.module`` and ``package.module:ATTRIBUTE``) resolved on use, so that reading a
spec stays cheap for DAG files (pydantic only). A spec that breaks a rule is refused with one line per
broken rule naming the pipeline, the key, the value and the rule (include/schema.py):

    pipeline spec '<name>': 'label_delay_days' must be >= 0, got -1
"""

from __future__ import annotations

import importlib
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

    @model_validator(mode="after")
    def _source_of_raw_only(self) -> DatasetSpec:
        if self.source is not None and self.zone != "raw":
            raise Invalid(f"dataset {self.name!r}: only a raw dataset has a landing source", show_value=False)
        return self

    @property
    def landing_source(self) -> str:
        return self.source or self.dataset


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
        return REPO_ROOT / self.training_config

    @property
    def monitoring_config_path(self) -> Path:
        return REPO_ROOT / self.monitoring_config

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


def declare(raw: dict[str, Any]) -> PipelineSpec:
    """The validated spec of ``raw``; ConfigError with one line per broken rule."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return validate_config(PipelineSpec, raw, f"pipeline spec {name!r}" if name else "pipeline spec")

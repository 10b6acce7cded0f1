"""Monitoring thresholds of a pipeline (the ``monitoring.yaml`` its spec names, in its package:
include/pipelines/<name>/monitoring.yaml; or the file named by ``BATCHML_<PIPELINE>_MONITORING_CONFIG``,
for the default pipeline also ``BATCHML_MONITORING_CONFIG``: include/spec.py ``config_file``) as a
schema: pydantic models with the types, ranges, the columns that must exist and the rules across
fields. A file that breaks a rule is refused before anything is read or written, with one line per
broken rule naming the file, the key, the value and the rule (include/schema.py).

The cost model has one owner, the pipeline's training configuration (``metrics.missed_fraud_cost`` and
``metrics.false_alarm_cost``, which set the decision threshold): a ``performance`` section without the
two costs takes them from there (:func:`load_monitoring_config`). A file that still gives both is
read as before; costs that differ from the training configuration's are logged as a warning."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from include import pipelines
from include.schema import STRICT, Fraction, Invalid, lies_in, one_of, read_yaml, validate_config

log = logging.getLogger(__name__)
# the default pipeline's shipped file (include.pipelines.DEFAULT)
DEFAULT_PATH = pipelines.get().shipped_config("monitoring")
# the cost model's keys, the same in the training configuration's ``metrics`` (their owner)
COST_KEYS = ("missed_fraud_cost", "false_alarm_cost")


def _columns(info: ValidationInfo) -> list[str] | None:
    return (info.context or {}).get("columns")


class PerformanceConfig(BaseModel):
    """The ``performance`` section: alerts on the labels arriving each day, the cost model and the
    estimate of the days whose labels have not arrived. No key has a default in code: a section
    without one is refused naming it (a file without the section monitors no performance), except the
    two costs, which the loader takes from the training configuration when the file gives neither."""

    model_config = STRICT

    @model_validator(mode="before")
    @classmethod
    def _both_costs_or_neither(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and len(set(COST_KEYS) & raw.keys()) == 1:
            raise Invalid(f"takes both {' and '.join(COST_KEYS)} or neither (neither: those of the training "
                          "configuration's metrics, their owner)", show_value=False)
        return raw

    auc_roc_drop: Fraction  # alert when the day's AUC ROC is this much below the version's evaluation figure
    average_precision_drop: Fraction
    min_precision: Fraction  # alert when the day's precision at the decision threshold is below this
    min_frauds: Annotated[int, Field(ge=0)]  # fewer labelled frauds that day: no verdict
    missed_fraud_cost: Annotated[float, Field(ge=0)]  # the cost model of the expected cost per day
    false_alarm_cost: Annotated[float, Field(ge=0)]
    calibration_days: Annotated[int, Field(ge=1)]  # newest labelled days of the version the estimate is calibrated on
    calibration_min_frauds: Annotated[int, Field(ge=1)]  # fewer labelled frauds there: no estimate


class MonitoringConfig(BaseModel):
    """monitoring.yaml. ``psi_warn``, ``psi_alert``, ``ks_p_value`` and ``ks_statistic`` are required.
    Validated with the context ``{"columns": [...]}`` (the model inputs of the
    pipeline monitored), ``exclude_columns`` must name some of them and ``min_drifted_columns`` must
    be reachable; built in code without it, only the shape is checked."""

    model_config = STRICT

    # The drift thresholds have no default here nor anywhere else: the file holds them (a file without
    # one is refused naming the key), and include.drift.stats and the ML monitor page take them from it.
    psi_warn: Annotated[float, Field(gt=0)]
    psi_alert: float
    ks_p_value: Annotated[float, lies_in(0, 1, open_ends=True)]
    ks_statistic: Fraction
    # a list in the file (strict mode would want a Python tuple); a bare string is refused, never split
    exclude_columns: Annotated[tuple[Annotated[str, one_of("column", _columns)], ...], Field(strict=False)] = ()
    # after exclude_columns: its bound depends on them
    min_drifted_columns: Annotated[int, Field(ge=1)] = 1
    performance: PerformanceConfig | None = None  # None: the file has no performance section
    cooldown_days: Annotated[int, Field(ge=0)] = 7

    @field_validator("psi_alert")
    @classmethod
    def _alert_above_warning(cls, value: float, info: ValidationInfo) -> float:
        warn = info.data.get("psi_warn")
        if warn is not None and value < warn:  # an alert below its warning level alerts on every warning
            raise Invalid(f"must be >= psi_warn ({warn})")
        return value

    @field_validator("exclude_columns")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise Invalid(f"needs each column once, got {list(value)}", show_value=False)
        return value

    @field_validator("min_drifted_columns")
    @classmethod
    def _reachable(cls, value: int, info: ValidationInfo) -> int:
        columns, excluded = _columns(info), info.data.get("exclude_columns")
        if columns is not None and excluded is not None:
            monitored = len(columns) - len(excluded) + 1  # the score is always monitored
            if value > monitored:  # the drift alert could never fire
                raise Invalid(f"must be <= {monitored} (the monitored columns: {len(columns)} model inputs "
                              f"less {len(excluded)} excluded, plus the score)")
        return value


def config_path(pipeline: str | None = None) -> Path:
    """The monitoring file of ``pipeline`` (None: the default pipeline): the file its environment
    variable names (blank: unset), else its package's."""
    return pipelines.get(pipeline).config_file("monitoring")


def load_monitoring_config(path: str | Path | None = None, *, columns: Sequence[str] | None = None,
                           pipeline: str | None = None) -> MonitoringConfig:
    """The validated thresholds of ``pipeline`` (None: the default pipeline), read from ``path`` or
    :func:`config_path`. ``columns``: the model inputs of the pipeline monitored (its
    ``exclude_columns`` must be among them); None: those its spec names. A ``performance`` section
    without the costs takes the pipeline's training configuration's (read with its loader)."""
    spec = pipelines.get(pipeline)
    if columns is None:
        columns = spec.resolve_model_inputs()
    path = Path(path) if path else config_path(spec.name)
    raw = read_yaml(path)
    if isinstance(raw, dict) and isinstance(raw.get("performance"), dict):
        raw = {**raw, "performance": _with_costs(raw["performance"], spec.name, path)}
    return validate_config(MonitoringConfig, raw, str(path), context={"columns": list(columns)},
                           top_level="")  # flat: thresholds, with one section (performance)


def _with_costs(section: dict[str, Any], pipeline: str, path: Path) -> dict[str, Any]:
    """``section`` with the cost model of ``pipeline``'s training configuration where it gives neither
    cost; as it is otherwise (a warning when its costs differ from the training configuration's)."""
    from include.config import ConfigError

    given = set(COST_KEYS) & section.keys()
    if len(given) == 1:
        return section  # refused by the schema, naming both keys
    try:
        owned, source = _training_costs(pipeline)
    except ConfigError:
        if given:  # the file's own costs need no training configuration
            return section
        raise
    if not given:
        return {**section, **owned}
    if {key: section[key] for key in COST_KEYS} != owned:
        log.warning("%s: performance costs %s differ from those of the training configuration %s (%s), "
                    "which set the decision threshold; monitoring uses the file's", path,
                    {key: section[key] for key in COST_KEYS}, source, owned)
    return section


def _training_costs(pipeline: str) -> tuple[dict[str, float], str]:
    """The cost model of ``pipeline``'s training configuration and its file, read once per version of
    the file (the ML monitor page loads the monitoring configuration on every request)."""
    from include.training.config import config_path

    path = config_path(pipeline)
    stat = path.stat() if path.is_file() else None
    return _costs_of(str(path), stat.st_mtime_ns if stat else None, stat.st_size if stat else None)


@functools.lru_cache(maxsize=8)
def _costs_of(path: str, _mtime_ns: int | None, _size: int | None) -> tuple[dict[str, float], str]:
    from include.training.config import load_training_config

    training = load_training_config(path)
    return {key: getattr(training.metrics, key) for key in COST_KEYS}, training.source

"""Monitoring thresholds (include/drift/monitoring.yaml or the file named by BATCHML_MONITORING_CONFIG)
as a schema: pydantic models with the types, ranges, the columns that must exist and the rules across
fields. A file that breaks a rule is refused before anything is read or written, with one line per
broken rule naming the file, the key, the value and the rule (include/schema.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from include.schema import STRICT, Fraction, Invalid, lies_in, one_of, read_yaml, validate_config

DEFAULT_PATH = Path(__file__).with_name("monitoring.yaml")


def _columns(info: ValidationInfo) -> list[str] | None:
    return (info.context or {}).get("columns")


class PerformanceConfig(BaseModel):
    """The ``performance`` section: alerts on the labels arriving each day, the cost model and the
    estimate of the days whose labels have not arrived. No key has a default in code: a section
    without one is refused naming it (a file without the section monitors no performance)."""

    model_config = STRICT

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


def load_monitoring_config(path: str | Path | None = None, *, columns: Sequence[str] | None = None
                           ) -> MonitoringConfig:
    """The validated thresholds. ``columns``: the model inputs of the pipeline monitored (its
    ``exclude_columns`` must be among them); None: the reference (fraud) pipeline's."""
    if columns is None:
        from include.pipelines.fraud.features.baseline import MODEL_INPUTS

        columns = MODEL_INPUTS
    path = Path(path or os.environ.get("BATCHML_MONITORING_CONFIG", "").strip() or DEFAULT_PATH)  # blank: unset
    return validate_config(MonitoringConfig, read_yaml(path), str(path), context={"columns": list(columns)},
                           top_level="")  # flat: thresholds, with one section (performance)

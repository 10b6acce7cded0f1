"""Monitoring thresholds (include/drift/monitoring.yaml or the file named by BATCHML_MONITORING_CONFIG)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from include.config import dataclass_from

DEFAULT_PATH = Path(__file__).with_name("monitoring.yaml")


@dataclass(frozen=True)
class PerformanceConfig:
    auc_roc_drop: float = 0.05
    average_precision_drop: float = 0.15
    min_frauds: int = 10


@dataclass(frozen=True)
class MonitoringConfig:
    psi_warn: float = 0.1
    psi_alert: float = 0.2
    ks_p_value: float = 0.05
    ks_statistic: float = 0.1
    min_drifted_columns: int = 1
    exclude_columns: tuple[str, ...] = ()
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    cooldown_days: int = 7


def load_monitoring_config(path: str | Path | None = None) -> MonitoringConfig:
    import yaml

    path = Path(path or os.environ.get("BATCHML_MONITORING_CONFIG", DEFAULT_PATH))
    raw = yaml.safe_load(path.read_text()) or {}
    performance = dataclass_from(PerformanceConfig, raw.pop("performance", None), str(path), "performance")
    return dataclass_from(MonitoringConfig, raw, str(path), performance=performance,
                          exclude_columns=tuple(raw.get("exclude_columns") or ()))

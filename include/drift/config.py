"""Monitoring thresholds (include/drift/monitoring.yaml or the file named by BATCHML_MONITORING_CONFIG)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from include.config import ConfigError, dataclass_from

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
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    performance = dataclass_from(PerformanceConfig, raw.pop("performance", None), str(path), "performance")
    cfg = dataclass_from(MonitoringConfig, raw, str(path), performance=performance,
                         exclude_columns=tuple(raw.get("exclude_columns") or ()))
    check_thresholds(cfg, str(path))
    return cfg


def check_thresholds(cfg: MonitoringConfig, where: str) -> None:
    """ConfigError naming the key of the first threshold that cannot work: a PSI alert below its
    warning (or not positive) would alert on every day, a p-value outside (0, 1) never or always."""
    perf = cfg.performance
    rules = [
        ("psi_warn", cfg.psi_warn > 0, "must be > 0"),
        ("psi_alert", cfg.psi_alert >= cfg.psi_warn, f"must be >= psi_warn ({cfg.psi_warn})"),
        ("ks_p_value", 0 < cfg.ks_p_value < 1, "must lie in (0, 1)"),
        ("ks_statistic", 0 <= cfg.ks_statistic <= 1, "must lie in [0, 1]"),
        ("min_drifted_columns", cfg.min_drifted_columns >= 1, "must be >= 1"),
        ("cooldown_days", cfg.cooldown_days >= 0, "must be >= 0"),
        ("performance.auc_roc_drop", 0 <= perf.auc_roc_drop <= 1, "must lie in [0, 1]"),
        ("performance.average_precision_drop", 0 <= perf.average_precision_drop <= 1, "must lie in [0, 1]"),
        ("performance.min_frauds", perf.min_frauds >= 0, "must be >= 0"),
    ]
    for key, holds, rule in rules:
        if not holds:
            value = getattr(perf, key.split(".")[1]) if key.startswith("performance.") else getattr(cfg, key)
            raise ConfigError(f"{where}: '{key}' {rule}, got {value!r}")

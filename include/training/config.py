"""The training configuration (include/training/training.yaml, or the file named by
BATCHML_TRAINING_CONFIG), parsed into typed, validated objects.

Only the standard library and PyYAML are imported: the training DAG reads this at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.config import ConfigError, dataclass_from

DEFAULT_PATH = Path(__file__).with_name("training.yaml")
FAMILIES = ("logistic_regression", "xgboost", "lightgbm", "pytorch_mlp")
CLASS_WEIGHTS = ("none", "sqrt", "balanced")
PRIMARY_METRICS = ("average_precision", "auc_roc", "card_precision")


@dataclass(frozen=True)
class WindowConfig:
    train_days: int = 14
    gap_days: int = 7
    test_days: int = 7
    folds: int = 2


@dataclass(frozen=True)
class MetricsConfig:
    primary: str = "average_precision"
    top_k: int = 100
    missed_fraud_cost: float = 1000.0
    false_alarm_cost: float = 50.0


@dataclass(frozen=True)
class GateConfig:
    min_improvement: float = 0.005
    auc_roc_tolerance: float = 0.01
    card_precision_tolerance: float = 0.02
    min_eval_frauds: int = 30
    floor: dict[str, float] = field(default_factory=lambda: {"average_precision": 0.3, "auc_roc": 0.8})
    require_approval: bool = False


@dataclass(frozen=True)
class TuningConfig:
    trials: int = 8
    timeout_seconds: float = 240.0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    class_weight: str = "sqrt"
    trials: int | None = None


@dataclass(frozen=True)
class TrainingConfig:
    experiment: str
    registered_model: str
    models: tuple[ModelSpec, ...]
    seed: int = 42
    window: WindowConfig = WindowConfig()
    metrics: MetricsConfig = MetricsConfig()
    gate: GateConfig = GateConfig()
    trials: int = 8
    timeout_seconds: float = 240.0
    source: str = ""

    def spec(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ConfigError(f"{self.source}: no model named {name!r}; known: {[m.name for m in self.models]}")

    def trials_for(self, spec: ModelSpec) -> int:
        return spec.trials if spec.trials is not None else self.trials


def config_path() -> Path:
    return Path(os.environ.get("BATCHML_TRAINING_CONFIG", DEFAULT_PATH))


def load_training_config(path: str | Path | None = None) -> TrainingConfig:
    import yaml

    path = Path(path) if path else config_path()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"training configuration not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_training_config(raw, source=str(path))


# The top-level keys of training.yaml: a misspelt section would otherwise silently fall back to defaults.
TOP_LEVEL_KEYS = ("experiment", "registered_model", "seed", "window", "metrics", "gate", "tuning", "models")


def parse_training_config(raw: dict[str, Any], source: str = "<dict>") -> TrainingConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {unknown}; known: {list(TOP_LEVEL_KEYS)}")
    if not isinstance(raw.get("seed", 42), int) or isinstance(raw.get("seed"), bool):
        raise ConfigError(f"{source}: 'seed' must be an int, got {raw['seed']!r}")
    for key in ("experiment", "registered_model", "models"):
        if not raw.get(key):
            raise ConfigError(f"{source}: '{key}' is required")
    models = []
    for i, m in enumerate(raw["models"]):
        where = f"{source}: models[{i}]"
        if not isinstance(m, dict) or "name" not in m or "family" not in m:
            raise ConfigError(f"{where} needs a name and a family")
        if m["family"] not in FAMILIES:
            raise ConfigError(f"{where} ({m['name']}): unknown family {m['family']!r}; known: {list(FAMILIES)}")
        if m.get("class_weight", "sqrt") not in CLASS_WEIGHTS:
            raise ConfigError(f"{where} ({m['name']}): class_weight must be one of {list(CLASS_WEIGHTS)}")
        models.append(dataclass_from(ModelSpec, m, f"{where} ({m['name']})"))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: model names must be unique, got {names}")
    tuning = dataclass_from(TuningConfig, raw.get("tuning"), source, "tuning")
    cfg = TrainingConfig(
        experiment=raw["experiment"],
        registered_model=raw["registered_model"],
        models=tuple(models),
        seed=int(raw.get("seed", 42)),
        window=dataclass_from(WindowConfig, raw.get("window"), source, "window"),
        metrics=dataclass_from(MetricsConfig, raw.get("metrics"), source, "metrics"),
        gate=dataclass_from(GateConfig, raw.get("gate"), source, "gate"),
        trials=tuning.trials,
        timeout_seconds=float(tuning.timeout_seconds),
        source=source,
    )
    if cfg.metrics.primary not in PRIMARY_METRICS:
        raise ConfigError(f"{source}: metrics.primary must be one of {list(PRIMARY_METRICS)}")
    if min(cfg.window.train_days, cfg.window.test_days) < 1 or cfg.window.folds < 1 or cfg.window.gap_days < 0:
        raise ConfigError(f"{source}: window needs train_days, test_days and folds >= 1 and gap_days >= 0")
    return cfg

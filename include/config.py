"""Where things live, chosen by environment, never by editing code.

Only the standard library is imported here: DAG files use this at parse time.

| variable | default | meaning |
|---|---|---|
| BATCHML_DATA_ROOT | <repo>/data | the data lake root (landing, raw, features, quarantine, staging, gx) |
| MLFLOW_TRACKING_URI | sqlite:///<data root>/mlflow/mlflow.db | MLflow tracking and registry (an `mlflow server` URL in production) |
| BATCHML_MLFLOW_ARTIFACTS | <data root>/mlflow/artifacts | artifact location of new experiments (sqlite tracking only) |
| BATCHML_WAREHOUSE_URL | sqlite:///<data root>/warehouse.db | SQLAlchemy URL of the warehouse (promotions, predictions, drift) |
| BATCHML_TRAINING_CONFIG | the default pipeline's training.yaml (include/pipelines/<name>/) | model specs, windows, tuning budget, promotion gate, cost model |
| BATCHML_MONITORING_CONFIG | the default pipeline's monitoring.yaml | drift and performance thresholds, excluded columns |
| BATCHML_PLAUSIBILITY_CONFIG | the default pipeline's plausibility.yaml | plausibility bounds of the raw feeds (duplicates, label rate, shares) |
| BATCHML_<PIPELINE>_<KIND>_CONFIG | the pipeline's own file | the same, for any pipeline (include/spec.py config_file) |
| BATCHML_TIME_SCHEDULES | on | off: DAGs run on manual and Asset triggers only (the demo's past dates) |
| BATCHML_SCORING_DEADLINE_MINUTES | 120 | a scoring run not finished this long after it was queued is reported late |
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent



def __getattr__(name: str):
    """``LABEL_DELAY_DAYS``: labels of day D are known on day D + LABEL_DELAY_DAYS, the default
    pipeline's ``label_delay_days`` (its spec, single source). Looked up on first use, so that importing
    this module stays on the standard library (DAG files import it while parsed)."""
    if name == "LABEL_DELAY_DAYS":
        from include.pipelines import get

        return get().label_delay_days
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_root() -> Path:
    """Root folder of the data lake."""
    return Path(os.environ.get("BATCHML_DATA_ROOT", REPO_ROOT / "data")).resolve()


# SQLite lets one writer in at a time; parallel training tasks wait up to this long for the lock
# instead of failing with "database is locked" (tests/integration/test_mlflow_sqlite_concurrency.py).
SQLITE_BUSY_TIMEOUT_S = 60


def time_schedules_enabled() -> bool:
    """Whether DAGs keep their clock schedules (ingest daily, training weekly). ``BATCHML_TIME_SCHEDULES=off``
    leaves them to manual and Asset triggers only: what `make demo` runs with, since its simulated
    dates lie in the past and the real calendar's runs would find no data. Read at parse time: an
    environment lookup, no I/O."""
    value = os.environ.get("BATCHML_TIME_SCHEDULES", "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"BATCHML_TIME_SCHEDULES must be 'on' or 'off', got {value!r}")
    return value == "on"


def scoring_deadline_minutes() -> float:
    """Minutes after a scoring run is queued before its DeadlineAlert reports it late. Read at parse
    time (an environment lookup); the production-path test sets a fraction of a minute to see a real
    scheduler fire it."""
    value = os.environ.get("BATCHML_SCORING_DEADLINE_MINUTES", "120").strip()
    try:
        minutes = float(value)
    except ValueError:
        minutes = 0.0
    if not minutes > 0:
        raise ValueError(f"BATCHML_SCORING_DEADLINE_MINUTES must be a number of minutes > 0, got {value!r}")
    return int(minutes) if minutes.is_integer() else minutes


def mlflow_tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{data_root() / 'mlflow' / 'mlflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}"


def mlflow_artifact_root() -> Path:
    return Path(os.environ.get("BATCHML_MLFLOW_ARTIFACTS", data_root() / "mlflow" / "artifacts")).resolve()


def warehouse_url() -> str:
    return os.environ.get("BATCHML_WAREHOUSE_URL") or f"sqlite:///{data_root() / 'warehouse.db'}"


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file, the key, the value and the rule
    (the schemas are pydantic models, validated by include/schema.py:validate_config)."""

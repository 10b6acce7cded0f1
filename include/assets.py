"""The Assets that connect the DAGs. Names are logical; the paths live in include.storage."""

from __future__ import annotations

from airflow.sdk import Asset

RAW_TRANSACTIONS = Asset(name="raw_transactions", uri="batchml://lake/raw/transactions")
RAW_LABELS = Asset(name="raw_labels", uri="batchml://lake/raw/labels")
FEATURES_BASELINE = Asset(name="features_baseline", uri="batchml://lake/features/baseline")
# Emitted by monitoring when drift or a performance drop is confirmed; schedules training.
DRIFT_ALERT = Asset(name="drift_alert", uri="batchml://alerts/drift")
# Emitted when the champion alias moves; scoring picks up the new champion from the registry.
CHAMPION_MODEL = Asset(name="champion_model", uri="batchml://registry/fraud-detector/champion")
PREDICTIONS = Asset(name="predictions_fraud", uri="batchml://lake/predictions/fraud")
# The shadow version's scores (dags/shadow_scoring.py; docs/shadow.md): read by no consumer as the decision.
SHADOW_PREDICTIONS = Asset(name="shadow_predictions_fraud", uri="batchml://lake/predictions/fraud_shadow")

"""The fraud pipeline's spec (include/spec.py): card transactions scored daily, labelled 7 days later
(shared/SIMULATOR.md). The platform modules read their fraud values from here."""

from include.spec import declare

SPEC = declare({
    "name": "fraud",
    "description": "card-fraud detection: every transaction of a day scored the next morning",
    "entity_key": ("transaction_id",),
    "event_time": "tx_datetime",
    "label": "tx_fraud",
    # labels of day D are known on day D + 7 (shared/SIMULATOR.md)
    "label_delay_days": 7,
    "cadence": "daily",
    "datasets": (
        # columns: the canonical schema of every published partition (include/ingest.py casts to it)
        {"name": "raw_transactions", "zone": "raw", "dataset": "transactions", "suite": "raw_transactions",
         "columns": {"transaction_id": "int64", "tx_datetime": "datetime64[us, UTC]", "customer_id": "int64",
                     "terminal_id": "int64", "tx_amount": "float64"}},
        {"name": "raw_labels", "zone": "raw", "dataset": "labels", "suite": "raw_labels",
         "columns": {"transaction_id": "int64", "tx_fraud": "int64", "tx_fraud_scenario": "int64"}},
        {"name": "features_baseline", "zone": "features", "dataset": "baseline", "suite": "features_baseline"},
        {"name": "predictions_fraud", "zone": "predictions", "dataset": "fraud", "suite": "predictions"},
    ),
    "feature_job": "include.jobs.build_features",
    "model_inputs": "include.pipelines.fraud.features.baseline:MODEL_INPUTS",
    "registered_model": "fraud-detector",
    "primary_metric": "average_precision",
    "business_metric": "expected_cost",
    "training_config": "include/pipelines/fraud/training.yaml",
    "monitoring_config": "include/pipelines/fraud/monitoring.yaml",
    # the bounds learnt from the recent published days (include/validation/plausibility.py: the mechanism)
    "plausibility": {"config": "include/pipelines/fraud/plausibility.yaml",
                     "schema_ref": "include.pipelines.fraud.plausibility:FraudPlausibility"},
})

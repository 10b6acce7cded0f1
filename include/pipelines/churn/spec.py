"""The churn pipeline's spec (include/spec.py; docs/churn.md): every Monday, the active customers
scored for cancelling within 30 days, labelled 30 days after the snapshot. The landing sources are
the simulator's (``churn_<table>``, include/pipelines/churn/simulator.py); the features and the GX
suites are :mod:`include.pipelines.churn.features` and :mod:`include.pipelines.churn.suites`."""

from include.spec import declare


def _raw(table: str) -> dict[str, str]:
    name = f"churn_{table}"
    return {"name": name, "zone": "raw", "dataset": name, "suite": name, "source": name}


SPEC = declare({
    "name": "churn",
    "description": "customer churn: the active customers scored weekly for cancelling in the next 30 days",
    "entity_key": ("customer_id",),
    "event_time": "snapshot_date",
    "label": "churned_30d",
    # a snapshot's label (cancelled within 30 days) is known 30 days after it (simulator.LABEL_HORIZON_DAYS)
    "label_delay_days": 30,
    "cadence": "weekly",
    "datasets": (
        *(_raw(t) for t in ("customers", "usage_events", "support_contacts", "payment_failures",
                            "cancellations", "labels")),
        {"name": "churn_features", "zone": "features", "dataset": "churn", "suite": "churn_features"},
        {"name": "predictions_churn", "zone": "predictions", "dataset": "churn", "suite": "churn_predictions"},
    ),
    "feature_job": "include.pipelines.churn.features",
    "model_inputs": "include.pipelines.churn.features:MODEL_INPUTS",
    "registered_model": "churn-predictor",
    "primary_metric": "average_precision",
    # recall of the churners among the top decile of scores (docs/churn.md, "Business metric")
    "business_metric": "recall_top_decile",
    "training_config": "include/pipelines/churn/training.yaml",
    "monitoring_config": "include/pipelines/churn/monitoring.yaml",
})

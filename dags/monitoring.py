"""
# monitoring: drift (PSI/KS) and performance of each scored day; closes the loop to retraining

**Schedule:** when `predictions_fraud` is published (Asset), for the day(s) it carries.
**Backfill:** params `start` and `end`. Thresholds: `include/drift/monitoring.yaml`
(or `BATCHML_MONITORING_CONFIG`).

1. `check_drift` compares, for each day in order, every model feature and the score with the
   reference distributions stored with the model version that scored the day: PSI on the reference's
   quantile bins (categories for the 0/1 flags; warn 0.1, alert 0.2) and the two-sample KS test (p < 0.05
   and statistic > 0.1). It also scores the labels arriving that day (transactions of day − 7) and
   compares AUC ROC and average precision with the version's evaluation figures. Results: warehouse
   tables `drift_metrics` and `alerts`, `reports/drift/ds=<day>/report.{json,html}`.
2. `should_retrain` lets the run go on only when an alert is new: one drift episode triggers one
   retraining within `cooldown_days` (7, the label delay: a retraining before the drifted days'
   labels arrive learns nothing new), whichever champion version raised it.
3. `emit_drift_alert` sends the alert to the task log and to the channels configured in Airflow
   (e-mail: Variable `batchml_alert_emails` + connection `smtp_default`; Slack: connection
   `slack_alerts`), then emits `drift_alert` (extra `{"ds": day}`), which schedules the training DAG.
   An unreachable channel is logged as an error and does not hold the alert back.

**When it fails:** a missing partition is retried (scoring may be late). Alerts are not failures:
the run is green, the alert is in the task log, the `alerts` table and the report.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from include.assets import DRIFT_ALERT, PREDICTIONS


@task(retries=3, retry_delay=dt.timedelta(minutes=2), retry_exponential_backoff=True)
def check_drift(params: dict | None = None, triggering_asset_events=None) -> list[dict]:
    from include.drift.config import load_monitoring_config
    from include.drift.monitor import monitor_day
    from include.run_days import days_to_process
    from include.training.config import load_training_config

    try:
        days = days_to_process(params, triggering_asset_events, "monitor")
    except ValueError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc  # a retry cannot fix the run's parameters
    cfg, name = load_monitoring_config(), load_training_config().registered_model
    return [monitor_day(day, name, cfg) for day in days]


@task.short_circuit
def should_retrain(results: list[dict]) -> bool:
    return any(r["triggers_training"] for r in results)


@task(outlets=[DRIFT_ALERT])
def emit_drift_alert(results: list[dict], outlet_events=None) -> dict:
    from airflow.sdk import get_current_context
    from batchml.notifiers import AlertNotifier

    alert = [r for r in results if r["triggers_training"]][-1]
    notifier = AlertNotifier(subject=f"drift alert ds={alert['ds']}: model version {alert['model_version']}",
                             message="\n".join([*alert["alerts"], f"report: {alert['report']}",
                                                "the training DAG is scheduled by this alert"]))
    notifier.notify(get_current_context())
    outlet_events[DRIFT_ALERT].extra = {"ds": alert["ds"], "model_version": alert["model_version"]}
    return {"ds": alert["ds"], "alerts": alert["alerts"], "notified": notifier.delivered}


@dag(
    dag_id="monitoring",
    schedule=[PREDICTIONS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    params={
        "start": Param(None, type=["null", "string"], format="date", description="first day (backfill)"),
        "end": Param(None, type=["null", "string"], format="date", description="last day (backfill)"),
    },
    tags=["batchml", "fraud", "monitoring", "drift"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    doc_md=__doc__,
)
def monitoring():
    results = check_drift()
    should_retrain(results) >> emit_drift_alert(results)


monitoring()

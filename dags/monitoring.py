"""
# monitoring: drift (PSI/KS) and performance of each scored day; closes the loop to retraining

**What it does.** For every scored day, compares the features and the scores with the reference
distributions of the model version that scored them, checks the model on the labels that arrived,
writes a report, and when an alert is new, emits `drift_alert`, which schedules `training`.

**Schedule:** when `predictions_fraud` is published (Asset), for the day(s) it carries.
**Backfill:** params `start` and `end`; a rerun of a day replaces its rows and report.
Thresholds: `include/pipelines/fraud/monitoring.yaml` (or `BATCHML_MONITORING_CONFIG`).

**Inputs:** `predictions/fraud/ds=<day>/`, `features/baseline/ds=<day>/`, `raw/labels/ds=<day>/` (the
labels of day − 7), the reference distributions logged with the model version in MLflow.
**Outputs:** warehouse tables `drift_metrics` (PSI and KS per column and day) and `alerts`,
`reports/drift/ds=<day>/report.{json,html}`, Asset `drift_alert` (extra `{"ds", "model_version"}`), Asset
`champion_model` when `review_shadow` promotes the shadow challenger.

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `check_drift` | skips (green, with the reason) days **not over yet** in UTC and days **before the first champion** (no predictions: nothing to monitor); for each other day in order: PSI on the reference's quantile bins (categories for the 0/1 flags; warn 0.1, alert 0.2) and the two-sample KS test (p < 0.05 and statistic > 0.1) of every model input and the score; AUC ROC and average precision of the labels arriving that day against the version's evaluation figures | **bad params** or invalid thresholds file, or a day **scored by two model versions** (not retried). **Partition missing, MLflow or warehouse unreachable** (retried 3x with backoff) | params: trigger with `{"start": ..., "end": ...}`. Mixed versions: rerun `scoring` for the day, then clear `check_drift`. Missing: wait for / rerun `scoring`. The **Drift report** link opens the day's report |
| `should_retrain` | lets the run go on only when an alert is new: one drift episode triggers one retraining within `cooldown_days` (7, the label delay) **on either side** of the day, whichever champion version raised it. An episode already started on the day itself (an earlier run: a rerun, a clear, a late day's recomputation) or on a day within the window deduplicates; the episodes are read from the warehouse `alerts` and from the lake's reports (`started_episode`), so a lost or restored warehouse re-triggers none | — (a skip of `emit_drift_alert` is the normal outcome of a quiet night or a known episode) | nothing |
| `review_shadow` | reviews the `shadow` version on the realised figures of both models (`performance_days`, by label-arrival day) up to the run's newest day ([docs/shadow.md](../docs/shadow.md)): one **awaiting shadow evidence** (training.yaml `shadow.days` > 0) is promoted as of that day when it has `shadow.days` label days and `shadow.min_frauds` frauds and its mean `shadow.metric` is not below the champion's by more than `shadow.tolerance` (champion alias moved, a `promotions` row as of the day citing both means, emits `champion_model`), else refused (alias `shadow` removed). **Skipped** (green, with the state: "3 of 7 label days", observation figures, no shadow) whenever nothing is promoted | registry or warehouse unreachable (retried) | clear the task: a rerun changes nothing, and one interrupted after the outcome was tagged on the version completes it |
| `emit_drift_alert` | sends the alert to the task log and the configured channels (e-mail: Variable `batchml_alert_emails` + connection `smtp_default`; Slack: connection `slack_alerts`), then emits `drift_alert` | not an unreachable channel (that is logged as an error and the others still go out): a metadata-DB problem while emitting the Asset (retried) | clear the task; the alert is already in the `alerts` table and the report |

**Operations** (reruns and clears, late and out-of-order days, lost state, time zones, odd dates): [docs/operations.md](../docs/operations.md).
Drift is a result, not a failure: the run is green and the alert is in the task log, the `alerts`
table and the report. Why `should_retrain` is a plain short-circuit task and `emit_drift_alert` a
plain task, not operators: both are three lines of wiring around the Asset and the notifier.

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task
from batchml.defaults import day_range_params, default_args
from batchml.operators import DriftCheckOperator

from include.assets import CHAMPION_MODEL, DRIFT_ALERT, PREDICTIONS


@task.short_circuit
def should_retrain(results: list[dict]) -> bool:
    from include.drift.alerts import triggers_training

    return triggers_training(results)


@task(outlets=[DRIFT_ALERT])
def emit_drift_alert(results: list[dict], outlet_events=None) -> dict:
    from airflow.sdk import get_current_context
    from batchml.notifiers import AlertNotifier

    from include.drift.alerts import drift_alert

    alert = drift_alert(results)  # the newest day that starts a drift episode, and its text
    notifier = AlertNotifier(subject=alert.subject, message=alert.message)
    notifier.notify(get_current_context())
    outlet_events[DRIFT_ALERT].extra = alert.event_extra
    return alert.summary(notifier.delivered)


@task(outlets=[CHAMPION_MODEL], retries=2)
def review_shadow(results: list[dict], outlet_events=None) -> dict:
    import logging

    from airflow.sdk.exceptions import AirflowSkipException

    from include.storage import as_date
    from include.training.config import load_training_config
    from include.training.shadow import review

    days = [as_date(r["ds"]) for r in results or [] if r.get("ds")]
    if not days:
        raise AirflowSkipException("no day monitored in this run: no new shadow evidence to review")
    state = review(load_training_config(), max(days))
    logging.getLogger(__name__).info("shadow review: %s", state["reason"])
    if not state["promoted"]:
        raise AirflowSkipException(state["reason"])  # skipped: no champion_model event
    outlet_events[CHAMPION_MODEL].extra = {"version": state["version"], "as_of": state["day"]}
    return state


@dag(
    dag_id="monitoring",
    schedule=[PREDICTIONS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    params=day_range_params(),
    tags=["batchml", "fraud", "monitoring", "drift"],
    default_args=default_args("ml-platform", max_retry_delay=dt.timedelta(minutes=20)),
    doc_md=__doc__,
)
def monitoring():
    # the run's days: its start/end params, else the ranges of the predictions_fraud events
    results = DriftCheckOperator(task_id="check_drift", retries=3).output
    should_retrain(results) >> emit_drift_alert(results)
    review_shadow(results)  # after check_drift, which writes both models' performance_days rows


monitoring()

"""
# training: weekly champion/challenger training of the fraud model

**Schedule:** Sundays 03:00 UTC, and whenever monitoring emits `drift_alert` (asset-or-time).
**Manual / backfill:** trigger with param `as_of` (YYYY-MM-DD). A run is *as of* a day: it uses labels
up to that day − 7 (the label delay). Scheduled runs are as of the day before; drift-triggered runs
as of the alert's day. Configuration: `include/training/training.yaml` (or `BATCHML_TRAINING_CONFIG`).

1. `prepare` plans the windows (evaluation block = train, 7-day gap, test ending on the newest
   labelled day; prequential tuning folds shifted back from it), joins feature partitions with the
   labels known by `as_of`, checks the window and publishes `training/baseline/ds=<as_of>/`.
2. `train_model` (mapped, one per model spec: logistic baseline, XGBoost, LightGBM, PyTorch MLP)
   tunes with Optuna on the folds (each trial a nested MLflow run), fits on the evaluation block's
   training window, evaluates on its test window and logs metrics, plots, model, signature and the
   reference distributions monitoring needs. A retried task reuses its finished MLflow run.
3. `select_challenger` registers the family with the best primary metric and points `challenger` at it.
4. `gate` scores the current champion on the same window and decides (margin on the primary metric,
   AUC ROC and CP@100 guardrails, minimum frauds, an absolute floor for the first model). The decision
   goes to MLflow tags and the warehouse `promotions` table.
5. `route` → `approve` (only when `gate.require_approval` is true: a human approves in the UI) →
   `promote` moves `champion` (the replaced one becomes `previous_champion`) and emits `champion_model`;
   or `keep_champion` when the gate said no.
6. `report` logs the leaderboard.

**When it fails:** `prepare` names missing partitions (retryable: ingest or features are late) or an
unusable window (empty, no frauds, missing column: not retried). No alias moves unless `promote`
succeeds. Roll back with `python -m include.registry rollback` (`make rollback`).
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from include.assets import CHAMPION_MODEL, DRIFT_ALERT


def _config():
    from include.training.config import load_training_config

    return load_training_config()


@task(multiple_outputs=True)
def prepare(params: dict | None = None, triggering_asset_events=None, logical_date=None) -> dict:
    from include.storage import MissingInputError
    from include.training.dataset import TrainingDataError
    from include.training.pipeline import prepare as prepare_training
    from include.training.schedule import resolve_as_of

    triggered = [e.extra["ds"] for events in (triggering_asset_events or {}).values() for e in events
                 if e.extra and e.extra.get("ds")]
    as_of = resolve_as_of((params or {}).get("as_of"), triggered, logical_date)
    try:
        return prepare_training(as_of, _config())
    except TrainingDataError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc  # bad data: a retry cannot help
    except MissingInputError:
        raise  # upstream partitions late: retries may find them


@task
def model_names(prepared: dict) -> list[str]:
    return prepared["models"]


@task(pool="training", retries=2, retry_delay=dt.timedelta(minutes=1), retry_exponential_backoff=True)
def train_model(model: str, as_of: str) -> dict:
    from include.training.train import train_family

    return train_family(model, as_of, _config())


@task
def select_challenger(summaries) -> dict:
    from include.training.pipeline import select_challenger as select

    # index access: iterating the lazy XCom sequence logs a spurious "XCom not found" past its end
    return select([summaries[i] for i in range(len(summaries))], _config())


@task
def gate(challenger: dict, run_id: str | None = None) -> dict:
    from include.training.pipeline import run_gate

    return run_gate(challenger, _config(), dag_run_id=run_id or "")


@task.branch
def route(decision: dict) -> str | list[str]:
    if not decision["promote"]:
        return "keep_champion"
    # promote is also a direct downstream of route: it must be in the branch or it would be skipped
    # here; it still waits for approve, which skips it when a human rejects
    return ["approve", "promote"] if _config().gate.require_approval else "promote"


@task(trigger_rule="none_failed_min_one_success", outlets=[CHAMPION_MODEL])
def promote(decision: dict, outlet_events=None) -> dict:
    from include.training.pipeline import promote as promote_version

    result = promote_version(decision, _config())
    outlet_events[CHAMPION_MODEL].extra = {"version": result["champion"], "as_of": result["as_of"]}
    return result


@task
def keep_champion(decision: dict) -> dict:
    import logging

    logging.getLogger(__name__).info("champion kept; version %s not promoted: %s", decision["version"],
                                     decision["reason"])
    return decision


@task(trigger_rule="none_failed_min_one_success")
def report(as_of: str) -> list[dict]:
    import logging

    from include.training.pipeline import format_leaderboard, leaderboard

    cfg = _config()
    rows = leaderboard(as_of, cfg)
    logging.getLogger(__name__).info("leaderboard as of %s:\n%s", as_of, format_leaderboard(rows, cfg.metrics.top_k))
    return rows


@dag(
    dag_id="training",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"), assets=[DRIFT_ALERT]),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    params={"as_of": Param(None, type=["null", "string"], format="date",
                           description="train as of this day (labels up to as_of - 7 days)")},
    tags=["batchml", "fraud", "training", "mlflow"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    doc_md=__doc__,
)
def training():
    prepared = prepare()
    as_of = prepared["as_of"]
    summaries = train_model.partial(as_of=as_of).expand(model=model_names(prepared))
    decision = gate(select_challenger(summaries))
    routed = route(decision)
    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote fraud model version {{ ti.xcom_pull(task_ids='gate')['version'] }} to champion?",
        body="{{ ti.xcom_pull(task_ids='gate')['reason'] }}",
        response_timeout=dt.timedelta(days=2),
    )
    promoted, kept = promote(decision), keep_champion(decision)
    routed >> [approve, promoted, kept]
    approve >> promoted
    [promoted, kept] >> report(as_of)


training()

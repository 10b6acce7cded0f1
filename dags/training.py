"""
# training: weekly champion/challenger training of the fraud model

**What it does.** Builds the training set with the label delay, trains four model families in
parallel with tuning and a fifth model, the mean ensemble of three of them (`mean_ensemble` in
training.yaml), registers the best as `challenger`, compares it with the `champion` on the same
window and promotes it only when it is better.

**Schedule:** Sundays 03:00 UTC, and whenever monitoring emits `drift_alert` (asset-or-time).
**Manual / backfill:** trigger with param `as_of` (YYYY-MM-DD). A run is *as of* a day: it uses labels
up to that day − 7 (the label delay). Scheduled runs are as of the day before; drift-triggered runs
as of the alert's day. A rerun of the same `as_of` creates no new run, version or decision.
Configuration: `include/pipelines/fraud/training.yaml` (or `BATCHML_TRAINING_CONFIG`).

**Inputs:** `features/baseline/ds=*` and `raw/labels/ds=*` of the windows, the MLflow registry, the
warehouse `promotions` table. **Outputs:** `training/baseline/ds=<as_of>/` (examples + manifest),
MLflow runs (experiment `fraud-training`) and model versions with aliases `champion` /
`challenger` / `previous_champion`, a `promotions` row, Asset `champion_model` when the champion moves.

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `prepare` | skips (green, with the reason) an `as_of` **not over yet** in UTC; plans the windows (train, 7-day gap, test ending on the newest labelled day; prequential tuning folds before it), joins features with the labels known by `as_of`, publishes the training set | **unusable window** (empty, no frauds, missing feature column; not retried): the log names the partition. **Unknown `models` param** (not retried): the log lists the configured families. **A slice** of training.yaml reading a column the evaluation frame lacks (not retried): the log names the slice and the columns. **Missing partitions** (retried with backoff): ingest or features are late | unusable: fix the named partition (rerun `features`) or pick another `as_of`. Missing: run the upstream DAGs for the named days, clear `prepare` |
| `model_names` | the model specs to train (mapping) | configuration error | fix `training.yaml` |
| `train_model` (mapped: logistic, XGBoost, LightGBM, PyTorch MLP; pool `training`) | Optuna tuning on the folds (each trial a nested MLflow run), final fit, evaluation, plots, model with signature and the reference distributions monitoring needs | a family failed to train, or the tracking store was unreachable (retried 2x with backoff; a retry reuses a finished run, a half-written one is discarded) | read the family's log; the other families are unaffected but the gate waits for all. Fix, clear the mapped task |
| `select_challenger` | registers the family with the best primary metric (average precision) and points `challenger` at it | registry unreachable (retried) | check `MLFLOW_TRACKING_URI`, clear |
| `gate` | scores the champion on the same window and decides (margin on the primary metric, AUC ROC and CP@100 guardrails, minimum frauds, a floor for the first model, and per slice band of `slices` in training.yaml: a band with at least `min_positives` frauds whose primary metric drops more than `tolerance` below the champion's refuses the challenger, naming the band; [docs/slices.md](../docs/slices.md)); the decision and reason go to MLflow tags and `promotions`, the slice table to the model card. **Shadow** ([docs/shadow.md](../docs/shadow.md)): a challenger not promoted gets the alias `shadow` (scored nightly beside the champion); with `shadow.days` > 0 in training.yaml an approved one is recorded `awaiting_shadow` instead of promoted, and monitoring's `review_shadow` promotes or refuses it on its realised figures | registry or warehouse unreachable (retried) | clear the task; a recorded decision is reused |
| `route` → `approve` | `approve` (only with `gate.require_approval: true`) asks a human in the UI (*Required actions*); a rejection skips `promote` | no answer within 2 days: the task fails | decide in the UI, or clear `approve` |
| `promote` | moves `champion` to the challenger (the replaced one becomes `previous_champion`), tags the version (`promoted_at`, `promoted_as_of`: the registry's record), marks the decision promoted, emits `champion_model`. A decision **already carried out** (a rerun or clear of the run), or for a version a **rollback withdrew** since, is history: `promote` is **skipped** with the reason and nothing moves; a rollback stands until a new training decides otherwise | registry or warehouse unreachable (retried); a malformed decision (not retried) | clear `promote` (idempotent). The **MLflow** link opens the new champion's version |
| `keep_champion` | logs why the challenger was not promoted (rejected, or awaiting shadow evidence) | — | nothing |
| `report` | logs the leaderboard of the run | — | nothing |

No alias moves unless `promote` succeeds. **Operations** (reruns and clears, late and out-of-order days, lost state, time zones, odd dates): [docs/operations.md](../docs/operations.md). Roll back with `python -m include.registry rollback`
(`make rollback`). Why `gate`, `route` and `report` stay plain tasks: each is one call of
`include.training.pipeline` with nothing to configure; the operator is where the alias moves.

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from batchml.defaults import default_args
from batchml.operators import ModelPromotionOperator

from include.assets import CHAMPION_MODEL, DRIFT_ALERT
from include.config import time_schedules_enabled


def _config():
    from include.training.config import load_training_config

    return load_training_config()


@task(multiple_outputs=True)
def prepare(params: dict | None = None, triggering_asset_events=None, logical_date=None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from include.run_days import NothingToDo, check_not_future, event_days
    from include.storage import MissingInputError
    from include.training.dataset import TrainingDataError
    from include.training.pipeline import prepare as prepare_training
    from include.training.schedule import resolve_as_of

    try:  # the as_of param, else the newest day of the triggering drift alerts, else the day before the run
        triggered = [d.isoformat() for d in event_days(triggering_asset_events)]
        as_of = resolve_as_of((params or {}).get("as_of"), triggered, logical_date)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc  # no or malformed as_of: a retry cannot help
    try:
        check_not_future([as_of], "train as of")  # what is known by as_of is not known before it ends
    except NothingToDo as exc:
        raise AirflowSkipException(str(exc)) from None  # skipped, not red: no run, version or decision
    try:
        return prepare_training(as_of, _config(), models=(params or {}).get("models") or None)
    except (TrainingDataError, ValueError) as exc:
        raise AirflowFailException(str(exc)) from exc  # bad data or an unknown model: a retry cannot help
    except MissingInputError:
        raise  # upstream partitions late: retries may find them


@task
def model_names(prepared: dict) -> list[str]:
    return prepared["models"]


@task(pool="training", retries=2, retry_delay=dt.timedelta(minutes=1))
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
    schedule=(AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * 0", timezone="UTC"), assets=[DRIFT_ALERT])
              if time_schedules_enabled() else [DRIFT_ALERT]),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    params={"as_of": Param(None, type=["null", "string"], format="date",
                           description="train as of this day (labels up to as_of - 7 days)"),
            "models": Param(None, type=["null", "array"], items={"type": "string"},
                            description="train only these families of training.yaml (default: all)")},
    tags=["batchml", "fraud", "training", "mlflow"],
    default_args=default_args("ml-platform"),
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
    promoted = ModelPromotionOperator(
        task_id="promote",
        decision=decision,
        trigger_rule="none_failed_min_one_success",  # after route, and after approve when it ran
        outlets=[CHAMPION_MODEL],
    )
    kept = keep_champion(decision)
    routed >> [approve, promoted, kept]
    approve >> promoted
    [promoted, kept] >> report(as_of)


training()

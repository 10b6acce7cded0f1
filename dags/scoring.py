"""
# scoring: nightly batch scoring with the champion, in Spark

**What it does.** Scores every transaction of the day with the model that was champion on that day
and publishes the predictions, with their lineage, to the lake and the warehouse.

**Schedule:** when `features_baseline` is published (Asset), for the day(s) it carries: in a normal
night shortly after ingest and features. **Deadline:** a run not finished **2 hours after it was
queued** (`BATCHML_SCORING_DEADLINE_MINUTES`, default 120) is reported late (`deadline_missed` row in the warehouse `alerts` table, e-mail / Slack
when configured); the run itself goes on. **Backfill:** trigger with params `start` and `end`. Each
day is scored by the model that was champion on that day (the `promotions` table; the `champion`
alias when there is no promotion history), so rescoring history is reproducible; a rerun replaces
the day, never duplicates it. A promotion by a training run as of day D takes effect from D + 1.

**Rollback** (`make rollback`, `python -m include.registry rollback`) takes effect at once: the
`champion` alias goes back to `previous_champion`, and the rolled-back version is **withdrawn**:
- **tonight**: the day the rollback is done and every day after it are scored by the restored version;
- **rescoring a past day** that the withdrawn version scored (from the day after its promotion's
  `as_of`) uses the restored version too; the rollback prints `rescore_from`, the first such day:
  rescore from there with params `start`/`end` to replace the withdrawn version's predictions
  (nothing is rescored by itself);
- days **before** the withdrawn version's promotion keep their historical champion;
- a rollback stands until a training recorded **after** it promotes a new champion through the gate
  (from that training's `as_of` + 1); a promotion recorded before it never comes back.

The rule lives in `include.warehouse.champion_timeline`; `python -m include.registry show` lists the
versions and aliases.

**Inputs:** `features/baseline/ds=<day>/`, the MLflow registry (`MLFLOW_TRACKING_URI`), the
warehouse `promotions` table. **Outputs:** `predictions/fraud/ds=<day>/data.parquet`, warehouse table
`predictions` (model name, version, run id, threshold, `flagged`, `scored_at` on every row), Asset
`predictions_fraud` (extra `{"start", "end"}`), which schedules `monitoring`.

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `plan` | skips (green, with the reason) a day **not over yet** in UTC, and a backfill whose days all lie **before the first champion** (a range mixing both scores only the days from the first champion on: those days are never scored with today's model); checks the `spark_default` connection exists, resolves the model of each day (the champion history is rebuilt from the registry tags when the warehouse lost it or was restored from an older copy) and checks it (the version exists, comes from this pipeline's training experiment, has its `as_of`, `threshold` (a number in [0, 1]) and `metrics` tags, and its signature takes every model input), checks each day's feature partition (readable, the canonical columns and no other, rows, as many as the day's raw transactions, no NaN/null/infinite value), and writes the plan (feature partition, model URI, version, run id, threshold) to the run's staging folder | not retried: **no champion**; a **bad registry state** (the log names the version and the tag: deleted, tag missing or not a number, another pipeline's run, signature lacking an input, model files unreadable); **bad features** (the log names the partition `ds=`, the file, the column and the count); **bad params**; an **invalid `training.yaml`**; **connection `spark_default` not defined**. Retried 3x with backoff: **feature partition missing, registry or warehouse unreachable** | no champion: run the `training` DAG first. Bad registry state: fix the version (`python -m include.registry show`), or roll back / retrain. Bad features: rerun `features` for the day (its checkpoint quarantines what is wrong), then clear `plan`. Bad params: trigger with `{"start": "YYYY-MM-DD", "end": ...}`. Missing partition: run `features` for the day. Unreachable: check `MLFLOW_TRACKING_URI` / `BATCHML_WAREHOUSE_URL`, then clear `plan` |
| `score` | `spark-submit`s `include/jobs/score.py` through `spark_default` (pool `spark`): the driver loads each model once and broadcasts it, one staged file per day | not retried: the job printed a `BATCHML-ERROR: bad registry state` line (model files of the version do not load) or `BATCHML-ERROR: bad data` (the model refused a feature partition: the line names `ds=`, the column and the count) and exited 78 or 65; the plan file is gone. Retried once: any other failure of the Spark application (the driver log is in the task log) | bad registry state: roll back or retrain, then clear from `plan`. Bad data: rerun `features` for the day, clear from `plan`. Spark: read the error (Java, memory, the `spark_default` master), fix, clear `score`. Plan gone: clear from `plan`. The **MLflow** link opens the model version |
| `validate_predictions` | the `predictions` checkpoint: one row per feature row, unique ids, scores in [0, 1], no nulls | **bad data** (not retried): the staged file is in `quarantine/predictions/fraud/ds=<day>/` | open the **Data Docs** link; usually a model that outputs NaN or a feature partition that changed since scoring: clear from `plan` |
| `publish` | replaces the day's warehouse rows (delete + insert in one transaction), renames the file into place, emits `predictions_fraud` | warehouse or lake unreachable (retried); the staged predictions or the plan file gone (not retried: the log names the days and the folder) | unreachable: fix the database or storage, clear `publish`; it is idempotent. Staging gone: clear the run from `plan` |

Nothing is published unless every day passed its checks. **Operations** (reruns and clears, late and out-of-order days, lost state, time zones, odd dates): [docs/operations.md](../docs/operations.md).

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback, dag, task
from batchml.defaults import day_range_params, default_args
from batchml.notifiers import deadline_missed
from batchml.operators import BatchScoringOperator, GXCheckpointOperator

from include.assets import FEATURES_BASELINE, PREDICTIONS
from include.config import scoring_deadline_minutes

PLAN = "ti.xcom_pull(task_ids='plan')"
SPARK_CONN = "spark_default"


@task(retries=3, retry_delay=dt.timedelta(minutes=1))
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from batchml.connections import require_connection

    from include.run_days import NothingToDo
    from include.scoring import PlanRefused, plan_run
    from include.storage import staging_dir

    require_connection(SPARK_CONN, "score (spark-submit)")
    try:  # plans.json in the run's staging folder, read by score and publish
        return plan_run(params, triggering_asset_events, staging_dir(run_id, "scoring"), "score")
    except NothingToDo as exc:  # skipped (green, with the reason), not red
        raise AirflowSkipException(str(exc)) from None
    except PlanRefused as exc:  # retries cannot help; anything else (unreachable, missing input) is retried
        raise AirflowFailException(str(exc)) from exc


@task(outlets=[PREDICTIONS])
def publish(plan: dict, outlet_events=None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from include.scoring import StagedPredictionsMissing, publish_staged

    try:  # once: a retry after the staging was published and deleted returns the recorded result
        result, extra = publish_staged(plan)
    except (StagedPredictionsMissing, FileNotFoundError) as exc:  # staging gone: a retry cannot help
        raise AirflowFailException(str(exc)) from exc
    outlet_events[PREDICTIONS].extra = extra
    return result


@dag(
    dag_id="scoring",
    schedule=[FEATURES_BASELINE],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params=day_range_params(),
    # asset-triggered runs have no logical date: the clock starts when the run is queued
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=scoring_deadline_minutes()),
        callback=SyncCallback(deadline_missed, kwargs={"dag_id": "scoring", "minutes": scoring_deadline_minutes()}),
        name="scoring_late",
    ),
    tags=["batchml", "fraud", "scoring", "spark", "mlflow"],
    default_args=default_args("ml-platform", max_retry_delay=dt.timedelta(minutes=20)),
    doc_md=__doc__,
)
def scoring():
    planned = plan()
    score = BatchScoringOperator(
        task_id="score",
        plans=f"{{{{ {PLAN}['plans'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
        conn_id=SPARK_CONN,
    )
    validate = GXCheckpointOperator(
        task_id="validate_predictions",
        dataset="predictions",
        partitions=f"{{{{ {PLAN}['days'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
    )
    planned >> score >> validate >> publish(planned)


scoring()

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
the day, never duplicates it.

**Inputs:** `features/baseline/ds=<day>/`, the MLflow registry (`MLFLOW_TRACKING_URI`), the
warehouse `promotions` table. **Outputs:** `predictions/fraud/ds=<day>/data.parquet`, warehouse table
`predictions` (model name, version, run id, threshold, `flagged`, `scored_at` on every row), Asset
`predictions_fraud` (extra `{"start", "end"}`), which schedules `monitoring`.

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `plan` | checks the `spark_default` connection exists, resolves the model of each day and writes the plan (feature partition, model URI, version, run id, threshold) to the run's staging folder | **no champion**, **bad params**, an **invalid `training.yaml`** or **connection `spark_default` not defined** (not retried): the log says which. **Feature partition missing, registry or warehouse unreachable** (retried 3x with backoff) | no champion: run the `training` DAG first. Bad params: trigger with `{"start": "YYYY-MM-DD", "end": ...}`. Missing partition: run `features` for the day. Unreachable: check `MLFLOW_TRACKING_URI` / `BATCHML_WAREHOUSE_URL`, then clear `plan` |
| `score` | `spark-submit`s `include/jobs/score.py` through `spark_default` (pool `spark`): the driver loads each model once and broadcasts it, one staged file per day | the Spark application failed (retried once; the driver log is in the task log), or the plan file is gone (not retried) | Spark: read the error (Java, memory, the `spark_default` master), fix, clear `score`. Plan gone: clear from `plan`. The **MLflow** link opens the model version |
| `validate_predictions` | the `predictions` checkpoint: one row per feature row, unique ids, scores in [0, 1], no nulls | **bad data** (not retried): the staged file is in `quarantine/predictions/fraud/ds=<day>/` | open the **Data Docs** link; usually a model that outputs NaN or a feature partition that changed since scoring: clear from `plan` |
| `publish` | replaces the day's warehouse rows (delete + insert in one transaction), renames the file into place, emits `predictions_fraud` | warehouse or lake unreachable (retried) | fix the database or storage, clear `publish`; it is idempotent |

Nothing is published unless every day passed its checks.

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DeadlineAlert, DeadlineReference, Param, SyncCallback, dag, task
from batchml.defaults import default_args
from batchml.notifiers import deadline_missed
from batchml.operators import BatchScoringOperator, GXCheckpointOperator

from include.assets import FEATURES_BASELINE, PREDICTIONS
from include.config import scoring_deadline_minutes

PLAN = "ti.xcom_pull(task_ids='plan')"
SPARK_CONN = "spark_default"


@task(retries=3, retry_delay=dt.timedelta(minutes=1))
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    import json

    from airflow.sdk.exceptions import AirflowFailException
    from batchml.connections import require_connection

    from include.config import ConfigError
    from include.registry import NoChampionError
    from include.run_days import days_to_process
    from include.scoring import plan_scoring
    from include.storage import staging_dir
    from include.training.config import load_training_config

    require_connection(SPARK_CONN, "score (spark-submit)")
    try:
        days = days_to_process(params, triggering_asset_events, "score")
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc  # a retry cannot fix the run's parameters
    try:
        plans = plan_scoring(days, load_training_config().registered_model)
    except (NoChampionError, ConfigError) as exc:  # no model, or an invalid training.yaml: retries cannot help
        raise AirflowFailException(str(exc)) from exc
    staging = staging_dir(run_id, "scoring")
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "plans.json").write_text(json.dumps(plans, indent=2))
    return {"days": [p["ds"] for p in plans], "staging": str(staging), "plans": str(staging / "plans.json"),
            "models": {p["ds"]: p["model"]["version"] for p in plans}}


@task(outlets=[PREDICTIONS])
def publish(plan: dict, outlet_events=None) -> dict:
    import json
    from pathlib import Path

    from include.scoring import publish_predictions
    from include.storage import finish_staging, published_before

    staging = Path(plan["staging"])
    result = published_before(staging)  # a retry after the task died once the staging was gone
    if result is None:
        result = publish_predictions(staging, json.loads(Path(plan["plans"]).read_text()))
        finish_staging(staging, result)
    outlet_events[PREDICTIONS].extra = {"start": plan["days"][0], "end": plan["days"][-1]}
    return result


@dag(
    dag_id="scoring",
    schedule=[FEATURES_BASELINE],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={
        "start": Param(None, type=["null", "string"], format="date", description="first day (backfill)"),
        "end": Param(None, type=["null", "string"], format="date", description="last day (backfill)"),
    },
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

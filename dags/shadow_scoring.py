"""
# shadow_scoring: the shadow challenger scored every night beside the champion, in Spark

**What it does.** Scores the day(s) the champion just scored with the version behind the registry's
`shadow` alias (set by training: a challenger not promoted, or one on probation) and publishes its
scores **apart**: no consumer reads them as the decision. Monitoring measures them on the delayed
labels beside the champion's (`performance_days` rows with `role = shadow`), and the ML monitor draws
the shadow's line beside the champion's. Operator guide: [docs/shadow.md](../docs/shadow.md).

**Schedule:** when `predictions_fraud` is published (Asset), for the day(s) it carries: a separate
DAG, so a shadow that fails or is slow never fails nor delays the champion's scoring. **Backfill:**
trigger with params `start` and `end`; a rerun replaces the day, never duplicates it. **No `shadow`
alias:** the run is skipped (green, the reason in the log of `plan`).

**Inputs:** `features/baseline/ds=<day>/`, the MLflow registry (`MLFLOW_TRACKING_URI`, alias
`shadow`). **Outputs:** `predictions/fraud_shadow/ds=<day>/data.parquet`, warehouse table
`shadow_predictions` (the columns of `predictions`, lineage on every row; no reasons), Asset
`shadow_predictions_fraud` (extra `{"start", "end"}`), and the estimate half of the shadow's
`performance_days` rows (`role = shadow`).

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `plan` | skips (green, with the reason) when the model has **no `shadow` alias** or the day is not over yet; checks the `spark_default` connection, the shadow version (exists, from this pipeline's training experiment, `as_of` / `threshold` / `metrics` tags, signature) and each day's feature partition, exactly as `scoring` does (`include.scoring.plan_scoring` with the alias), and writes the plan to the run's staging folder | not retried: a **bad registry state** of the shadow version (the log names the version and the tag), **bad features**, **bad params**, an invalid `training.yaml`, `spark_default` not defined. Retried 3x: feature partition missing, registry unreachable | bad shadow version: fix or move the alias (`python -m include.registry show`), or retrain. Bad features: rerun `features`, then clear `plan`. Unreachable: check `MLFLOW_TRACKING_URI`, clear `plan`. The champion's predictions are not affected |
| `score` | `spark-submit`s `include/jobs/score.py` (the scoring job, no reasons) through `spark_default` (pool `spark`) | not retried: `BATCHML-ERROR: bad registry state` (the shadow version's model files do not load) or `bad data`. Retried once: any other Spark failure | bad registry state: move the `shadow` alias or retrain, clear from `plan`. Spark: read the driver log in the task log, fix, clear `score` |
| `validate_predictions` | the `predictions` checkpoint on the shadow's staged file (dataset `shadow_predictions`): one row per feature row, unique ids, scores in [0, 1], no nulls | **bad data** (not retried): the file is in `quarantine/predictions/fraud_shadow/ds=<day>/` | open the **Data Docs** link; usually a shadow version that outputs NaN: move the alias or retrain, clear from `plan` |
| `publish` | replaces the day's `shadow_predictions` rows (delete + insert in one transaction), renames the file into place, emits `shadow_predictions_fraud`; once per run (a retry after it finished publishes nothing twice) | warehouse or lake unreachable (retried); staging or plan file gone (not retried) | unreachable: fix, clear `publish` (idempotent). Staging gone: clear the run from `plan` |
| `estimate` | the shadow's CBPE estimate of each published day (`include.drift.monitor.record_shadow_estimate`, the champion's code path): the estimate half of its `performance_days` row (`role = shadow`), kept beside the day's drift report (`reports/drift/ds=<day>/shadow_estimate.json`) for the rebuild. Monitoring starts when the champion publishes and has usually run without the shadow's partition of the day | warehouse unreachable, MLflow unreachable (retried) | fix, clear `estimate`: it replaces its own half, nothing else; the shadow's scores are published whatever happens here |

Nothing is published unless every day passed its checks. **Operations** (reruns and clears, late and
out-of-order days, lost state): [docs/operations.md](../docs/operations.md).

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task
from batchml.defaults import day_range_params, default_args
from batchml.operators import BatchScoringOperator, GXCheckpointOperator

from include.assets import PREDICTIONS, SHADOW_PREDICTIONS
from include.scoring import SHADOW_CHECK

PLAN = "ti.xcom_pull(task_ids='plan')"
SPARK_CONN = "spark_default"


@task(retries=3, retry_delay=dt.timedelta(minutes=1))
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from batchml.connections import require_connection

    from include.registry import SHADOW
    from include.run_days import NothingToDo
    from include.scoring import PlanRefused, plan_run
    from include.storage import staging_dir

    require_connection(SPARK_CONN, "shadow score (spark-submit)")
    try:  # plans.json in the run's staging folder, read by score and publish
        return plan_run(params, triggering_asset_events, staging_dir(run_id, "shadow_scoring"), "score in shadow", alias=SHADOW)
    except NothingToDo as exc:  # skipped (green, with the reason), not red
        raise AirflowSkipException(str(exc)) from None
    except PlanRefused as exc:  # retries cannot help; anything else (unreachable, missing input) is retried
        raise AirflowFailException(str(exc)) from exc


@task(outlets=[SHADOW_PREDICTIONS])
def publish(plan: dict, outlet_events=None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from include.scoring import SHADOW_TARGET, StagedPredictionsMissing, publish_staged

    try:
        result, extra = publish_staged(plan, target=SHADOW_TARGET)
    except (StagedPredictionsMissing, FileNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc
    outlet_events[SHADOW_PREDICTIONS].extra = extra
    return result


@task
def estimate(plan: dict) -> dict:
    from include.drift.monitor import record_shadow_estimates

    return record_shadow_estimates(plan["days"])


@dag(
    dag_id="shadow_scoring",
    schedule=[PREDICTIONS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params=day_range_params(),
    tags=["batchml", "fraud", "scoring", "shadow", "spark", "mlflow"],
    default_args=default_args("ml-platform", max_retry_delay=dt.timedelta(minutes=20)),
    doc_md=__doc__,
)
def shadow_scoring():
    planned = plan()
    score = BatchScoringOperator(
        task_id="score",
        plans=f"{{{{ {PLAN}['plans'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
        conn_id=SPARK_CONN,
        name="shadow_score",
    )
    validate = GXCheckpointOperator(
        task_id="validate_predictions",
        dataset=SHADOW_CHECK,
        partitions=f"{{{{ {PLAN}['days'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
    )
    published = publish(planned)
    planned >> score >> validate >> published >> estimate(planned)


shadow_scoring()

"""
# scoring: nightly batch scoring with the champion, in Spark

**Schedule:** when `features_baseline` is published (Asset), for the day(s) it carries.
**Backfill:** trigger with params `start` and `end`. Each day is scored by the model that was champion
on that day (the `promotions` table; the `champion` alias when there is no promotion history), so
rescoring history is reproducible.

1. `plan` resolves the model of each day from the MLflow registry and writes the plan (feature
   partition, model URI, version, run id, decision threshold per day) to the run's staging folder.
   No champion: the task fails and says so (train first); nothing falls back silently.
2. `score` submits `include/jobs/score.py` through `spark_default` (pool `spark`): the driver loads
   each model once and broadcasts it, `mapInPandas` scores the rows, one staged file per day.
3. `validate_predictions` runs the `predictions` checkpoint (one row per feature row, unique ids,
   scores in [0, 1], no nulls).
4. `publish` replaces the day's rows in the warehouse table `predictions` (delete + insert in one
   transaction), renames the file into `predictions/fraud/ds=<day>/` and emits `predictions_fraud`.

Each row carries its lineage: model name, version, run id, threshold, scored_at.

**When it fails:** nothing is published; a rerun replaces the day, never duplicates it. A failed
check keeps the staged file in `quarantine/predictions/fraud/ds=<day>/`.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, dag, task
from batchml.operators import GXCheckpointOperator

from include.assets import FEATURES_BASELINE, PREDICTIONS
from include.config import REPO_ROOT

PLAN = "ti.xcom_pull(task_ids='plan')"


@task(retries=3, retry_delay=dt.timedelta(minutes=1), retry_exponential_backoff=True)
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    import json

    from airflow.sdk.exceptions import AirflowFailException

    from include.registry import NoChampionError
    from include.run_days import days_to_process
    from include.scoring import plan_scoring
    from include.storage import staging_dir
    from include.training.config import load_training_config

    try:
        days = days_to_process(params, triggering_asset_events, "score")
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc  # a retry cannot fix the run's parameters
    try:
        plans = plan_scoring(days, load_training_config().registered_model)
    except NoChampionError as exc:
        raise AirflowFailException(str(exc)) from exc
    staging = staging_dir(run_id, "scoring")
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "plans.json").write_text(json.dumps(plans, indent=2))
    return {"days": days, "staging": str(staging), "plans": str(staging / "plans.json"),
            "models": {p["ds"]: p["model"]["version"] for p in plans}}


@task(outlets=[PREDICTIONS])
def publish(plan: dict, outlet_events=None) -> dict:
    import json
    from pathlib import Path

    from include.scoring import publish_predictions
    from include.storage import remove_tree

    plans = json.loads(Path(plan["plans"]).read_text())
    result = publish_predictions(Path(plan["staging"]), plans)
    remove_tree(Path(plan["staging"]))
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
    tags=["batchml", "fraud", "scoring", "spark", "mlflow"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    doc_md=__doc__,
)
def scoring():
    planned = plan()
    score = SparkSubmitOperator(
        task_id="score",
        conn_id="spark_default",
        application=str(REPO_ROOT / "include" / "jobs" / "score.py"),
        name="score",
        application_args=["--plans", f"{{{{ {PLAN}['plans'] }}}}", "--output", f"{{{{ {PLAN}['staging'] }}}}"],
        pool="spark",
    )
    validate = GXCheckpointOperator(
        task_id="validate_predictions",
        dataset="predictions",
        partitions=f"{{{{ {PLAN}['days'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
    )
    planned >> score >> validate >> publish(planned)


scoring()

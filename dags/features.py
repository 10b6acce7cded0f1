"""
# features: point-in-time features of the day, in Spark

**Schedule:** when `raw_transactions` is published (Asset), for the day(s) it carries; several
queued days are computed together. **Backfill:** trigger with params `start` and `end`: the whole
range is computed in one Spark application.

1. `plan` picks the days and checks their raw partitions exist.
2. `build_features` submits `include/jobs/build_features.py` through the `spark_default`
   connection (`local[*]` by default). It reads only the partitions the days need (for one day: that
   day and the 37 before it of transactions, label arrivals of that day and the 30 before) and
   stages one parquet file per day.
3. `validate_features` runs the `features_baseline` checkpoint on each staged day (one row per raw
   transaction, no nulls, counts and risks in range).
4. `publish` renames each staged day into `features/baseline/ds=<day>/` and emits `features_baseline`.

Features (15 model inputs): `tx_amount`, weekend and night flags, customer count and mean amount over
1/7/30 days including the transaction, terminal count and fraud risk over 1/7/30 days ending 7 days
before the transaction (labels are only known after 7 days).

**When it fails:** nothing is published. A failed check keeps the staged file in
`quarantine/features/baseline/ds=<day>/` with `failure.json`; the Spark driver log is in the
`build_features` task log.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, dag, task
from batchml.operators import GXCheckpointOperator

from include.assets import FEATURES_BASELINE, RAW_TRANSACTIONS
from include.config import REPO_ROOT

PLAN = "ti.xcom_pull(task_ids='plan')"


@task
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    from include.config import data_root
    from include.features.pipeline import plan_feature_days
    from include.storage import day_range, staging_dir

    triggered = [
        event.extra["ds"]
        for events in (triggering_asset_events or {}).values()
        for event in events
        if event.extra and event.extra.get("ds")
    ]
    start, end = plan_feature_days(params.get("start"), params.get("end"), triggered)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": [d.isoformat() for d in day_range(start, end)],
        "staging": str(staging_dir(run_id, "features")),
        "root": str(data_root()),
    }


@task(outlets=[FEATURES_BASELINE])
def publish(plan: dict, outlet_events=None) -> dict:
    from pathlib import Path

    from include.features.pipeline import publish_staged_features

    result = publish_staged_features(Path(plan["staging"]), plan["start"], plan["end"])
    outlet_events[FEATURES_BASELINE].extra = {"start": plan["start"], "end": plan["end"]}
    return result


@dag(
    dag_id="features",
    schedule=[RAW_TRANSACTIONS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # so validate_features receives the list of days
    params={
        "start": Param(None, type=["null", "string"], format="date", description="first day (backfill)"),
        "end": Param(None, type=["null", "string"], format="date", description="last day (backfill)"),
    },
    tags=["batchml", "fraud", "features", "spark", "great-expectations"],
    default_args={"owner": "data-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    doc_md=__doc__,
)
def features():
    planned = plan()
    build_features = SparkSubmitOperator(
        task_id="build_features",
        conn_id="spark_default",
        application=str(REPO_ROOT / "include" / "jobs" / "build_features.py"),
        name="build_features",
        application_args=[
            "--start", f"{{{{ {PLAN}['start'] }}}}",
            "--end", f"{{{{ {PLAN}['end'] }}}}",
            "--output", f"{{{{ {PLAN}['staging'] }}}}",
            "--root", f"{{{{ {PLAN}['root'] }}}}",
        ],
        pool="spark",
    )
    validate = GXCheckpointOperator(
        task_id="validate_features",
        dataset="features_baseline",
        partitions=f"{{{{ {PLAN}['days'] }}}}",
        staging=f"{{{{ {PLAN}['staging'] }}}}",
    )
    planned >> build_features >> validate >> publish(planned)


features()

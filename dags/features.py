"""
# features: point-in-time features of the day, in Spark

**What it does.** Computes the 20 model inputs of every transaction of the day(s) in one Spark
application, checks them with Great Expectations and publishes one partition per day.

**Schedule:** when `raw_labels` has been published (Assets; `ingest` publishes a day's labels after
its transactions, and the terminal risk of day D reads the labels arriving on D), for the day(s)
the queued events of both raw Assets carry; several queued days are computed together. A
`raw_transactions` event alone waits for a `raw_labels` one. `plan` also refuses (and retries) a
range whose label arrivals are not all published. **No published day is left without features:**
Airflow 3.3 can drop the queued events of a day published while the previous run holds the DAG's
one run slot; the run it starts plans after they were written, and `plan` adds every published
day without features after its range (see `plan`). **Backfill:** trigger with params `start` and `end` (YYYY-MM-DD):
the whole range runs in one Spark application. A rerun replaces the partitions.

**Inputs:** `raw/transactions/ds=*` (that day and the 37 before it) and `raw/labels/ds=*` (label
arrivals of that day and the 30 before). **Outputs:** `features/baseline/ds=<day>/data.parquet`,
Asset `features_baseline` (extra `{"start", "end"}`), which schedules `scoring`.

Features: `tx_amount`, weekend and night flags, customer count and mean amount over 1/7/30 days
including the transaction, terminal count and fraud risk over 1/7/30 days ending 7 days before the
transaction (labels are only known after 7 days), and the amount against the customer's own earlier
amounts (ratio and z-score over 7/30 days, ratio to the 14-day maximum; `include/pipelines/fraud/features/groups.py`).

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `plan` | checks the `spark_default` connection exists, picks the days (params, else the Asset events) and checks their raw partitions exist; in a run started by Asset events **adds the published days without features** in (last, last + 37] (raw transactions and labels published, no feature partition: their events went to no run, see Schedule); **adds the stale later days**: every existing feature day in (last, last + 37] whose `_inputs.json` (the versions of the raw partitions it was computed from) differs from its inputs now, because a raw day was published late or replaced; the run computes `min..max` of them in one application and its Asset event carries that range, so scoring and monitoring redo those days (the XCom's `unfeatured` and `stale`, and the log, name each added day and why; `stale_left`, the days past a day it cannot compute). Records the input versions of every planned day. A day **not over yet** in UTC is **skipped** with the reason | **connection `spark_default` not defined** (not retried): define it, clear `plan`. **No day / bad params** (not retried): the run was started without `start` (an `end` alone is refused), with `end` before `start`, a malformed date or a range over ten years. **Raw partition missing** (retried with backoff): ingest is late | bad params: trigger again with `{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}`. Missing: run or fix `ingest` for the named days, then clear `plan` |
| `build_features` | `spark-submit`s `include/jobs/build_features.py` through `spark_default` (pool `spark`), one staged parquet file per day | **bad input files** (not retried): a `BATCHML-ERROR: bad data: Spark <error class>` line names the raw partition file and the column Spark could not read (another type, a corrupt footer). **Any other failure of the Spark application** (retried once): the driver log is in the task log | bad input: republish that raw day through `ingest` (it casts to the canonical schema), then clear `build_features`. Otherwise read the Spark error in the log (Java 17 on PATH, memory, the `spark_default` master); fix, then clear the task |
| `validate_features` | the `features_baseline` checkpoint on each staged day: one row per raw transaction, no nulls, counts and risks in range | **bad data** (not retried): the staged file is in `quarantine/features/baseline/ds=<day>/` with `failure.json` | a bug in the feature job or a bad raw partition: open the **Data Docs** link, fix, clear from `build_features` |
| `publish` | renames every staged day into place (all days checked before any moves) and emits `features_baseline` | a staged file is missing (not retried: rerun the job) or the lake is not writable (retried) | clear from `build_features` |

Nothing is published unless every day passed its checks. Each published day carries its lineage,
`features/baseline/ds=<day>/_inputs.json`. **Operations** (reruns and clears, late and out-of-order days, lost state, time zones, odd dates): [docs/operations.md](../docs/operations.md).

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail / Slack when configured (`batchml.notifiers`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task
from batchml.defaults import day_range_params, default_args
from batchml.operators import GXCheckpointOperator, SparkJobOperator

from include.assets import FEATURES_BASELINE, RAW_LABELS, RAW_TRANSACTIONS
from include.config import REPO_ROOT

PLAN = "ti.xcom_pull(task_ids='plan')"
SPARK_CONN = "spark_default"


@task(retries=3)
def plan(params: dict | None = None, triggering_asset_events=None, run_id: str | None = None) -> dict:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from batchml.connections import require_connection

    from include.config import data_root
    from include.features.pipeline import plan_features, record_planned_inputs
    from include.run_days import NothingToDo, check_not_future, event_days, param_days
    from include.storage import day_range, staging_dir

    require_connection(SPARK_CONN, "build_features (spark-submit)")
    try:
        days = param_days(params)  # an 'end' without 'start', a malformed or reversed range: ParamError
        triggered = event_days(triggering_asset_events)
        check_not_future(days or triggered, "compute features")  # a day not over yet (UTC) has no data yet
        # the requested days, extended with the stale feature days after them (raw data published late)
        planned = plan_features(days[0] if days else None, days[-1] if days else None, triggered)
    except NothingToDo as exc:
        raise AirflowSkipException(str(exc)) from None
    except ValueError as exc:  # no days, or a range that ends before it starts: a retry cannot fix it
        raise AirflowFailException(str(exc)) from None
    staging = staging_dir(run_id, "features")
    # the versions of the raw partitions the days read, before Spark reads them: publish puts them
    # beside each day (features/baseline/ds=<day>/_inputs.json)
    record_planned_inputs(staging, planned.first, planned.last)
    return {
        "start": planned.first.isoformat(),
        "end": planned.last.isoformat(),
        "days": [d.isoformat() for d in day_range(planned.first, planned.last)],
        "staging": str(staging),
        "root": str(data_root()),
        **planned.summary(),
    }


@task(outlets=[FEATURES_BASELINE])
def publish(plan: dict, outlet_events=None) -> dict:
    from pathlib import Path

    from airflow.sdk.exceptions import AirflowFailException

    from include.features.pipeline import publish_staged_features

    try:
        result = publish_staged_features(Path(plan["staging"]), plan["start"], plan["end"])
    except RuntimeError as exc:  # a staged day is missing: only rerunning build_features helps
        raise AirflowFailException(str(exc)) from None
    outlet_events[FEATURES_BASELINE].extra = {"start": plan["start"], "end": plan["end"]}
    return result


@dag(
    dag_id="features",
    # labels alone start a run: ingest publishes them after the day's transactions, whose queue row Airflow
    # 3.3 may have dropped (docs/operations.md); transactions alone (a republished day) wait for labels
    schedule=RAW_LABELS | (RAW_TRANSACTIONS & RAW_LABELS),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # so validate_features receives the list of days
    params=day_range_params(),
    tags=["batchml", "fraud", "features", "spark", "great-expectations"],
    default_args=default_args("data-platform"),
    doc_md=__doc__,
)
def features():
    planned = plan()
    # the provider's spark-submit, failing without retry when the job reports bad input files
    build_features = SparkJobOperator(
        task_id="build_features",
        conn_id=SPARK_CONN,
        application=str(REPO_ROOT / "include" / "jobs" / "build_features.py"),
        name="build_features",
        application_args=[
            "--start", f"{{{{ {PLAN}['start'] }}}}",
            "--end", f"{{{{ {PLAN}['end'] }}}}",
            "--output", f"{{{{ {PLAN}['staging'] }}}}",
            "--root", f"{{{{ {PLAN}['root'] }}}}",
        ],
        error_output=f"{{{{ {PLAN}['staging'] }}}}",
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

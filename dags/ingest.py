"""
# ingest: land the day's transactions and labels

**Schedule:** daily. Run `ds` lands the files the upstream system delivered for day `ds`:

| source | landing file | contents | published to |
|---|---|---|---|
| transactions | `landing/transactions/<ds>.parquet` | the transactions of `ds` | `raw/transactions/ds=<ds>/` (Asset `raw_transactions`) |
| labels | `landing/labels/<ds>.parquet` | fraud labels of `ds - 7` (labels arrive 7 days late) | `raw/labels/ds=<ds>/` (Asset `raw_labels`) |

Per source, `validate_<source>` runs the Great Expectations checkpoint of the source (schema and
types, non-null keys, unique transaction ids, amounts in range, timestamps inside the day, row count
within bounds, label values 0/1, one label per transaction of `ds - 7`), then `publish_<source>`
copies the validated file into its raw partition with one atomic rename.

**When it fails:** a failed check quarantines the file under `quarantine/landing/<source>/ds=<ds>/`
with `failure.json`, and the task fails without retry; its log names the partition, the column and
the expectation. Nothing is published and the `features` DAG does not run for that day. A landing
file that is missing is retried (the upstream may be late). Fix or redeliver the file, then clear
the `validate_` task. Data Docs: `<data root>/gx/gx/uncommitted/data_docs/local_site/index.html`.

**Reruns** replace the day's partitions; they never append.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from batchml.operators import GXCheckpointOperator

from include.assets import RAW_LABELS, RAW_TRANSACTIONS


@task
def publish(source: str, validation: dict) -> dict:
    """Publish the validated landing file of ``source`` and tag the Asset event with its day."""
    from include.ingest import publish_landing

    context = get_current_context()
    ds = context["ds"]
    result = publish_landing(source, ds, validation["partitions"][0]["sha256"])
    for outlet in context["task"].outlets:
        context["outlet_events"][outlet].extra = {"ds": ds, "rows": result["rows"]}
    return result


@dag(
    dag_id="ingest",
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # label checks and row-count bounds read the days published before
    tags=["batchml", "fraud", "ingest", "great-expectations"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    doc_md=__doc__,
)
def ingest():
    for source, asset in (("transactions", RAW_TRANSACTIONS), ("labels", RAW_LABELS)):
        validation = GXCheckpointOperator(
            task_id=f"validate_{source}",
            dataset=f"raw_{source}",
            overrides={
                "min_rows": "{{ var.value.get('batchml_min_daily_transactions', '') }}",
                "max_rows": "{{ var.value.get('batchml_max_daily_transactions', '') }}",
            },
        )
        publish.override(task_id=f"publish_{source}", outlets=[asset])(source, validation.output)


ingest()

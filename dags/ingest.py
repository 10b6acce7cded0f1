"""
# ingest: land the day's transactions and labels

**What it does.** Checks the files the upstream system delivered for day `ds` with Great
Expectations and publishes them into the raw zone, or keeps them in quarantine.

**Schedule:** `@daily`; run `ds` lands day `ds`. `max_active_runs=1` (the label check and the
row-count band read the days published before). **Backfill / rerun:** clear the run of the day; a
rerun replaces the day's partitions, it never appends.

| source | input (landing file) | contents | output (raw partition) | Asset |
|---|---|---|---|---|
| transactions | `landing/transactions/<ds>.parquet` | the transactions of `ds` | `raw/transactions/ds=<ds>/data.parquet` | `raw_transactions` → `features` |
| labels | `landing/labels/<ds>.parquet` | fraud labels of `ds - 7` (labels arrive 7 days late) | `raw/labels/ds=<ds>/data.parquet` | `raw_labels` |

Paths are under the data root (`BATCHML_DATA_ROOT`). Each Asset event carries `{"ds", "rows"}`.

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `validate_transactions`, `validate_labels` | the source's checkpoint: exact columns and types, non-null keys, unique ids, amounts in [0, 100,000], timestamps inside the day, row count within the Variables' bounds and 0.5x..2x the last 7 days' median; labels 0/1, one per transaction of `ds - 7` | **bad data** (not retried): the log names the partition, column and expectation with sample values; the file is in `quarantine/landing/<source>/ds=<ds>/` with `failure.json`. **File missing** (retried 2x with backoff): the upstream is late | bad data: open the **Data Docs** link of the task, have the file fixed or redelivered to `landing/`, then clear the task. Missing after the retries: chase the delivery, then clear the task |
| `publish_transactions`, `publish_labels` | copies the validated file into its raw partition with one atomic rename and emits the Asset | file **changed since it was validated** (checksum differs; not retried), or the raw zone is not writable (retried) | changed file: clear `validate_<source>` (it validates the new file, then publishes). Storage: fix it, clear the task |

The two sources are independent: a bad transactions file does not stop the labels. Nothing
downstream runs for a day whose transactions were not published.

**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail (Variable `batchml_alert_emails`) and Slack (connection
`slack_alerts`) when configured. **Settings:** Variables `batchml_min_daily_transactions`,
`batchml_max_daily_transactions`. **Data Docs:** `<data root>/gx/gx/uncommitted/data_docs/local_site/index.html`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from batchml.notifiers import TaskFailureNotifier
from batchml.operators import GXCheckpointOperator

from include.assets import RAW_LABELS, RAW_TRANSACTIONS


@task
def publish(source: str, validation: dict) -> dict:
    """Publish the validated landing file of ``source`` and tag the Asset event with its day."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.ingest import publish_landing

    context = get_current_context()
    ds = context["ds"]
    try:
        result = publish_landing(source, ds, validation["partitions"][0]["sha256"])
    except RuntimeError as exc:  # the file changed after validation: only a new validation can help
        raise AirflowFailException(str(exc)) from None
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
    default_args={
        "owner": "data-platform",
        "retries": 2,  # a late landing file; bad data fails at once (AirflowFailException)
        "retry_delay": dt.timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
        "on_failure_callback": TaskFailureNotifier(),
    },
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

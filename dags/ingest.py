"""
# ingest: land the day's transactions and labels

**What it does.** Checks the files the upstream system delivered for day `ds` with Great
Expectations and publishes them into the raw zone, or keeps them in quarantine.

**Schedule:** daily at 00:00 UTC for the day that just ended (a data-interval timetable: the run
due at D+1 00:00 UTC has `ds` = D, whatever `TZ` or Airflow's `default_timezone` say); run `ds` lands
day `ds`. `max_active_runs=1` (the label check and the
row-count band read the days published before). **Rerun:** clear the run of the day; a rerun
replaces the day's partitions, it never appends. **Initial load of a history:** trigger with params
`start` and `end`: one run validates every day of the range, then publishes them in day order, and
emits one Asset event per source carrying `{"start", "end"}` (so `features` builds the range in one
Spark application). Within a range the relative row-count band only sees days published before the
run; the labels are validated after the range's transactions are published.

| source | input (landing file) | contents | output (raw partition) | Asset |
|---|---|---|---|---|
| transactions | `landing/transactions/<ds>.parquet` | the transactions of `ds` | `raw/transactions/ds=<ds>/data.parquet` | `raw_transactions` → `features` |
| labels | `landing/labels/<ds>.parquet` | fraud labels of `ds - 7` (labels arrive 7 days late) | `raw/labels/ds=<ds>/data.parquet` | `raw_labels` |

Paths are under the data root (`BATCHML_DATA_ROOT`). Each Asset event carries `{"ds", "rows"}` (a
range run: `{"start", "end", "rows"}`).

## Tasks, and what to do when one fails

| task | does | a failure means | what to do |
|---|---|---|---|
| `days` | the day of the run, or every day of the `start`/`end` params; a day **not over yet** in UTC (a run dated today or later) is **skipped** with the reason, not failed, and nothing is validated or published | an `end` without `start`, a range that ends before it starts or spans over ten years, a malformed date, or a run with neither a logical date nor a `start` param (not retried) | fix the params and trigger again; a skipped future day: trigger it once the day is over |
| `validate_transactions`, `validate_labels` | the source's checkpoint: exact columns and types, non-null keys, unique ids, amounts in [0, 100,000], timestamps inside the day, row count within the Variables' bounds and the band `transactions.rows` of `plausibility.yaml` (0.5x..2x the last 7 days' median); labels 0/1, one per transaction of `ds - 7`. **Plausibility** (bounds in `include/pipelines/fraud/plausibility.yaml`, learnt from the last 7 published days): replayed content, ids after the previous day's and in time order, the busiest hour's, customer's and terminal's share of the day, distinct customers, the fraud rate of the labels. Checked in the canonical schema (see below) | **bad data** (not retried): the log names the partition, column and expectation with sample values; the file is in `quarantine/landing/<source>/ds=<ds>/` with `failure.json`. **Not a regular file** (not retried): a symbolic link (never followed, wherever it points), a hard link (a file with a second name, maybe outside the zone: deliver a copy), a folder, a FIFO, a device, an empty or unreadable file at the landing path; the log names the path and what is there; quarantine keeps only `failure.json`. **File missing** (retried 2x with backoff): the upstream is late | bad data: open the **Data Docs** link of the task, have the file fixed or redelivered to `landing/`, then clear the task. A **plausibility** failure names the statistic, its value and the bound: if the day is a real change (a promotion, a new market), widen that bound in `plausibility.yaml` and clear the task; otherwise have it redelivered. Missing after the retries: chase the delivery, then clear the task |
| `publish_transactions`, `publish_labels` | writes the validated file, in the canonical schema, into its raw partition with one atomic rename and emits the Asset | file **changed since it was validated** (checksum differs), or replaced by a link or a folder (not retried), or the raw zone is not writable (retried) | changed file: clear `validate_<source>` (it validates the new file, then publishes). Storage: fix it, clear the task |
| `report` | summarises what was published | a source failed upstream (`upstream_failed`): the run is red even though the other source was published | see the failed task above it |

**Canonical schema.** A day delivered with narrower types (int32 or uint32 ids, float32 amounts,
timestamps in ms or ns, in any time zone) is valid: it is cast losslessly before the checkpoint and
published as int64 ids and labels, float64 amounts and UTC microsecond timestamps, like every other
partition (the features job reads a window of days as one table). A timestamp in the last
nanosecond of the day is truncated into its day. A cast that would lose information (a uint64 id
above the int64 maximum) fails the checkpoint naming the column and the value
(`column_values_fit_canonical_type`); float ids, decimal amounts, text or epoch numbers as timestamps are
not cast and fail the type checks. A column written as the pandas index is read as the column it is.

The labels are checked against the published transactions of `ds - 7`, so `validate_labels` waits
for `publish_transactions` (in a range run those are published by the same run) and then runs
whatever its outcome: a bad transactions file does not stop the labels. Nothing downstream runs for
a day whose transactions were not published.

**Operations** (reruns and clears, late and out-of-order days, lost state, time zones, odd dates): [docs/operations.md](../docs/operations.md). A rerun with the same file keeps the raw partition as it is (nothing downstream becomes
stale); a day published late makes the feature days that read it recompute (`features`).
**Alerts:** a task that fails after its last try writes a `task_failure` row to the warehouse
`alerts` table and goes to e-mail (Variable `batchml_alert_emails`) and Slack (connection
`slack_alerts`) when configured. **Settings:** Variables `batchml_min_daily_transactions`,
`batchml_max_daily_transactions` (a value that is not a whole number, or a minimum above the maximum,
fails `validate_transactions` without retry naming the Variable; the landing file stays in `landing/`
unjudged: fix the Variable, clear the task). **Data Docs:** `<data root>/gx/gx/uncommitted/data_docs/local_site/index.html`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, dag, get_current_context, task
from batchml.defaults import day_range_params, default_args
from batchml.operators import GXCheckpointOperator

from include.assets import RAW_LABELS, RAW_TRANSACTIONS
from include.config import time_schedules_enabled
from include.validation.datasets import ROW_COUNT_VARIABLES


@task
def days(params: dict | None = None, ds: str | None = None) -> list[str]:
    """The day of the run, or every day of the ``start``/``end`` params (an initial load); skipped
    (nothing validated or published) when a day is not over yet in UTC."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from include.run_days import NothingToDo, check_not_future, param_days

    try:
        planned = param_days(params)  # an 'end' without 'start', a malformed or reversed range: ParamError
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None  # a retry cannot fix the run's parameters
    if planned is None and not ds:  # a manual run created without a logical date
        raise AirflowFailException("no day to ingest: the run has no logical date and no 'start' param (trigger "
                                   "with {\"start\": \"YYYY-MM-DD\", \"end\": ...})")
    planned = [ds] if planned is None else planned
    try:
        check_not_future(planned, "ingest")  # the day's files are not complete before it ends
    except NothingToDo as exc:
        raise AirflowSkipException(str(exc)) from None  # not a failure: nothing to do yet, nothing written
    return planned


@task
def publish(source: str, validation: dict) -> dict:
    """Publish the validated landing files of ``source`` in day order (include.ingest.publish_validated);
    tag the Asset event with the days and rows."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.ingest import publish_validated
    from include.storage import UnusableFileError

    context = get_current_context()
    try:
        summary, extra = publish_validated(source, validation)
    except (RuntimeError, UnusableFileError) as exc:  # the file changed after validation, or is no longer
        raise AirflowFailException(str(exc)) from None  # a regular file: only a new validation can help
    for outlet in context["task"].outlets:
        context["outlet_events"][outlet].extra = extra
    return summary


@task
def report(transactions: dict, labels: dict) -> dict:
    """What the run published (and the run's final state: it fails when either source failed)."""
    return {"transactions": transactions, "labels": labels}


def _validate(source: str, run_days, **kwargs) -> GXCheckpointOperator:
    """The checkpoint of ``raw_<source>`` on the run's days, row-count bounds from the Variables."""
    return GXCheckpointOperator(
        task_id=f"validate_{source}",
        dataset=f"raw_{source}",
        partitions=run_days,
        overrides={key: f"{{{{ var.value.get('{name}', '') }}}}" for key, name in ROW_COUNT_VARIABLES.items()},
        **kwargs,
    )


@dag(
    dag_id="ingest",
    # a data-interval timetable: the run due at D + 1 00:00 UTC has ds = D, the day that just ended
    # ("@daily" is a CronTriggerTimetable in Airflow 3: ds would be the day that just began)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC") if time_schedules_enabled() else None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,  # label checks and row-count bounds read the days published before
    params=day_range_params("initial load"),
    tags=["batchml", "fraud", "ingest", "great-expectations"],
    default_args=default_args("data-platform", retries=2, retry_delay=dt.timedelta(minutes=5)),  # a late landing file
    doc_md=__doc__,
)
def ingest():
    run_days = days()
    validate_transactions = _validate("transactions", run_days)
    publish_transactions = publish.override(task_id="publish_transactions", outlets=[RAW_TRANSACTIONS])(
        "transactions", validate_transactions.output)
    # labels are checked against the published transactions of ds - 7: in a range run those are
    # published by this run, so wait for them, whatever happened to them (a bad transactions file of
    # ds says nothing about the labels arriving on ds), as long as `days` succeeded
    validate_labels = _validate("labels", run_days, trigger_rule="all_done_min_one_success")
    publish_transactions >> validate_labels
    publish_labels = publish.override(task_id="publish_labels", outlets=[RAW_LABELS])("labels", validate_labels.output)
    report(publish_transactions, publish_labels)

ingest()

"""The logic the DAG files call instead of holding it (issue 14, "DAG files hold wiring only"): ingest's
publish loop and its Asset extra, scoring's plan file and publish-once protocol, the days of Asset
events, monitoring's alert text. Real files, a real SQLite warehouse; no Airflow needed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from include.drift.alerts import drift_alert, triggers_training
from include.ingest import publish_validated
from include.pipelines.fraud.simulator.landing import write_landing_files
from include.run_days import event_days, event_extra
from include.scoring import PREDICTION_COLUMNS, StagedPredictionsMissing, publish_staged, write_plan
from include.storage import landing_file, partition_file, staged_partition_file, staging_dir, write_parquet_atomic
from tests.conftest import SMALL

DAY = SMALL.start_date + dt.timedelta(days=10)


# --- include.run_days.event_extra: the inverse of event_days -------------------------------------------------

def _events(*extras):
    return {"asset": [SimpleNamespace(extra=extra) for extra in extras]}


def test_one_day_is_a_ds_and_a_range_is_start_end_with_the_fields_after():
    assert event_extra(["2026-03-05"], rows=7) == {"ds": "2026-03-05", "rows": 7}
    assert event_extra([dt.date(2026, 3, 5), dt.date(2026, 3, 6), dt.date(2026, 3, 9)]) == \
        {"start": "2026-03-05", "end": "2026-03-09"}
    with pytest.raises(ValueError, match="must carry a day"):
        event_extra([])


@pytest.mark.parametrize("days", [["2026-03-05"], ["2026-03-05", "2026-03-06", "2026-03-07"]])
def test_event_days_reads_back_what_event_extra_writes(days):
    assert [d.isoformat() for d in event_days(_events(event_extra(days, rows=3)))] == days


def test_the_newest_drift_alert_day_is_what_training_reads():
    """The training DAG's as_of of a drift-triggered run: the newest ds of its drift_alert events."""
    from include.training.schedule import resolve_as_of

    events = _events({"ds": "2026-03-09", "model_version": "2"}, {"ds": "2026-03-12", "model_version": "3"}, None,
                     {"model_version": "4"})
    triggered = [d.isoformat() for d in event_days(events)]
    assert triggered == ["2026-03-09", "2026-03-12"]
    assert resolve_as_of(None, triggered, None) == "2026-03-12"
    assert resolve_as_of("2026-03-01", triggered, None) == "2026-03-01"  # the param wins
    with pytest.raises(ValueError, match=r"asset carries {'ds': '2026-13-01'}, not a day .YYYY-MM-DD."):
        event_days(_events({"ds": "2026-13-01"}))  # a malformed day fails: prepare turns it into a failure
    with pytest.raises(ValueError, match=r"asset carries {.start.: .2026-03-09., .end.: .2026-03-01.}"):
        event_days(_events({"start": "2026-03-09", "end": "2026-03-01"}))


# --- include.ingest.publish_validated: ingest's publish loop ------------------------------------------------

@pytest.fixture
def landed(data_root, small_sim):
    tx = small_sim.transactions
    write_landing_files(tx[(tx["ds"] >= DAY) & (tx["ds"] <= DAY + dt.timedelta(days=2))], data_root)
    return data_root


def _validation(source, days, root):
    """The checkpoint summary publish reads: each day with the checksum of the file that was validated."""
    return {"partitions": [{"ds": d.isoformat(), "sha256": hashlib.sha256(landing_file(source, d, root).read_bytes())
                            .hexdigest()} for d in days]}


def test_one_day_publishes_its_partition_and_tags_the_event_with_its_day(landed):
    summary, extra = publish_validated("transactions", _validation("transactions", [DAY], landed))
    rows = len(pd.read_parquet(landing_file("transactions", DAY, landed)))
    assert summary["ds"] == DAY.isoformat() and summary["rows"] == rows and summary["changed"] is True
    assert summary["path"] == str(partition_file("raw", "transactions", DAY, landed))
    assert extra == {"ds": DAY.isoformat(), "rows": rows}


def test_a_range_publishes_every_day_in_order_and_sums_the_rows(landed):
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    summary, extra = publish_validated("transactions", _validation("transactions", days, landed))
    rows = sum(len(pd.read_parquet(landing_file("transactions", d, landed))) for d in days)
    assert extra == {"start": days[0].isoformat(), "end": days[-1].isoformat(), "rows": rows}
    assert summary == {"days": 3, **extra}
    assert all(partition_file("raw", "transactions", d, landed).exists() for d in days)
    # a rerun with the same files keeps every partition, and reports the same event
    again, extra_again = publish_validated("transactions", _validation("transactions", days, landed))
    assert extra_again == extra and again == summary


def test_a_file_changed_after_validation_stops_the_loop_at_that_day(landed):
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    validation = _validation("transactions", days, landed)
    changed = landing_file("transactions", days[1], landed)
    frame = pd.read_parquet(changed)
    write_parquet_atomic(frame.iloc[:-1], changed)  # rewritten after the checkpoint saw it
    with pytest.raises(RuntimeError, match=rf"{changed}.* changed after validation"):
        publish_validated("transactions", validation)
    assert partition_file("raw", "transactions", days[0], landed).exists()  # each day is atomic; a rerun replaces it
    assert not partition_file("raw", "transactions", days[1], landed).exists()
    assert not partition_file("raw", "transactions", days[2], landed).exists()


def test_a_summary_without_partitions_is_named(data_root):
    with pytest.raises(ValueError, match="nothing to publish for transactions"):
        publish_validated("transactions", {"partitions": []})


# --- include.scoring.write_plan / publish_staged: the plan file and the publish-once protocol ----------------

def _plans(days):
    return [{"ds": d, "features": f"/lake/features/baseline/ds={d}/data.parquet",
             "model": {"name": "fraud", "version": "3", "run_id": "r1", "threshold": 0.5, "source": "promotions",
                       "uri": "models:/fraud/3"}} for d in days]


def _stage_predictions(staging, day, rows=4):
    frame = pd.DataFrame({
        "transaction_id": range(rows), "tx_datetime": pd.Timestamp(f"{day} 12:00", tz="UTC"),
        "customer_id": 1, "terminal_id": 2, "score": [0.1, 0.9, 0.4, 0.7][:rows], "flagged": [0, 1, 0, 1][:rows],
        "model_name": "fraud", "model_version": "3", "run_id": "r1", "threshold": 0.5,
        "scored_at": pd.Timestamp("2026-03-20 01:00", tz="UTC")})[PREDICTION_COLUMNS]
    write_parquet_atomic(frame, staged_partition_file(staging, day))


def test_write_plan_writes_the_plan_file_and_returns_small_json(data_root):
    staging = staging_dir("scheduled__2026-03-12", "scoring")
    days = ["2026-03-11", "2026-03-12"]
    xcom = write_plan(staging, _plans(days))
    assert json.loads((staging / "plans.json").read_text()) == _plans(days)
    assert xcom == {"days": days, "staging": str(staging), "plans": str(staging / "plans.json"),
                    "models": {d: "3" for d in days}}
    assert [p.name for p in staging.iterdir()] == ["plans.json"]  # no temporary file left
    json.dumps(xcom)  # XCom carries small JSON only


def test_publish_staged_publishes_once_and_a_retry_reuses_the_result(data_root):
    from sqlalchemy import text

    from include import warehouse

    days = ["2026-03-11", "2026-03-12"]
    staging = staging_dir("manual__1", "scoring")
    plan = write_plan(staging, _plans(days))
    for day in days:
        _stage_predictions(staging, day)
    result, extra = publish_staged(plan)
    assert result == {"rows": {d: 4 for d in days}, "models": {d: "3" for d in days}}
    assert extra == {"start": days[0], "end": days[-1]}
    assert not staging.exists()  # the staging is deleted once its result is recorded
    assert all(partition_file("predictions", "fraud", d).exists() for d in days)
    # a retry of the task (it died after the publish, before reporting success) publishes nothing twice
    assert publish_staged(plan) == (result, extra)
    with warehouse.engine().connect() as conn:
        assert conn.execute(text("select count(*) from predictions")).scalar() == 8


def test_publish_staged_names_the_days_and_the_folder_when_the_plan_or_a_day_is_gone(data_root):
    days = ["2026-03-11", "2026-03-12"]
    staging = staging_dir("manual__2", "scoring")
    plan = write_plan(staging, _plans(days))
    _stage_predictions(staging, days[0])  # the second day was never staged
    with pytest.raises(StagedPredictionsMissing, match=rf"no staged predictions for ds={days[1]} in {staging}"):
        publish_staged(plan)
    (staging / "plans.json").unlink()
    with pytest.raises(StagedPredictionsMissing, match=rf"plan file .*plans.json of ds={days[0]}, {days[1]} is gone"):
        publish_staged(plan)
    assert not partition_file("predictions", "fraud", days[0]).exists()  # nothing published


# --- include.drift.alerts: monitoring's alert ---------------------------------------------------------------

def _result(ds, triggers, version="3", alerts=("tx_amount: PSI 0.912 >= 0.2",)):
    return {"ds": ds, "model_version": version, "alerts": list(alerts), "report": f"/lake/reports/drift/ds={ds}",
            "triggers_training": triggers, "drifted": ["tx_amount"]}


def test_the_alert_is_the_newest_day_that_starts_an_episode():
    results = [_result("2026-03-10", False), _result("2026-03-11", True, "2"), _result("2026-03-12", True, "3",
               ("tx_amount: PSI 0.912 >= 0.2", "score: KS 0.31"))]
    assert triggers_training(results)
    alert = drift_alert(results)
    assert alert.subject == "drift alert ds=2026-03-12: model version 3"
    assert alert.message.splitlines() == ["tx_amount: PSI 0.912 >= 0.2", "score: KS 0.31",
                                          "report: /lake/reports/drift/ds=2026-03-12",
                                          "the training DAG is scheduled by this alert"]
    assert alert.event_extra == {"ds": "2026-03-12", "model_version": "3"}
    assert alert.summary({"log": "sent"}) == {"ds": "2026-03-12", "alerts": ["tx_amount: PSI 0.912 >= 0.2",
                                                                             "score: KS 0.31"],
                                              "notified": {"log": "sent"}}
    assert drift_alert(results, pipeline="churn").subject == "churn drift alert ds=2026-03-12: model version 3"


def test_a_quiet_run_has_no_alert_and_says_which_days_it_checked():
    results = [_result("2026-03-10", False), _result("2026-03-11", False)]
    assert not triggers_training(results) and not triggers_training([])
    with pytest.raises(ValueError, match="no day of the run starts a drift episode .days: 2026-03-10, 2026-03-11"):
        drift_alert(results)

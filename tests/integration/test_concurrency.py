"""Several runs at once on one lake and one PostgreSQL warehouse give what the same days run one by
one give: a backfill of 10 days split over concurrent processes (two of them on the same days at the
same time, as a duplicate trigger would), and processes opening a fresh warehouse together."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from include.jobs.score import run as score_job
from include.scoring import PREDICTIONS, plan_scoring, publish_predictions
from include.storage import day_range, partition_file, staging_dir
from tests.conftest import REPO, SMALL
from tests.fault_tools import NAME, champion_store, child_env, copy_zones, read_partition, warehouse_frame, without
from tests.postgres import fresh_database

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS = [d.isoformat() for d in day_range(SMALL.end_date - dt.timedelta(days=9), SMALL.end_date)]
HALF = len(DAYS) // 2
# (run id, first day, last day): two runs cover the 10 days; the third repeats the second's days. Each run is a
# Spark application of its own: three at once on 2 cores, so the days are few (30 took 320 s of the suite)
RUNS = [("backfill-a", DAYS[0], DAYS[HALF - 1]), ("backfill-b", DAYS[HALF], DAYS[-1]),
        ("backfill-b-again", DAYS[HALF], DAYS[-1])]

# One backfill run of the features and scoring DAGs, their steps in order (the checkpoints, which
# write no partition, left out): plan, spark job, publish; one Spark application for both jobs.
BACKFILL_RUN = """
import json, sys
from include.features.pipeline import plan_feature_days, publish_staged_features, record_planned_inputs
from include.jobs.build_features import run as build_features
from include.jobs.score import run as score
from include.scoring import plan_scoring, publish_predictions
from include.spark import get_session
from include.storage import day_range, staging_dir
run_id, start, end, model = sys.argv[1:5]
first, last = plan_feature_days(start, end, [])
spark = get_session(f"backfill {run_id}")
try:
    staging = staging_dir(run_id, "features")
    record_planned_inputs(staging, first, last)  # as the DAG's plan does: the days' lineage
    build_features(spark, first, last, staging)
    publish_staged_features(staging, first, last)
    plans = plan_scoring([d.isoformat() for d in day_range(first, last)], model)
    staging = staging_dir(run_id, "scoring")
    score(spark, plans, staging)
    print(json.dumps(publish_predictions(staging, plans)))
finally:
    spark.stop()
"""


def _outputs(root, days):
    """Lake partitions (features, predictions) and warehouse rows, without the scoring time."""
    return ({d: read_partition(partition_file("features", "baseline", d, root)) for d in days},
            {d: without(read_partition(partition_file(*PREDICTIONS, d, root)), "scored_at") for d in days},
            without(warehouse_frame("predictions", days), "scored_at"),
            without(warehouse_frame("prediction_days", days), "scored_at"))


def _champion_before(day: str) -> None:
    """Record in the configured warehouse that version 1 was promoted as of the day before ``day``: the
    backfilled days had a champion (the shared store's training is as of a later day, and days before a
    champion's promotion are never scored: docs/operations.md, "Odd dates")."""
    import datetime as dt

    from include import warehouse

    now = dt.datetime.now(dt.UTC)
    warehouse.record_decision({
        "model_name": NAME, "as_of": dt.date.fromisoformat(day) - dt.timedelta(days=1), "challenger_version": "1",
        "challenger_run_id": "", "champion_version": None, "decision": "promote", "promoted": True,
        "reason": "test: the champion of the backfilled days", "primary_metric": "average_precision",
        "decided_at": now, "promoted_at": now})


def test_concurrent_backfill_equals_days_run_one_by_one(spark, feature_lake_template, tmp_path_factory, tmp_path,
                                                        monkeypatch, reliability):
    case = reliability.case(
        "concurrency", "backfill of 10 days (features + scoring) by 3 processes at once on one lake and one "
                       "PostgreSQL warehouse, two of them on the same 5 days",
        expected="every run succeeds; features, prediction partitions, warehouse predictions and day summaries "
                 "equal those of the same 10 days run one after the other in one process; no duplicate row")
    tracking_uri = champion_store(feature_lake_template, tmp_path_factory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)

    # one after the other, in one process: the features of the session's lake (one Spark range, equal to
    # single days: test_features_spark.py), each day scored and published in turn
    serial = copy_zones(feature_lake_template, tmp_path / "serial", zones=("features",))
    monkeypatch.setenv("BATCHML_DATA_ROOT", str(serial))
    with fresh_database("batchml_serial") as url:
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
        _champion_before(DAYS[0])
        plans = plan_scoring(DAYS, NAME)
        staging = staging_dir("serial", "scoring", root=serial)
        score_job(spark, plans, staging)
        publish_predictions(staging, plans, serial)
        reference = _outputs(serial, DAYS)

    concurrent = copy_zones(feature_lake_template, tmp_path / "concurrent", zones=("raw",))
    monkeypatch.setenv("BATCHML_DATA_ROOT", str(concurrent))
    with fresh_database("batchml_concurrent") as url:
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
        _champion_before(DAYS[0])
        env = child_env(concurrent, MLFLOW_TRACKING_URI=tracking_uri, BATCHML_WAREHOUSE_URL=url)
        began = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", BACKFILL_RUN, run_id, start, end, NAME], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for run_id, start, end in RUNS]
        results = [(p.communicate(timeout=600), p.returncode) for p in procs]
        seconds = time.perf_counter() - began
        failed = {run[0]: err[-2500:] for run, ((_, err), code) in zip(RUNS, results, strict=True) if code != 0}
        assert not failed, failed
        published = [json.loads(out.strip().splitlines()[-1]) for (out, _), _code in results]
        assert [sorted(p["rows"]) for p in published] == [DAYS[:HALF], DAYS[HALF:], DAYS[HALF:]]
        got = _outputs(concurrent, DAYS)
        predictions = got[2]
        dups = predictions.duplicated(["ds", "transaction_id"]).sum()
        assert dups == 0, f"{dups} duplicate warehouse rows"
    for day in DAYS:
        pd.testing.assert_frame_equal(got[0][day], reference[0][day], obj=f"features ds={day}")
        pd.testing.assert_frame_equal(got[1][day], reference[1][day], obj=f"predictions ds={day}")
    pd.testing.assert_frame_equal(got[2], reference[2], obj="warehouse predictions")
    pd.testing.assert_frame_equal(got[3], reference[3], obj="warehouse prediction_days")
    case.observed = (f"3 runs succeeded in {seconds:.0f}s; {len(predictions)} warehouse rows over {len(DAYS)} days, no "
                     "duplicate; features, partitions, rows and day summaries equal to the one-by-one run")


SAME_DAY_WRITER = """
import datetime as dt, sys, time
import pandas as pd
from include import warehouse
start, writer = float(sys.argv[1]), int(sys.argv[2])
frame = pd.DataFrame({"transaction_id": range(2000), "customer_id": 1, "terminal_id": 2,
                      "tx_datetime": pd.Timestamp("2026-04-01 10:00"), "score": writer / 10, "flagged": 0,
                      "model_name": "fraud-detector", "model_version": str(writer), "run_id": "r", "threshold": 0.5,
                      "scored_at": pd.Timestamp("2026-04-02", tz="UTC")})
time.sleep(max(0.0, start - time.time()))  # every process opens the fresh warehouse at the same moment
for _ in range(5):
    warehouse.replace_predictions(dt.date(2026, 4, 1), frame)
"""


def test_writers_of_the_same_day_on_a_fresh_warehouse_at_once(data_root, monkeypatch, reliability):
    case = reliability.case(
        "concurrency", "4 processes open a fresh PostgreSQL warehouse at the same moment (tables created on "
                       "first use) and replace the same day's 2,000 predictions 5 times each",
        expected="every write succeeds (no CREATE TABLE race, no unique violation, no deadlock); the day holds "
                 "one writer's 2,000 rows and its one summary row")
    with fresh_database("batchml_same_day") as url:
        env = child_env(data_root, BATCHML_WAREHOUSE_URL=url)
        start = time.time() + 6  # after every child's imports
        procs = [subprocess.Popen([sys.executable, "-c", SAME_DAY_WRITER, str(start), str(w)], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(1, 5)]
        results = [(p.communicate(timeout=120), p.returncode) for p in procs]
        errors = [err.strip().splitlines()[-1][:200] for (_, err), code in results if code != 0]
        case.observed = f"{4 - len(errors)} of 4 writers succeeded" + (f"; errors: {errors[:2]}" if errors else "")
        assert not errors, errors
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
        rows, days = (warehouse_frame(t, ["2026-04-01"]) for t in ("predictions", "prediction_days"))
    assert len(rows) == rows["transaction_id"].nunique() == 2000 and rows["model_version"].nunique() == 1
    assert days["rows"].tolist() == [2000] and days["model_version"].tolist() == rows["model_version"].unique().tolist()
    case.observed += "; the day holds one writer's 2,000 rows and one summary row"


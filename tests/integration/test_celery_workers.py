"""Airflow beyond one machine: the CeleryExecutor with two workers, next to the production stack's
Spark standalone cluster (tests/production_stack.py).

A fresh Airflow metadata database and warehouse on PostgreSQL, a private Redis broker (Debian's
redis-server), the scheduler, DAG processor, triggerer and API server on ``CeleryExecutor`` and two
``airflow celery worker`` processes that report distinct hostnames (two machines, as far as Airflow
can tell). A backfill of the first days of the demo's history is triggered at once: one ingest run per
day (its GX checkpoints on both sources) and the feature runs their Asset events start, which run
beside the next ingest run. Tasks of both DAGs land on both workers, the GX project is shared (its
lock holds across workers through the PostgreSQL warehouse), and the lake partitions equal those the
demo's sequential history load (LocalExecutor, one ingest run over the range) wrote from the same
landing files. Every day gets its features from the runs the Asset events start, with no backfill by
hand, although Airflow 3.3 drops the queued events of a day published while the previous feature run
holds the DAG's one slot (docs/operations.md, "Late data"; tests/integration/test_lost_asset_queue_row.py).
Only the two DAGs under test are in the DAG folder the services parse.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.postgres import fresh_database
from tests.production_stack import START
from tests.services import REPO, celery_workers, free_port, redis_server

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.production]

DAYS = [START + dt.timedelta(days=i) for i in range(3)]
WORKERS = ["celery-worker-1", "celery-worker-2"]
PARTITIONS = (("raw", "transactions"), ("raw", "labels"), ("features", "baseline"))


def _frame(path: Path):
    import pandas as pd

    frame = pd.read_parquet(path)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _plan(api, run_id: str) -> dict:
    """The XCom of a feature run's ``plan``: its days, and the days it added and why."""
    response = api.client.get(f"/dags/features/dagRuns/{run_id}/taskInstances/plan/xcomEntries/return_value",
                              params={"deserialize": True})
    assert response.status_code == 200, response.text[:500]
    value = response.json()["value"]
    return value if isinstance(value, dict) else json.loads(value)


def test_a_backfill_on_two_celery_workers_equals_the_sequential_one(production, reliability, tmp_path):
    case = reliability.case("production path", "CeleryExecutor, two workers, a concurrent backfill",
                            expected="ingest (GX checkpoints included) and features of 3 days run on both workers "
                                     "at once and publish the same partitions as the sequential history load")
    out = production["out"]
    if out.returncode != 0:
        pytest.fail(f"the demo whose history load is the reference failed:\n{out.stdout[-3000:]}")
    import pandas as pd

    from include.storage import landing_file, partition_file
    from tools.local_airflow import LocalAirflow

    reference = Path(production["config"]["BATCHML_DATA_ROOT"])
    lake, home, logs, dags = tmp_path / "lake", tmp_path / "airflow-home", tmp_path / "logs", tmp_path / "dags"
    dags.mkdir()
    for name in ("ingest.py", "features.py"):  # what the DAG processor parses (every service and worker)
        (dags / name).symlink_to(Path(REPO) / "dags" / name)
    for day in DAYS:
        for source in ("transactions", "labels"):
            target = landing_file(source, day, lake)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(landing_file(source, day, reference), target)

    began = time.perf_counter()
    with fresh_database("batchml_celery_airflow") as airflow_db, fresh_database("batchml_celery_wh") as wh, \
            redis_server(logs) as broker:
        env = {**production["env"], "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
               "BATCHML_DATA_ROOT": str(lake), "BATCHML_WAREHOUSE_URL": wh, "BATCHML_TIME_SCHEDULES": "off",
               "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CELERY__BROKER_URL": broker,
               # task results in the metadata database, as in docker-compose.yaml
               "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db}"}
        init = subprocess.run(["bash", "-c", "source scripts/airflow-env.sh && scripts/airflow-home.sh"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300)
        assert init.returncode == 0, f"airflow-home.sh failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
        port = free_port()
        airflow = LocalAirflow(home, port=port, env=env)
        since = dt.datetime.now(dt.UTC)
        with airflow, celery_workers(WORKERS, {**env, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL":
                                               f"{airflow.base_url}/execution/", "AIRFLOW__API__PORT": str(port)},
                                     logs):
            started = time.perf_counter()
            api = airflow.api()
            api.wait_for_dags(["ingest", "features"], since=since)
            for dag_id in ("ingest", "features"):
                api.set_paused(dag_id, False)
            since = dt.datetime.now(dt.UTC)
            for day in DAYS:  # all at once: one ingest run per day, ordered by logical date
                api.trigger("ingest", {"start": day.isoformat(), "end": day.isoformat()},
                            dt.datetime.combine(day, dt.time(), dt.UTC))
            # a feature run's Asset events can wait in the queue while the previous run holds the DAG's one
            # run slot (max_active_runs=1); on a loaded machine the scheduler may take more than settle's
            # default 8 quiet seconds to start it once the slot frees
            runs = api.settle(["ingest", "features"], since, quiet=30, timeout=600)
            backfill_s = time.perf_counter() - started
            tis = {dag_id: [ti for r in rs for ti in api.task_instances(dag_id, r["dag_run_id"])]
                   for dag_id, rs in runs.items()}
            # the days a feature run added because their queued events were dropped (docs/operations.md, "Late data")
            unfeatured = sorted(d for r in runs["features"] for d in _plan(api, r["dag_run_id"])["unfeatured"])
        states = {dag_id: [r["state"] for r in rs] for dag_id, rs in runs.items()}
        assert states["ingest"] == ["success"] * len(DAYS), states
        assert states["features"] and set(states["features"]) == {"success"}, states
        # every day has features from the runs the Asset events started, none of them by hand
        assert {r["run_type"] for r in runs["features"]} == {"asset_triggered"}, runs["features"]

        # both workers ran tasks, of both DAGs, and the runs overlapped (a feature run beside an ingest run)
        ran = [ti for t in tis.values() for ti in t if ti["state"] == "success" and ti.get("hostname")]
        hosts = {ti["hostname"] for ti in ran}
        assert hosts == set(WORKERS), hosts
        per_worker = {h: sorted({ti["dag_id"] for ti in ran if ti["hostname"] == h}) for h in WORKERS}
        spans = {dag_id: [(r["start_date"], r["end_date"]) for r in rs] for dag_id, rs in runs.items()}
        overlapped = any(fs < ie and is_ < fe for fs, fe in spans["features"] for is_, ie in spans["ingest"])
        assert overlapped, spans

        # nothing in the warehouse: ingest and features write none, and no failure alert was recorded
        engine = sa.create_engine(wh)
        try:
            with engine.connect() as conn:
                alerts = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
        finally:
            engine.dispose()
        assert alerts == 0

    # the same partitions as the sequential load, row for row
    rows = {}
    for zone, dataset in PARTITIONS:
        for day in DAYS:
            mine, theirs = _frame(partition_file(zone, dataset, day, lake)), \
                _frame(partition_file(zone, dataset, day, reference))
            pd.testing.assert_frame_equal(mine, theirs, check_like=True, obj=f"{zone}/{dataset} ds={day}")
            rows[f"{zone}/{dataset}"] = rows.get(f"{zone}/{dataset}", 0) + len(mine)

    # the shared GX project: one stored result per checkpoint run, each whole JSON; the Data Docs index whole
    validations = lake / "gx" / "gx" / "uncommitted" / "validations"
    for suite in ("raw_transactions", "raw_labels"):
        results = [p for p in validations.rglob("*.json") if suite in p.relative_to(validations).parts]
        assert len(results) == len(DAYS), (suite, results)
        assert all(json.loads(p.read_text())["success"] for p in results), suite
    index = (lake / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    assert index.rstrip().endswith("</html>") and "raw_transactions" in index and "raw_labels" in index

    case.observed = (f"{len(ran)} tasks on {sorted(hosts)} (DAGs per worker {per_worker}); ingest {len(DAYS)} runs, "
                     f"features {len(runs['features'])} run(s), overlapping (days a plan added for dropped events: {unfeatured}); "
                     f"backfill {backfill_s:.0f}s, whole test "
                     f"{time.perf_counter() - began:.0f}s; partitions equal the sequential load: {rows}")

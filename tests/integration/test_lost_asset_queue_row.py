"""Airflow 3.3 drops the queued Asset events of a raw day published while ``features`` waits for its
one run slot; no published day is left without features all the same (docs/operations.md, "Late and
out-of-order data"). The real scheduler, DAG processor and LocalExecutor on a SQLite metadata
database, the real features DAG (Spark in local mode, its GX checkpoint); the raw days are published
by ``include.ingest.publish_landing`` and announced through the REST API (``POST /assets/events``), as
``ingest``'s publish tasks do, so no ingest run is needed.

What Airflow does (airflow/assets/manager.py ``_queue_dagruns_nonpartitioned_*``,
airflow/jobs/scheduler_job_runner.py ``_create_dag_runs_asset_triggered``): the queue keeps one row
per raw Asset and DAG, stamped when the first waiting event came (a later event leaves the row as it
is); the run it creates consumes the events up to the newest stamp and deletes the rows, those of the
later events included. Here a run holds the slot while D1, D2 and D3's transactions are published;
the next run takes D1's events only and the queue is empty; its plan (which runs after those
publishes) adds D2. D3's labels then come alone, after that plan: their queue row starts a run by
itself and D3 gets features.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SMALL
from tests.services import REPO, free_port

pytestmark = [pytest.mark.spark, pytest.mark.slow]

D1, D2, D3 = (SMALL.start_date + dt.timedelta(days=n) for n in (40, 41, 42))


def _airflow_home(home: Path) -> dict[str, str]:
    """A metadata database of its own (SQLite), migrated, with airflow_settings.yaml applied."""
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "BATCHML_TIME_SCHEDULES": "off"}
    init = subprocess.run(["bash", "-c", "source scripts/airflow-env.sh && scripts/airflow-home.sh"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, f"airflow-home.sh failed:\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}"
    return env


class Ingest:
    """``ingest``'s publish step for one source and day: the landing file into raw/, then its Asset event."""

    def __init__(self, api, root: Path):
        self.api, self.root = api, root
        self.asset_ids = {a["name"]: a["id"] for a in api.call("GET", "/assets", params={"limit": 100})["assets"]}

    def publish(self, source: str, day: dt.date) -> None:
        from include.ingest import publish_landing
        from include.storage import file_sha256, landing_file

        publish_landing(source, day, file_sha256(landing_file(source, day, self.root)), self.root)
        self.api.announce(f"raw_{source}", {"ds": day.isoformat()})


def _wait(what: str, condition, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(1)
    raise AssertionError(f"not after {timeout:.0f}s: {what}")


def _task_state(api, run_id: str, task_id: str) -> str | None:
    return {t["task_id"]: t["state"] for t in api.task_instances("features", run_id)}.get(task_id)


def _consumed_days(api, run_id: str) -> list[tuple[str, str]]:
    events = api.call("GET", f"/dags/features/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]
    return sorted((e["extra"]["ds"], e["name"] or e["uri"]) for e in events)


def _plan(api, run_id: str) -> dict:
    entry = api.call("GET", f"/dags/features/dagRuns/{run_id}/taskInstances/plan/xcomEntries/return_value",
                     params={"deserialize": True})
    return entry["value"] if isinstance(entry["value"], dict) else json.loads(entry["value"])


def test_days_whose_queued_events_airflow_drops_get_features(data_root, small_sim, tmp_path):
    from include.pipelines.fraud.simulator.landing import write_landing_files
    from include.storage import partition_file
    from tools.local_airflow import LocalAirflow

    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= D3], data_root)
    began = time.perf_counter()
    env = _airflow_home(tmp_path / "airflow-home")
    with LocalAirflow(Path(env["AIRFLOW_HOME"]), port=free_port(), env=env) as airflow:
        api = airflow.api()
        since = dt.datetime.now(dt.UTC)
        api.wait_for_dags(["features"], since=since)
        ingest = Ingest(api, data_root)
        api.set_paused("features", False)
        # a run holds the features DAG's one slot (max_active_runs=1): its plan waits for a pool slot; its day is
        # not over yet, so once it runs it skips (no Spark)
        slots = api.call("GET", "/pools/default_pool")["slots"]
        api.call("PATCH", "/pools/default_pool", json={"slots": 0}, params={"update_mask": "slots"})
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
        holder = api.trigger("features", {"start": tomorrow})["dag_run_id"]
        _wait("the holding run is running",
              lambda: api.call("GET", f"/dags/features/dagRuns/{holder}")["state"] == "running")
        for source, day in (("transactions", D1), ("labels", D1), ("transactions", D2), ("labels", D2),
                            ("transactions", D3)):
            ingest.publish(source, day)
        queued = api.queued_asset_events("features")
        assert sorted(q["asset_id"] for q in queued) == sorted(ingest.asset_ids[f"raw_{s}"] for s in
                                                                ("transactions", "labels")), queued  # 5 events, 2 rows

        api.call("PATCH", "/pools/default_pool", json={"slots": slots}, params={"update_mask": "slots"})
        second = _wait("the run after the holding one", lambda: api.runs(
            "features", run_type="asset_triggered", run_after_gte=since.isoformat()))[-1]["dag_run_id"]
        _wait("its plan", lambda: _task_state(api, second, "plan") in ("success", "failed", "up_for_retry"))
        # Airflow: it consumed D1's events only, and the queue is empty: D2's and D3's events went to no run
        assert _consumed_days(api, second) == [(str(D1), "raw_labels"), (str(D1), "raw_transactions")]
        assert api.queued_asset_events("features") == []
        # ours: its plan adds D2 (published, no features); D3's labels are not published, so it stops there
        plan = _plan(api, second)
        assert (plan["requested"], plan["start"], plan["end"]) == ([str(D1), str(D1)], str(D1), str(D2)), plan
        assert list(plan["unfeatured"]) == [str(D2)] and "are published and features" in plan["unfeatured"][str(D2)][0]

        ingest.publish("labels", D3)  # alone: the queue row of D3's transactions is gone
        runs = api.settle(["features"], since)["features"]
        assert [r["state"] for r in runs] == ["success"] * 3, runs
        assert runs[0]["dag_run_id"] == holder and {t["state"] for t in api.task_instances("features", holder)} == {
            "skipped"}
        third = runs[2]["dag_run_id"]
        assert (str(D3), "raw_labels") in _consumed_days(api, third)
        assert _plan(api, third)["end"] == str(D3)
        assert api.queued_asset_events("features") == []
    missing = [d for d in (D1, D2, D3) if not partition_file("features", "baseline", d, data_root).exists()]
    assert missing == [], f"no features for {missing} ({time.perf_counter() - began:.0f}s)"

"""The operations suite: what on-call operators and the scheduler do to inputs that are right, each
case through the real scheduler (docs/operations.md states the promises it checks).

It runs on the production stack of the session (tests/production_stack.py: PostgreSQL for Airflow
and the warehouse, an ``mlflow server``, a Spark standalone cluster, every process in a non-UTC
zone), after `make demo`'s driver has run there: a 72-day history, a first champion (v1, as of
2026-04-13), a drifted night 2026-04-14 whose ``drift_alert`` retrained and promoted v2. The story
then goes on, one operator action per step, in this order:

1. runs dated in the future, and a backfill of days before the first champion: skipped, not red;
2. monitoring of the alerting night triggered twice at once: no duplicate rows, no alert re-sent;
3. ``make rollback`` (v2 -> v1), then the training run of 2026-04-14 cleared whole: the alias stays;
4. the warehouse restored from a copy taken before the rollback, then 2026-04-16 delivered before
   2026-04-15 (out of order): the rollback is rebuilt from the registry, the old drift episode is
   not re-triggered;
5. a clear in the middle of that finished chain (scoring's ``score`` and what follows);
6. the warehouse deleted, then 2026-04-15 delivered late: exactly the days it affects are recomputed
   and equal an in-order run, scored by the right model, no old episode re-triggered; the warehouse
   is rebuilt from the lake and the registry.

Each case reads the lake, the warehouse and the registry directly. The test process runs in the
same non-UTC zone as the services.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.production_stack import DAG_IDS, NIGHT, NON_UTC, training_config_dict
from tests.services import REPO, free_port

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.production]

N2, N3 = NIGHT + dt.timedelta(days=1), NIGHT + dt.timedelta(days=2)  # landed, not run by the demo
MODEL = training_config_dict()["registered_model"]
CHAIN = ("ingest", "features", "scoring", "monitoring", "training")


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


@dataclass
class Ops:
    """The running stack, and the reads every case makes."""

    api: Any
    root: Path
    env: dict[str, str]
    warehouse_url: str
    snapshot: dict[str, list[dict]] = field(default_factory=dict)

    def rows(self, sql: str, **params) -> list[dict]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.warehouse_url)
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def drift_alerts_emitted(self) -> int:
        return len(self.api.asset_events(source_dag_id="monitoring", source_task_id="emit_drift_alert"))

    def training_runs(self) -> int:
        return len(self.api.runs("training"))

    def champion(self) -> str:
        from include import registry

        return str(registry.alias_version(MODEL, registry.CHAMPION).version)

    def run_chain(self, dag_id: str, conf: dict | None = None, logical_date: dt.datetime | None = None) -> dict:
        """Trigger ``dag_id`` and wait for it and every run the Asset schedules start after it."""
        since = dt.datetime.now(dt.UTC)
        run = self.api.trigger(dag_id, conf, logical_date)
        runs = self.api.settle(list(CHAIN), since)
        assert any(r["dag_run_id"] == run["dag_run_id"] for r in runs[dag_id]), runs
        return runs

    def clear_chain(self, dag_id: str, run_id: str, task_ids: list[str] | None = None) -> dict:
        """Clear tasks of a finished run (with their downstream tasks), wait for that run to finish
        again and for every run its Asset events start."""
        since = dt.datetime.now(dt.UTC)
        self.api.clear(dag_id, run_id, task_ids)
        rerun = self.api.wait_run(dag_id, run_id, timeout=600)
        return {**self.api.settle(list(CHAIN), since), "rerun": rerun}

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {t["task_id"]: t["state"] for t in self.api.task_instances(dag_id, run_id)}

    def drift_rows_per_column(self, day: dt.date) -> list[dict]:
        """The day's drift rows counted per column: one each when no run appended to another's."""
        return self.rows("SELECT column_name, count(*) AS n FROM drift_metrics WHERE ds = :ds GROUP BY column_name",
                         ds=day)

    def predictions(self, day: dt.date) -> dict:
        return self.rows("SELECT count(*) AS n, count(DISTINCT transaction_id) AS ids, "
                         "min(model_version) AS lo, max(model_version) AS hi FROM predictions WHERE ds = :ds",
                         ds=day)[0]


def snapshot_tables(url: str) -> dict[str, list[dict]]:
    """Every row of every warehouse table: the 'older copy' a restore brings back."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    try:
        with engine.connect() as conn:
            return {t.name: [dict(r._mapping) for r in conn.execute(t.select())] for t in meta.sorted_tables}
    finally:
        engine.dispose()


def restore_tables(url: str, snapshot: dict[str, list[dict]]) -> None:
    """Put the warehouse back as the snapshot was (rows and id sequences), as a restore from a backup does."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    try:
        with engine.begin() as conn:
            for table in reversed(meta.sorted_tables):
                conn.execute(table.delete())
            for table in meta.sorted_tables:
                if snapshot.get(table.name):
                    conn.execute(table.insert(), snapshot[table.name])
                if "id" in table.c and table.c.id.autoincrement:
                    conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                         f"(SELECT COALESCE(max(id), 0) + 1 FROM {table.name}), false)"))
    finally:
        engine.dispose()


def drop_tables(url: str) -> None:
    """The warehouse lost: every table gone."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    try:
        meta.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def ops(production):
    out = production["out"]
    if out.returncode != 0:
        pytest.fail(f"the demo the operations suite starts from failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    from include import warehouse
    from tools.local_airflow import LocalAirflow

    config = production["config"]
    with pytest.MonkeyPatch.context() as mp:
        for name in ("BATCHML_DATA_ROOT", "BATCHML_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "BATCHML_TRAINING_CONFIG"):
            mp.setenv(name, config[name])
        for name, value in NON_UTC.items():  # this process too: its reads and day arithmetic
            mp.setenv(name, value)
        time.tzset()
        warehouse.dispose_engines()
        # the older copy of step 4: the warehouse as the demo left it, before any operator action
        snapshot = snapshot_tables(config["BATCHML_WAREHOUSE_URL"])
        airflow = LocalAirflow(Path(config["AIRFLOW_HOME"]), port=free_port(),
                               env={**production["env"], "BATCHML_TIME_SCHEDULES": "off"})
        started = dt.datetime.now(dt.UTC)
        try:
            with airflow:
                api = airflow.api()
                api.wait_for_dags(list(DAG_IDS), since=started)
                for dag_id in DAG_IDS:
                    api.set_paused(dag_id, False)
                yield Ops(api=api, root=Path(config["BATCHML_DATA_ROOT"]), env=production["env"],
                          warehouse_url=config["BATCHML_WAREHOUSE_URL"], snapshot=snapshot)
                for dag_id in DAG_IDS:
                    api.set_paused(dag_id, True)
        finally:
            warehouse.dispose_engines()
    time.tzset()


@pytest.fixture(scope="module")
def baseline(ops) -> dict[str, Any]:
    """What the demo left, read before any case acts."""
    from include import ml_monitor

    return {"drift_alerts": ops.drift_alerts_emitted(), "training_runs": ops.training_runs(),
            "champion": ops.champion(), "window": ml_monitor.resolve_window(),
            "promotions": ops.rows("SELECT as_of, decision, challenger_version, promoted FROM promotions ORDER BY id")}


# --- 1. odd dates -------------------------------------------------------------------------------------


def test_runs_dated_in_the_future_are_skipped_with_a_reason(ops, baseline, reliability):
    case = reliability.case("operations", "runs dated in the future: ingest, features, scoring and monitoring "
                            "for tomorrow (UTC), training as of tomorrow",
                            expected="every run green, its first task skipped with the reason; no file, row or "
                                     "model version written; the ML monitor's default view unchanged")
    from include import ml_monitor
    from include.run_days import today_utc

    tomorrow = today_utc() + dt.timedelta(days=1)
    day = {"start": tomorrow.isoformat(), "end": tomorrow.isoformat()}
    since = dt.datetime.now(dt.UTC)
    # by params: a run whose *logical date* is in the future is held by Airflow itself (its tasks wait,
    # "execution date is in the future") until that moment, when `days` skips it as a day not over yet
    runs = {"ingest": ops.api.trigger("ingest", day),
            "features": ops.api.trigger("features", day), "scoring": ops.api.trigger("scoring", day),
            "monitoring": ops.api.trigger("monitoring", day),
            "training": ops.api.trigger("training", {"as_of": tomorrow.isoformat()})}
    ops.api.settle(list(CHAIN), since)
    first = {"ingest": "days", "features": "plan", "scoring": "plan", "monitoring": "check_drift",
             "training": "prepare"}
    observed = {}
    for dag_id, run in runs.items():
        state = ops.api.call("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}")["state"]
        tasks = ops.states(dag_id, run["dag_run_id"])
        observed[dag_id] = (state, tasks[first[dag_id]])
        assert state == "success" and tasks[first[dag_id]] == "skipped", (dag_id, state, tasks)
        assert not [t for t, s in tasks.items() if s not in ("skipped", None)], (dag_id, tasks)
    assert not list(ops.root.glob(f"*/*/ds={tomorrow.isoformat()}")), "a partition of the future day was written"
    assert ml_monitor.resolve_window() == baseline["window"]
    for table in ("predictions", "drift_metrics", "data_quality"):
        assert not ops.rows(f"SELECT ds FROM {table} WHERE ds >= :ds LIMIT 1", ds=tomorrow), table
    assert ops.training_runs() == baseline["training_runs"] + 1 and ops.champion() == baseline["champion"]
    case.observed = f"run and first task states: {observed}; nothing written for {tomorrow}"


def test_a_run_with_a_future_logical_date_is_held_and_writes_nothing(ops, baseline, reliability):
    case = reliability.case("operations", "ingest triggered with tomorrow's date (UTC) as its logical date",
                            expected="Airflow holds the run (no task starts before its date); nothing is "
                                     "validated, quarantined or published; marked failed and deleted, the run "
                                     "frees the DAG")
    from include.run_days import today_utc

    tomorrow = today_utc() + dt.timedelta(days=1)
    run = ops.api.trigger("ingest", None, utc_midnight(tomorrow))
    time.sleep(20)  # several scheduler loops
    state = ops.api.call("GET", f"/dags/ingest/dagRuns/{run['dag_run_id']}")["state"]
    tasks = ops.states("ingest", run["dag_run_id"])
    started = {t: st for t, st in tasks.items() if st in ("running", "success", "failed", "skipped", "up_for_retry")}
    assert state in ("queued", "running") and not started, (state, tasks)
    # Airflow deletes no running run: mark it failed first (what the operator does with a typo)
    ops.api.call("PATCH", f"/dags/ingest/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    ops.api.call("DELETE", f"/dags/ingest/dagRuns/{run['dag_run_id']}")
    assert not list(ops.root.glob(f"*/*/ds={tomorrow.isoformat()}"))
    assert not list((ops.root / "quarantine").glob(f"**/ds={tomorrow.isoformat()}"))
    case.observed = f"run {state}, no task started after 20 s; deleted; nothing written for {tomorrow}"


def test_a_backfill_before_the_first_champion_is_skipped(ops, baseline, reliability):
    case = reliability.case("operations", "scoring and monitoring backfills of days before the first champion",
                            expected="both runs green with plan / check_drift skipped, naming the first promotion; "
                                     "the days stay unscored (never scored with today's champion)")
    days = {"start": "2026-03-02", "end": "2026-03-04"}  # features exist; the first champion is as of 2026-04-13
    observed = {}
    for dag_id, task in (("scoring", "plan"), ("monitoring", "check_drift")):
        runs = ops.run_chain(dag_id, days)
        run = runs[dag_id][0]
        tasks = ops.states(dag_id, run["dag_run_id"])
        observed[dag_id] = (run["state"], tasks[task])
        assert run["state"] == "success" and tasks[task] == "skipped", (dag_id, run["state"], tasks)
    assert not ops.rows("SELECT ds FROM predictions WHERE ds BETWEEN '2026-03-02' AND '2026-03-04' LIMIT 1")
    assert not list((ops.root / "predictions" / "fraud").glob("ds=2026-03-0[234]"))
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"]
    case.observed = f"run and task states: {observed}; no prediction row or partition for 2026-03-02..04"


# --- 2. the same run twice at once; a rerun of an alerting day -------------------------------------------


def test_monitoring_of_the_alerting_night_triggered_twice_at_once(ops, baseline, reliability):
    case = reliability.case("operations", "monitoring of the night that raised the drift alert, triggered twice at "
                            "once",
                            expected="both runs green; one set of drift rows for the day, no duplicate; "
                                     "emit_drift_alert skipped in both: no alert re-sent, no retraining")
    day = {"start": NIGHT.isoformat(), "end": NIGHT.isoformat()}
    since = dt.datetime.now(dt.UTC)
    first, second = ops.api.trigger("monitoring", day), ops.api.trigger("monitoring", day)
    runs = ops.api.settle(list(CHAIN), since)
    emitted = {}
    for run in (first, second):
        tasks = ops.states("monitoring", run["dag_run_id"])
        emitted[run["dag_run_id"]] = tasks["emit_drift_alert"]
        assert tasks["check_drift"] == "success" and tasks["emit_drift_alert"] == "skipped", tasks
    drift = ops.drift_rows_per_column(NIGHT)
    assert drift and {r["n"] for r in drift} == {1}, drift
    alerts = ops.rows("SELECT kind, triggered_training FROM alerts WHERE ds = :ds AND kind <> 'deadline_missed'",
                      ds=NIGHT)
    assert any(a["triggered_training"] for a in alerts), f"the night's episode is history and stays: {alerts}"
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"]
    assert not runs["training"], "a retraining was started"
    case.observed = (f"emit_drift_alert {sorted(emitted.values())}; {len(drift)} drift rows, one per column; "
                     f"drift_alert events still {baseline['drift_alerts']}; no training run")


# --- 3. a rollback, then reruns ----------------------------------------------------------------------------


def test_a_rollback_stands_when_the_training_run_is_cleared(ops, baseline, reliability):
    case = reliability.case("operations", "make rollback, then the training run that promoted the rolled-back "
                            "version cleared whole and rerun",
                            expected="the run is green, promote skipped with the recorded decision as its reason; "
                                     "the champion stays the restored version; no new MLflow run, version or "
                                     "decision")
    from include.training import tracking

    assert baseline["champion"] == "2", f"the demo's retraining was not promoted: {baseline['promotions']}"
    rolled = subprocess.run(["bash", "-c", "source scripts/airflow-env.sh && python -m include.registry rollback"],
                            cwd=REPO, env=ops.env, capture_output=True, text=True, timeout=300)
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    assert ops.champion() == "1"
    client = tracking.client()
    experiment = client.get_experiment_by_name(training_config_dict()["experiment"])
    runs_before = len(client.search_runs([experiment.experiment_id], max_results=1000))
    versions_before = len(client.search_model_versions(f"name = '{MODEL}'"))
    # the drift retraining as of the night, which promoted v2
    promoted_run = next(r for r in ops.api.runs("training") if r["run_type"] == "asset_triggered")
    ops.clear_chain("training", promoted_run["dag_run_id"])
    tasks = ops.states("training", promoted_run["dag_run_id"])
    assert tasks["promote"] == "skipped", tasks
    assert ops.champion() == "1"
    assert len(client.search_runs([experiment.experiment_id], max_results=1000)) == runs_before
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == versions_before
    decisions = ops.rows("SELECT as_of, decision, challenger_version, promoted FROM promotions ORDER BY id")
    assert [d for d in decisions if d["decision"] != "rollback"] == \
        [d for d in baseline["promotions"] if d["decision"] != "rollback"]
    assert [d["decision"] for d in decisions].count("rollback") == 1
    case.observed = (f"rollback: {rolled.stdout.strip()[-200:]}; after the clear: promote {tasks['promote']}, "
                     f"champion v{ops.champion()}, {runs_before} MLflow runs and {versions_before} versions unchanged")


def test_clearing_the_check_of_the_alerting_night_after_the_rollback_sends_nothing(ops, baseline, reliability):
    case = reliability.case("operations", "after the rollback, check_drift of the night that raised the drift alert "
                            "cleared (the demo's monitoring run)",
                            expected="the run is green again; emit_drift_alert, which ran the first time, is skipped: "
                                     "no drift_alert event, no retraining, the champion stays")
    run = next(r for r in ops.api.runs("monitoring") if r["run_type"] == "asset_triggered")
    assert ops.states("monitoring", run["dag_run_id"])["emit_drift_alert"] == "success"  # the alert it sent
    runs = ops.clear_chain("monitoring", run["dag_run_id"], ["check_drift"])
    tasks = ops.states("monitoring", run["dag_run_id"])
    assert runs["rerun"]["state"] == "success" and tasks["emit_drift_alert"] == "skipped", tasks
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"] and not runs["training"]
    assert ops.champion() == "1"
    case.observed = f"rerun green, emit_drift_alert {tasks['emit_drift_alert']}; no event, no training; champion v1"


def test_training_triggered_again_as_of_the_night_after_the_rollback_changes_nothing(ops, baseline, reliability):
    case = reliability.case("operations", "after the rollback, a new training run as of the night that promoted the "
                            "rolled-back version (params as_of)",
                            expected="green; the finished MLflow runs, the version and the recorded decision are "
                                     "reused; promote skipped; the champion stays the restored version")
    from include.training import tracking

    client = tracking.client()
    versions = len(client.search_model_versions(f"name = '{MODEL}'"))
    runs = ops.run_chain("training", {"as_of": NIGHT.isoformat()})
    run = runs["training"][-1]
    tasks = ops.states("training", run["dag_run_id"])
    assert run["state"] == "success" and tasks["promote"] == "skipped", (run["state"], tasks)
    assert ops.champion() == "1" and len(client.search_model_versions(f"name = '{MODEL}'")) == versions
    assert [d["decision"] for d in ops.rows("SELECT decision FROM promotions WHERE as_of = :d", d=NIGHT)] == ["promote"]
    case.observed = f"run green, promote skipped; champion v1; {versions} versions; one decision as of {NIGHT}"


# --- 4. the warehouse restored from an older copy; a day delivered before the day before it ----------------


def test_a_warehouse_restored_from_an_older_copy_keeps_the_rollback(ops, baseline, reliability):
    case = reliability.case("operations", "the warehouse restored from a copy taken before the rollback, then "
                            "2026-04-16 delivered (before 2026-04-15)",
                            expected="the rollback is rebuilt from the registry: the day is scored by the restored "
                                     "v1; the night's drift episode is known, so the drifted day sends no alert")
    restore_tables(ops.warehouse_url, ops.snapshot)
    assert not ops.rows("SELECT id FROM promotions WHERE decision = 'rollback'")  # the older copy lacks it
    runs = ops.run_chain("ingest", logical_date=utc_midnight(N3))
    for dag_id in ("ingest", "features", "scoring", "monitoring"):
        assert [r["state"] for r in runs[dag_id]] == ["success"], (dag_id, runs[dag_id])
    scored = ops.predictions(N3)
    raw = _rows(ops.root / "raw" / "transactions" / f"ds={N3}" / "data.parquet")
    assert scored["n"] == scored["ids"] == raw and scored["lo"] == scored["hi"] == "1", scored
    assert ops.rows("SELECT id FROM promotions WHERE decision = 'rollback'"), "the rollback was not rebuilt"
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"] and not runs["training"]
    drifted = ops.rows("SELECT count(*) AS n FROM alerts WHERE ds = :ds AND kind = 'drift'", ds=N3)[0]["n"]
    case.observed = (f"{scored['n']:,} rows of {N3} scored by v{scored['lo']}; the rollback row is back; "
                     f"{drifted} drift alert row(s) on the day, no drift_alert event, no training run")


def test_a_raw_day_lands_in_its_utc_day_whatever_the_zones(ops, reliability):
    case = reliability.case("operations", "a run in TZ=Asia/Kolkata with Airflow's default_timezone "
                            "America/New_York, triggered for 2026-04-16 00:00 UTC",
                            expected="the run's day is 2026-04-16: raw, features and predictions partitions of "
                                     "that UTC day, holding only transactions of that UTC day; stored times UTC")
    import pandas as pd

    for zone, dataset in (("raw", "transactions"), ("features", "baseline"), ("predictions", "fraud")):
        frame = pd.read_parquet(ops.root / zone / dataset / f"ds={N3}" / "data.parquet", columns=["tx_datetime"])
        days = set(pd.to_datetime(frame["tx_datetime"], utc=True).dt.date)
        assert days == {N3}, (zone, days)
    scored_at = ops.rows("SELECT min(scored_at) AS lo, max(scored_at) AS hi FROM predictions WHERE ds = :ds", ds=N3)[0]
    now = dt.datetime.now(dt.UTC)
    hi = scored_at["hi"] if scored_at["hi"].tzinfo else scored_at["hi"].replace(tzinfo=dt.UTC)
    assert dt.timedelta(0) <= now - hi < dt.timedelta(hours=1), (scored_at, now)
    case.observed = f"partitions ds={N3} hold only {N3} (UTC); scored_at {hi.isoformat()} within the hour before now (UTC)"


# --- 5. a clear in the middle of a finished chain ------------------------------------------------------------


def test_a_clear_in_the_middle_of_a_finished_chain(ops, baseline, reliability):
    case = reliability.case("operations", "scoring cleared from plan (and what follows) in the finished chain of "
                            "2026-04-16",
                            expected="rescored and republished: the same rows once each, the same scores; "
                                     "monitoring reruns; no alert re-sent")
    before = ops.rows("SELECT transaction_id, score FROM predictions WHERE ds = :ds ORDER BY transaction_id", ds=N3)
    run = next(r for r in ops.api.runs("scoring") if r["run_type"] == "asset_triggered")  # newest first
    runs = ops.clear_chain("scoring", run["dag_run_id"], ["plan"])
    assert ops.states("scoring", run["dag_run_id"])["publish"] == "success"
    after = ops.rows("SELECT transaction_id, score FROM predictions WHERE ds = :ds ORDER BY transaction_id", ds=N3)
    assert [r["transaction_id"] for r in after] == [r["transaction_id"] for r in before]
    assert [r["score"] for r in after] == pytest.approx([r["score"] for r in before], abs=1e-12)
    assert [r["state"] for r in runs["monitoring"]] == ["success"], runs["monitoring"]
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"] and not runs["training"]
    case.observed = f"{len(after):,} rows, identical ids and scores; monitoring reran green; no drift_alert"


# --- 6. the warehouse lost; a late day -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def late_day(ops):
    """Step 6: the warehouse deleted, then 2026-04-15 delivered, a day after 2026-04-16 was processed."""
    features_before = (ops.root / "features" / "baseline" / f"ds={N3}" / "data.parquet").stat().st_mtime_ns
    drop_tables(ops.warehouse_url)
    runs = ops.run_chain("ingest", logical_date=utc_midnight(N2))
    return {"runs": runs, "features_before": features_before}


def test_a_late_day_recomputes_exactly_the_days_it_affects(ops, late_day, reliability):
    case = reliability.case("operations", "2026-04-15 (transactions and labels) delivered after 2026-04-16 was "
                            "computed",
                            expected="features of 2026-04-15..16 computed by one run (2026-04-16 recomputed with "
                                     "the late day in its window, nothing older), then rescored and remonitored")
    runs = late_day["runs"]
    for dag_id in ("ingest", "features", "scoring", "monitoring"):
        assert [r["state"] for r in runs[dag_id]] == ["success"], (dag_id, runs[dag_id])
    features_run = runs["features"][0]
    planned = ops.api.call("GET", f"/dags/features/dagRuns/{features_run['dag_run_id']}/taskInstances/plan/xcomEntries/"
                                   "return_value")["value"]
    planned = json.loads(planned) if isinstance(planned, str) else planned
    assert planned["days"] == [N2.isoformat(), N3.isoformat()], planned
    n3 = ops.root / "features" / "baseline" / f"ds={N3}"
    assert (n3 / "data.parquet").stat().st_mtime_ns > late_day["features_before"]
    lineage = json.loads((n3 / "_inputs.json").read_text())
    text = json.dumps(lineage)
    assert f"{N2}" in text, lineage
    older = ops.root / "features" / "baseline" / f"ds={NIGHT}" / "data.parquet"
    assert older.stat().st_mtime_ns < late_day["features_before"], "a day the late one does not affect was recomputed"
    for day in (N2, N3):
        scored = ops.predictions(day)
        assert scored["n"] == scored["ids"] > 0, (day, scored)
    case.observed = f"features plan {planned['days']}; {N3} recomputed, {NIGHT} untouched; both days rescored"


def test_a_late_day_gives_the_lake_of_an_in_order_run(ops, late_day, spark, tmp_path, reliability):
    case = reliability.case("operations", "features after 2026-04-16 then 2026-04-15 (out of order) against the "
                            "same days computed in order",
                            expected="identical feature partitions")
    import pandas as pd

    from include.jobs.build_features import run as build_features
    from include.storage import staged_partition_file

    build_features(spark, N2, N3, tmp_path, ops.root)
    for day in (N2, N3):
        published = pd.read_parquet(ops.root / "features" / "baseline" / f"ds={day}" / "data.parquet")
        in_order = pd.read_parquet(staged_partition_file(tmp_path, day))
        pd.testing.assert_frame_equal(published.sort_values("transaction_id").reset_index(drop=True),
                                      in_order.sort_values("transaction_id").reset_index(drop=True),
                                      check_exact=False, rtol=1e-9)
    case.observed = f"{N2} and {N3} equal an in-order computation, column by column"


def test_a_lost_warehouse_scores_with_the_champion_of_each_day(ops, late_day, baseline, reliability):
    case = reliability.case("operations", "the warehouse deleted, then the late day's chain",
                            expected="the champion history is rebuilt from the registry (the rollback included): "
                                     "both days scored by v1; the old drift episode is read from the lake reports, "
                                     "so the drifted days send no alert and start no retraining")
    for day in (N2, N3):
        scored = ops.predictions(day)
        assert scored["lo"] == scored["hi"] == "1", (day, scored)
    decisions = ops.rows("SELECT as_of, decision, challenger_version FROM promotions ORDER BY as_of")
    assert {d["decision"] for d in decisions} >= {"promote", "rollback"}, decisions
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"] and not late_day["runs"]["training"]
    case.observed = (f"scored by v1; promotions rebuilt: {[(str(d['as_of']), d['decision']) for d in decisions]}; "
                     "no drift_alert, no training run")


def test_a_lost_warehouse_is_rebuilt_from_the_lake(ops, late_day, reliability):
    case = reliability.case("operations", "python -m include.warehouse rebuild after the warehouse was deleted",
                            expected="predictions and drift rows of every scored day back, equal to the lake; "
                                     "rerunning it changes nothing")
    import pandas as pd

    command = "source scripts/airflow-env.sh && python -m include.warehouse rebuild"
    for _ in range(2):  # idempotent
        out = subprocess.run(["bash", "-c", command], cwd=REPO, env=ops.env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
    counts = {}
    for day in (NIGHT, N2, N3):
        lake = len(pd.read_parquet(ops.root / "predictions" / "fraud" / f"ds={day}" / "data.parquet",
                                   columns=["transaction_id"]))
        scored = ops.predictions(day)
        assert scored["n"] == scored["ids"] == lake, (day, scored, lake)
        counts[day.isoformat()] = lake
    assert ops.rows("SELECT count(*) AS n FROM drift_metrics WHERE ds = :ds", ds=NIGHT)[0]["n"] > 0
    case.observed = f"prediction rows per day equal the lake's: {counts}; drift rows of {NIGHT} back"


def _rows(path: Path) -> int:
    from include.storage import parquet_row_count

    return parquet_row_count(path)


def test_monitoring_backfill_over_the_episode_sends_nothing(ops, late_day, baseline, reliability):
    case = reliability.case("operations", "a monitoring backfill of 2026-04-14..16 (the night that started the "
                            "episode and the two drifted days after it) at the end of the story",
                            expected="green; one set of drift rows per day; the night keeps its episode; no "
                                     "drift_alert, no retraining")
    runs = ops.run_chain("monitoring", {"start": NIGHT.isoformat(), "end": N3.isoformat()})
    run = runs["monitoring"][-1]
    assert run["state"] == "success" and ops.states("monitoring", run["dag_run_id"])["emit_drift_alert"] == "skipped"
    for day in (NIGHT, N2, N3):
        drift = ops.drift_rows_per_column(day)
        assert drift and {r["n"] for r in drift} == {1}, (day, drift)
    started = ops.rows("SELECT ds FROM alerts WHERE triggered_training ORDER BY ds")
    assert {r["ds"] for r in started} == {NIGHT}, started
    assert ops.drift_alerts_emitted() == baseline["drift_alerts"] and not runs["training"]
    case.observed = f"green, emit_drift_alert skipped; episode started on {NIGHT} only; no event, no training run"

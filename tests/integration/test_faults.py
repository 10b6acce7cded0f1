"""SIGKILL of each writing task at its failpoints (include/faults.py) and at a random moment, then a
rerun: a reader only ever sees a partition absent, the complete old one or the complete new one; the
warehouse holds whole transactions, no duplicates; the registry has no alias pointing at nothing and
no orphan version; the rerun's outputs equal those of an undisturbed run.

Each writing step runs in a child process the way its DAG task calls it (the spark-submit entry
points, publish_staged_features, publish_predictions, the training functions); the undisturbed
reference and the reruns that need Spark use the session's in-process Spark."""

from __future__ import annotations

import datetime as dt
import json
import random
import re

import pandas as pd
import pytest

from include import warehouse
from include.drift.monitor import REPORTS
from include.jobs.build_features import run as build_features
from include.jobs.score import run as score_job
from include.scoring import PREDICTIONS, plan_scoring, publish_predictions
from include.storage import day_range, file_sha256, partition_dir, partition_file, staging_dir, write_parquet_atomic
from include.training import tracking
from tests.conftest import SMALL
from tests.fault_tools import (
    NAME,
    PUBLISH_FEATURES,
    PUBLISH_PREDICTIONS,
    TRAINING_CHAIN,
    champion_store,
    child_env,
    copy_zones,
    kill_after,
    kill_at,
    logistic_config,
    read_partition,
    run_ok,
    warehouse_frame,
    without,
)
from tests.postgres import fresh_database

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FEATURE_DAYS = [d.isoformat() for d in day_range(SMALL.end_date - dt.timedelta(days=2), SMALL.end_date)]
SCORE_DAYS = FEATURE_DAYS


def _feature_state(root, days, old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """Which version of each feature partition a reader sees: 'old' or 'new' (whole files), else fail."""
    seen = {}
    for day in days:
        sha = file_sha256(partition_file("features", "baseline", day, root))
        assert sha in (old[day], new[day]), f"ds={day}: a partition that is neither the old nor the new one"
        seen[day] = "new" if sha == new[day] else "old"
    return seen


def test_features_killed_at_each_point_then_rerun(spark, feature_lake_template, tmp_path, reliability):
    case = reliability.case(
        "faults", "features: SIGKILL of build_features after Spark staged the days, of publish after the "
                  "first partition and after the last rename, then a rerun",
        expected="each partition is the complete old or the complete new file, never partial; a rerun of "
                 "the killed task publishes every day, equal to an undisturbed run")
    root = copy_zones(feature_lake_template, tmp_path / "lake")
    first, last = FEATURE_DAYS[0], FEATURE_DAYS[-1]
    reference = {d: read_partition(partition_file("features", "baseline", d, root)) for d in FEATURE_DAYS}
    for day in FEATURE_DAYS:  # the same rows written by pyarrow: an old file a reader can tell from Spark's new one
        write_parquet_atomic(pd.read_parquet(partition_file("features", "baseline", day, root)),
                             partition_file("features", "baseline", day, root))
    old = {d: file_sha256(partition_file("features", "baseline", d, root)) for d in FEATURE_DAYS}
    staging = staging_dir("features-fault-run", "features", root=root)
    env = child_env(root)
    observed = []

    # the spark-submit entry point, killed once Spark wrote the staged files: nothing is published
    kill_at("features.staged", ["-m", "include.jobs.build_features", "--start", first, "--end", last,
                                "--output", str(staging), "--root", str(root)], env)
    assert {d: file_sha256(partition_file("features", "baseline", d, root)) for d in FEATURE_DAYS} == old
    assert not (staging / "_summary.json").exists()
    observed.append("features.staged: published partitions untouched")

    build_features(spark, dt.date.fromisoformat(first), dt.date.fromisoformat(last), staging, root)  # the rerun
    new = {d: file_sha256(next((staging / f"ds={d}").glob("*.parquet"))) for d in FEATURE_DAYS}
    for point in ("features.publish.partition", "features.publish.done"):
        kill_at(point, ["-c", PUBLISH_FEATURES, str(staging), first, last], env)
        seen = _feature_state(root, FEATURE_DAYS, old, new)
        observed.append(f"{point}: reader saw {seen}")
        for day in FEATURE_DAYS:
            pd.testing.assert_frame_equal(read_partition(partition_file("features", "baseline", day, root)),
                                          reference[day])

    # the retry of publish (what Airflow runs after a killed task) completes the publication
    result = json.loads(run_ok(["-c", PUBLISH_FEATURES, str(staging), first, last], env).stdout)
    assert result["days"] == FEATURE_DAYS
    assert _feature_state(root, FEATURE_DAYS, old, new) == dict.fromkeys(FEATURE_DAYS, "new")
    for day in FEATURE_DAYS:
        pd.testing.assert_frame_equal(read_partition(partition_file("features", "baseline", day, root)),
                                      reference[day])
    assert not list(staging.glob("ds=*")), "staged files left behind after publishing"
    observed.append("retry of publish: every day new and equal to the undisturbed run; staging cleaned")

    # a task that died after its publish finished (staging deleted, success not reported) is retried:
    # the retry finds the publication's receipt and reports the same result, changing nothing
    again = json.loads(run_ok(["-c", PUBLISH_FEATURES, str(staging), first, last], env).stdout)
    assert again == result and _feature_state(root, FEATURE_DAYS, old, new) == dict.fromkeys(FEATURE_DAYS, "new")
    observed.append("retry after the staging was deleted: the same result from the receipt, nothing changed")
    case.observed = "; ".join(observed)


@pytest.fixture
def scoring_lake(feature_lake_template, tmp_path_factory, tmp_path, monkeypatch):
    """A data root with the published features, the shared champion's registry and a fresh
    PostgreSQL warehouse (the process' environment points at them, as a task's would)."""
    tracking_uri = champion_store(feature_lake_template, tmp_path_factory)
    root = copy_zones(feature_lake_template, tmp_path / "lake", zones=("features",))
    with fresh_database("batchml_faults") as url:
        for key, value in {"BATCHML_DATA_ROOT": str(root), "MLFLOW_TRACKING_URI": tracking_uri,
                           "BATCHML_WAREHOUSE_URL": url}.items():
            monkeypatch.setenv(key, value)
        yield root


def _check_reader_view(root, days, stamps: dict[str, set]) -> dict[str, str]:
    """What a reader sees of each scored day, in the lake and the warehouse: whole days only (every
    feature row once, one scoring's ``scored_at``), no duplicate row. Returns day -> 'lake:<which>,
    warehouse:<which>' with <which> old/new/absent, ``stamps`` naming the scored_at of old and new."""
    seen = {}
    rows = warehouse_frame("predictions", days)
    summary = warehouse_frame("prediction_days", days)
    for day in days:
        n = len(pd.read_parquet(partition_file("features", "baseline", day, root)))
        which = {}
        path = partition_file(*PREDICTIONS, day, root)
        if path.exists():
            lake = pd.read_parquet(path)
            assert len(lake) == lake["transaction_id"].nunique() == n, f"ds={day}: partial partition"
            which["lake"] = _which(lake["scored_at"], stamps)
        else:
            which["lake"] = "absent"
        mine = rows[rows["ds"] == dt.date.fromisoformat(day)]
        day_summary = summary[summary["ds"] == dt.date.fromisoformat(day)]
        if len(mine):
            assert len(mine) == mine["transaction_id"].nunique() == n, f"ds={day}: partial or duplicated rows"
            assert day_summary["rows"].tolist() == [n], f"ds={day}: predictions without their summary"
            which["warehouse"] = _which(mine["scored_at"], stamps)
        else:
            assert day_summary.empty, f"ds={day}: a summary without its predictions"
            which["warehouse"] = "absent"
        seen[day] = ",".join(f"{k}:{v}" for k, v in which.items())
    return seen


def _which(scored_at: pd.Series, stamps: dict[str, set]) -> str:
    values = {_utc(v) for v in scored_at}
    assert len(values) == 1, f"rows of two scorings mixed in one day: {values}"
    (value,) = values
    for name, known in stamps.items():
        if value in known:
            return name
    raise AssertionError(f"rows of an unknown scoring {value}; known {stamps}")


def _utc(value) -> pd.Timestamp:
    """A scoring time as naive UTC, whether the lake (naive UTC) or the warehouse (aware) returned it."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def _stamp(staging, day) -> pd.Timestamp:
    return _utc(pd.read_parquet(next((staging / f"ds={day}").glob("*.parquet")))["scored_at"].iloc[0])


def _outputs(root, days) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Lake partitions, warehouse predictions and day summaries, without the scoring time."""
    lake = {d: without(read_partition(partition_file(*PREDICTIONS, d, root)), "scored_at") for d in days}
    return (lake, without(warehouse_frame("predictions", days), "scored_at"),
            without(warehouse_frame("prediction_days", days), "scored_at"))


def _assert_outputs_equal(got, want) -> None:
    for day in want[0]:
        pd.testing.assert_frame_equal(got[0][day], want[0][day])
    pd.testing.assert_frame_equal(got[1], want[1])
    pd.testing.assert_frame_equal(got[2], want[2])


def test_scoring_killed_at_each_point_then_rerun(spark, scoring_lake, reliability):
    case = reliability.case(
        "faults", "scoring on PostgreSQL: SIGKILL of the score job after staging, of publish inside the "
                  "warehouse transaction, after its commit before the rename, after the first day, after the "
                  "last day; a rerun after each",
        expected="a reader sees whole days only (lake and warehouse: old, new or absent, never partial), "
                 "no duplicate rows; a day's warehouse rows are replaced before its file, so a file is never "
                 "newer than its rows; the retry of publish equals an undisturbed run")
    root, days = scoring_lake, SCORE_DAYS
    plans = plan_scoring(days, NAME)
    plans_file = root / "plans.json"
    plans_file.write_text(json.dumps(plans))
    env = child_env(root)

    # the undisturbed run: the reference, and the "old" state the killed rerun starts from
    first_staging = staging_dir("scoring-1", "scoring", root=root)
    score_job(spark, plans, first_staging)
    stamps = {"old": {_stamp(first_staging, d) for d in days}}
    publish_predictions(first_staging, plans, root)
    reference = _outputs(root, days)

    staging = staging_dir("scoring-2", "scoring", root=root)
    observed = []
    kill_at("scoring.staged", ["-m", "include.jobs.score", "--plans", str(plans_file), "--output", str(staging)], env)
    assert not (staging / "_summary.json").exists()
    seen = _check_reader_view(root, days, stamps)
    assert set(seen.values()) == {"lake:old,warehouse:old"}
    observed.append("scoring.staged: nothing changed")

    score_job(spark, plans, staging)  # the rerun of the Spark job
    stamps["new"] = {_stamp(staging, d) for d in days}
    expected_first = {"scoring.warehouse.before_commit": "lake:old,warehouse:old",
                      "scoring.warehouse.committed": "lake:old,warehouse:new",
                      "scoring.publish.partition": "lake:new,warehouse:new",
                      "scoring.publish.done": "lake:new,warehouse:new"}
    for point, first_day in expected_first.items():
        kill_at(point, ["-c", PUBLISH_PREDICTIONS, str(plans_file), str(staging)], env)
        seen = _check_reader_view(root, days, stamps)
        observed.append(f"{point}: {seen[days[0]]} on the first day, {seen[days[-1]]} on the last")
        assert seen[days[0]] == first_day, (point, seen)
        warehouse.dispose_engines()  # the killed process' connections are gone; so are ours to be safe

    # the retry of publish (what Airflow does after a killed task)
    result = json.loads(run_ok(["-c", PUBLISH_PREDICTIONS, str(plans_file), str(staging)], env).stdout.split("\n", 1)[1])
    assert set(result["rows"]) == set(days)
    assert set(_check_reader_view(root, days, stamps).values()) == {"lake:new,warehouse:new"}
    _assert_outputs_equal(_outputs(root, days), reference)
    observed.append("retry of publish: every day new in lake and warehouse, equal to the undisturbed run")
    case.observed = "; ".join(observed)


def test_scoring_publish_killed_at_random_moments(spark, scoring_lake, reliability):
    seed = 20261122
    case = reliability.case(
        "faults", "scoring on PostgreSQL: publish of 3 days SIGKILLed after a random delay within its running "
                  "time (no failpoint), four times, alternating between two scorings, then rerun",
        expected="after every kill a reader sees whole days only (each day wholly one scoring in the lake and "
                 "wholly one in the warehouse) and no duplicates; the rerun equals an undisturbed run")
    root, days = scoring_lake, SCORE_DAYS
    plans = plan_scoring(days, NAME)
    plans_file = root / "plans.json"
    plans_file.write_text(json.dumps(plans))
    env = child_env(root)
    stagings, stamps = {}, {}
    for run in ("a", "b"):
        stagings[run] = staging_dir(f"scoring-{run}", "scoring", root=root)
        score_job(spark, plans, stagings[run])
        stamps[run] = {_stamp(stagings[run], d) for d in days}
    publish_predictions(stagings["a"], plans, root)
    reference = _outputs(root, days)

    def publish(run: str, delay: float | None):
        return kill_after(["-c", PUBLISH_PREDICTIONS, str(plans_file), str(stagings[run])], env, delay)

    _, duration = publish("b", None)  # how long a publish runs once its imports are done
    rng, observed = random.Random(seed), [f"an undisturbed publish ran {duration:.2f}s"]
    for run in ("a", "b", "a", "b"):
        delay = round(rng.uniform(0.0, duration), 3)
        landed, _ = publish(run, delay)
        seen = _check_reader_view(root, days, stamps)
        observed.append(f"{run} killed at {delay}s: {sorted(set(seen.values()))}" if landed else
                        f"{run} finished before {delay}s")
        warehouse.dispose_engines()
    publish("b", None)
    assert set(_check_reader_view(root, days, stamps).values()) == {"lake:b,warehouse:b"}
    _assert_outputs_equal(_outputs(root, days), reference)
    case.observed = f"seed {seed}: " + "; ".join(observed) + "; rerun equal to the undisturbed run"


# --- monitoring ----------------------------------------------------------------------------------

MONITOR_DAY = """
import json, sys
from include.drift.config import load_monitoring_config
from include.drift.monitor import monitor_day
print(json.dumps(monitor_day(sys.argv[1], sys.argv[2], load_monitoring_config())))
"""


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN as None (NaN != NaN would tell a run apart from itself)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _monitoring_state(root, day: str) -> dict[str, object]:
    """The day's drift rows, alerts and report as a reader sees them, without ids and times."""
    drift = without(warehouse_frame("drift_metrics", [day]), "id").sort_values("column_name", ignore_index=True)
    day_alerts = without(warehouse_frame("alerts", [day]), "id", "raised_at")
    report = json.loads((partition_dir(*REPORTS, day, root) / "report.json").read_text())
    return {"drift": _records(drift), "alerts": _records(day_alerts), "report": report}


def test_monitoring_killed_at_each_point_then_rerun(spark, scoring_lake, tmp_path, monkeypatch, reliability):
    case = reliability.case(
        "faults", "monitoring on PostgreSQL: SIGKILL of monitor_day inside its warehouse transaction and after "
                  "its commit before the report, the day first monitored with other thresholds; a rerun after each",
        expected="the day's drift rows and alerts change together (one transaction: never the drift of one run "
                 "beside the alerts of the other), the report follows the committed rows; the rerun equals an "
                 "undisturbed run")
    root, day = scoring_lake, SCORE_DAYS[-1]
    plans = plan_scoring([day], NAME)
    staging = staging_dir("scoring-monitor", "scoring", root=root)
    score_job(spark, plans, staging)
    publish_predictions(staging, plans, root)

    # "old": the shipped thresholds; "new": thresholds so tight that every column drifts and alerts
    tight = tmp_path / "monitoring-tight.yaml"
    tight.write_text("psi_warn: 0.000001\npsi_alert: 0.000001\nks_statistic: 0.0\nks_p_value: 0.999\n")
    env_old, env_new = child_env(root), child_env(root, BATCHML_MONITORING_CONFIG=str(tight))
    # twice: the first run starts the day's drift episode, every later run of the day finds it started
    # (triggers_training false, deduplicated_by): that is what a rerun after a kill must equal
    run_ok(["-c", MONITOR_DAY, day, NAME], env_new)
    run_ok(["-c", MONITOR_DAY, day, NAME], env_new)
    new = _monitoring_state(root, day)
    run_ok(["-c", MONITOR_DAY, day, NAME], env_old)
    old = _monitoring_state(root, day)
    assert new["alerts"] and new["drift"] != old["drift"], "the two runs must be told apart"

    def seen() -> str:
        now = _monitoring_state(root, day)
        which = {part: "new" if now[part] == new[part] else "old" if now[part] == old[part] else "mixed"
                 for part in ("drift", "alerts", "report")}
        assert "mixed" not in which.values(), f"ds={day}: a state that is neither run's: {which}"
        assert which["drift"] == which["alerts"], f"ds={day}: drift rows and alerts of different runs: {which}"
        return f"warehouse {which['drift']}, report {which['report']}"

    observed = []
    for point, expected in {"monitoring.warehouse.before_commit": "warehouse old, report old",
                            "monitoring.report.pending": "warehouse new, report old"}.items():
        kill_at(point, ["-c", MONITOR_DAY, day, NAME], env_new)
        observed.append(f"{point}: {seen()}")
        assert observed[-1].endswith(expected), observed[-1]
        warehouse.dispose_engines()
    run_ok(["-c", MONITOR_DAY, day, NAME], env_new)  # the retry Airflow makes
    assert seen() == "warehouse new, report new"
    assert _monitoring_state(root, day) == new
    observed.append("rerun: drift rows, alerts and report equal to the undisturbed run")
    case.observed = f"ds={day}, {len(new['drift'])} drift rows, alerts old {len(old['alerts'])} / new " \
                    f"{len(new['alerts'])}; " + "; ".join(observed)


# --- model registration ---------------------------------------------------------------------------

TRAINING_POINTS = ("training.run_logged", "registry.version_created", "registry.challenger_set",
                   "gate.half_recorded", "promote.champion_set")


def _registry_view() -> dict:
    """What a reader of the registry and the promotions table sees, with the invariants checked:
    every alias names an existing version; every version comes from a finished run."""
    c = tracking.client()
    versions = {str(v.version): v for v in c.search_model_versions(f"name = '{NAME}'")}
    aliases = {a: str(v) for a, v in (c.get_registered_model(NAME).aliases or {}).items()} if versions else {}
    missing = {a: v for a, v in aliases.items() if v not in versions}
    assert not missing, f"aliases pointing at no version: {missing}"
    for v in versions.values():
        assert c.get_run(v.run_id).info.status == "FINISHED", f"version {v.version} of an unfinished run"
    rows = warehouse.promotion_history(NAME)
    return {"versions": versions, "aliases": aliases, "promotions": rows}


def _registry_outputs() -> dict:
    """The registry and warehouse outputs of a training run, without ids, times and timings."""
    view = _registry_view()
    c = tracking.client()
    out = {"aliases": view["aliases"], "versions": {}, "promotions": [
        {k: r[k] for k in ("as_of", "challenger_version", "champion_version", "decision", "promoted", "reason",
                           "primary_metric", "challenger_value")} for r in view["promotions"]]}
    for number, v in view["versions"].items():
        run = c.get_run(v.run_id)

        def plain(text: str, run_id: str = v.run_id) -> str:
            text = re.sub(r"m-[0-9a-f]{32}", "<model id>", text.replace(run_id, "<run id>"))
            return re.sub(r"\d+\.\d+ s;", "<seconds> s;", text)

        summary = json.loads(run.data.tags["batchml.summary"])
        out["versions"][number] = {
            "tags": {k: val for k, val in v.tags.items() if k not in TIME_TAGS}, "description": plain(v.description or ""),
            "run_tags": {k: plain(val) for k, val in run.data.tags.items()
                         if k.startswith("batchml.") and k != "batchml.summary"},
            "summary": {k: val for k, val in summary.items()
                        if k not in ("run_id", "model_uri", "tuning_seconds", "fit_seconds")},
            "metrics": {k: val for k, val in run.data.metrics.items() if k not in TIMINGS}}
    return out


TIMINGS = ("tuning_seconds", "fit_seconds", "peak_rss_mb")
TIME_TAGS = ("promoted_at", "gate_decided_at")  # when the registry recorded a promotion or a decision


def test_model_registration_killed_at_each_point_then_rerun(feature_lake_template, tmp_path, monkeypatch,
                                                            reliability):
    case = reliability.case(
        "faults", "training: SIGKILL after the MLflow run finished, after create_model_version, after the "
                  "challenger alias, between the gate's MLflow tags and its promotions row, after the champion "
                  "alias before the promotions row is marked; each time rerun from the start",
        expected="no alias ever points at a missing version, no version of an unfinished run; after the "
                 "rerun one version, the same aliases, tags, model card and promotions row as an undisturbed "
                 "run (no orphan version)")
    config = logistic_config(tmp_path)
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(config))
    as_of = SMALL.end_date.isoformat()

    def use(root):
        monkeypatch.setenv("BATCHML_DATA_ROOT", str(root))
        for name in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_MLFLOW_ARTIFACTS"):
            monkeypatch.delenv(name, raising=False)
        warehouse.dispose_engines()
        return child_env(root)

    env = use(undisturbed := copy_zones(feature_lake_template, tmp_path / "undisturbed"))
    run_ok(["-c", TRAINING_CHAIN, as_of], env)
    reference = _registry_outputs()
    assert reference["aliases"] == {"champion": "1", "challenger": "1"}, reference["aliases"]

    env = use(copy_zones(feature_lake_template, tmp_path / "killed"))
    observed = []
    for point in TRAINING_POINTS:
        kill_at(point, ["-c", TRAINING_CHAIN, as_of], env)
        view = _registry_view() if _has_model() else {"versions": {}, "aliases": {}, "promotions": []}
        observed.append(f"{point}: versions {sorted(view['versions'])}, aliases {view['aliases']}, "
                        f"promotions rows {[(r['decision'], r['promoted']) for r in view['promotions']]}")
        assert len(view["versions"]) <= 1, observed[-1]
    run_ok(["-c", TRAINING_CHAIN, as_of], env)
    got = _registry_outputs()
    assert got == reference, "rerun differs from the undisturbed run:\n" + _diff(got, reference)
    observed.append("rerun: registry and promotions equal to the undisturbed run")
    assert undisturbed.exists()
    case.observed = "; ".join(observed)


def _has_model() -> bool:
    from mlflow.exceptions import MlflowException

    try:
        tracking.client().get_registered_model(NAME)
    except MlflowException:
        return False
    return True


def _diff(got, want, path: str = "") -> str:
    """Where two nested outputs differ, one line per differing leaf."""
    if isinstance(got, dict) and isinstance(want, dict):
        return "\n".join(d for k in sorted(set(got) | set(want), key=str)
                         if (d := _diff(got.get(k), want.get(k), f"{path}/{k}")))
    return "" if got == want else f"{path}: got {str(got)[:300]!r}, want {str(want)[:300]!r}"

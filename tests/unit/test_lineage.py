"""Lineage of feature days, and the stale days a late raw partition adds to the plan (no Spark: tiny
parquet files stand in for the raw partitions and the staged features)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

import pandas as pd
import pytest

from include.features.pipeline import (
    inputs_file,
    plan_feature_days,
    plan_features,
    planned_inputs_file,
    publish_staged_features,
    record_planned_inputs,
)
from include.ingest import RAW_SCHEMAS, publish_landing
from include.storage import (
    day_range,
    file_sha256,
    landing_file,
    partition_file,
    partition_version,
    staging_dir,
    write_parquet_atomic,
)

D = dt.date(2026, 4, 10)


def _day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def _raw(root, days, dataset: str = "transactions", rows: int = 1):
    for day in days:
        frame = pd.DataFrame({"transaction_id": range(rows), "tx_fraud": 0})
        write_parquet_atomic(frame, partition_file("raw", dataset, day, root))


def _lake(root, first: int, last: int, skip: tuple[int, ...] = ()):
    """Raw transactions and labels of D+first..D+last (but the skipped ones), as ingest publishes them."""
    days = [d for d in day_range(_day(first), _day(last)) if (d - D).days not in skip]
    _raw(root, days, "transactions")
    _raw(root, days, "labels")


def _computed(root, first: dt.date, last: dt.date, run: str):
    """A features run of first..last, its Spark job replaced by one tiny staged file per day."""
    staging = staging_dir(run, "features", root=root)
    record_planned_inputs(staging, first, last, root)
    for day in day_range(first, last):
        write_parquet_atomic(pd.DataFrame({"x": [1]}), staging / f"ds={day}" / "part-0.parquet")
    publish_staged_features(staging, first, last, root)


def test_publish_writes_each_days_input_versions_beside_its_data(data_root):
    _lake(data_root, -40, 1, skip=(-3,))
    _computed(data_root, D, _day(1), "run")
    lineage = json.loads(inputs_file(D, data_root).read_text())
    assert lineage["ds"] == str(D) and inputs_file(D, data_root).parent == partition_file(
        "features", "baseline", D, data_root).parent
    tx, labels = lineage["inputs"]["transactions"], lineage["inputs"]["labels"]
    assert sorted(tx) == [d.isoformat() for d in day_range(_day(-37), D)]  # the window, not history
    assert sorted(labels) == [d.isoformat() for d in day_range(_day(-30), D)]
    assert tx[str(_day(-3))] is None  # an absent input is recorded too
    assert tx[str(D)] == partition_version("raw", "transactions", D, data_root)
    # a later run with nothing changed in between finds nothing stale
    assert plan_features(str(D), None, [], data_root).stale == {}


def test_late_transactions_make_exactly_their_dependants_stale(data_root):
    # features D+1..D+5 and D+40 computed while the transactions of D had not arrived (D+6..D+39 are not
    # published: published days without features would join the plan, tests/unit/test_feature_planning.py)
    _lake(data_root, -40, 40, skip=(0, *range(6, 40)))
    _computed(data_root, _day(1), _day(5), "before")
    _computed(data_root, _day(40), _day(40), "outside")
    lineage_outside = inputs_file(_day(40), data_root).read_text()
    _lake(data_root, 0, 0)  # D is published late

    plan = plan_features(None, None, [str(D)], data_root)
    assert (plan.first, plan.last) == (D, _day(5))  # D+40 reads nothing of D: untouched
    assert sorted(plan.stale) == day_range(_day(1), _day(5))
    assert f"raw transactions ds={D} published after features ds={_day(1)} were computed" in plan.stale[_day(1)]
    assert f"raw labels ds={D} published after features ds={_day(5)} were computed" in plan.stale[_day(5)]
    assert plan.left == {}
    assert plan_feature_days(None, None, [str(D)], data_root) == (D, _day(5))
    assert inputs_file(_day(40), data_root).read_text() == lineage_outside

    _computed(data_root, plan.first, plan.last, "recomputed")  # once recomputed, nothing is stale any more
    assert plan_features(None, None, [str(D)], data_root).stale == {}


def test_late_labels_make_the_days_that_read_that_arrival_stale(data_root):
    _lake(data_root, -40, 35)
    _computed(data_root, _day(1), _day(35), "before")
    _raw(data_root, [D], "labels", rows=3)  # the labels arriving on D, corrected

    plan = plan_features(None, None, [str(D)], data_root)
    # the terminal risk of A..A+30 reads the labels arriving on A; A+31..A+35 do not
    assert (plan.first, plan.last) == (D, _day(30))
    assert sorted(plan.stale) == day_range(_day(1), _day(30))
    assert plan.stale[_day(30)] == [f"raw labels ds={D} republished after features ds={_day(30)} were computed"]


def _land(root, day, ids):
    frame = pd.DataFrame({"transaction_id": ids, "tx_datetime": pd.Timestamp(day, tz="UTC"), "customer_id": 1,
                          "terminal_id": 2, "tx_amount": 1.0}).astype(RAW_SCHEMAS["raw_transactions"])
    path = landing_file("transactions", day, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    frame.to_parquet(path)
    return file_sha256(path)


def test_identical_republish_makes_nothing_stale_a_corrected_one_does(data_root):
    _lake(data_root, -40, 5)
    sha = _land(data_root, D, [1, 2, 3])
    assert publish_landing("transactions", D, sha)["changed"] is True
    _computed(data_root, D, _day(5), "before")
    published = partition_file("raw", "transactions", D, data_root)
    version, mtime = partition_version("raw", "transactions", D, data_root), published.stat().st_mtime_ns

    again = publish_landing("transactions", D, sha)  # a rerun of ingest with the same file
    assert again["changed"] is False and again["rows"] == 3
    assert published.stat().st_mtime_ns == mtime and partition_version("raw", "transactions", D, data_root) == version
    assert [p.name for p in published.parent.iterdir()] == ["data.parquet"]
    assert plan_features(None, None, [str(D)], data_root).last == D

    sha = _land(data_root, D, [1, 2, 4])  # a correction of the same size, maybe within the same clock tick
    assert publish_landing("transactions", D, sha)["changed"] is True
    assert partition_version("raw", "transactions", D, data_root) != version
    assert plan_features(None, None, [str(D)], data_root).last == _day(5)


def test_a_day_without_lineage_is_stale_and_a_publish_without_plan_drops_the_old_one(data_root):
    _lake(data_root, -40, 3)
    _computed(data_root, D, _day(3), "with-plan")
    staging = staging_dir("no-plan", "features", root=data_root)  # a publish with no recorded plan
    write_parquet_atomic(pd.DataFrame({"x": [2]}), staging / f"ds={_day(2)}" / "part-0.parquet")
    publish_staged_features(staging, _day(2), _day(2), data_root)
    assert not inputs_file(_day(2), data_root).exists()

    plan = plan_features(str(D), None, [], data_root)
    assert (plan.first, plan.last) == (D, _day(2)) and list(plan.stale) == [_day(2)]
    assert "have no lineage" in plan.stale[_day(2)][0]


@pytest.mark.parametrize("missing", ["transactions", "labels"])
def test_the_extension_stops_before_a_day_the_plan_cannot_compute(data_root, missing):
    _lake(data_root, -40, 6, skip=(0,))
    _computed(data_root, _day(1), _day(6), "before")
    partition_file("raw", missing, _day(4), data_root).unlink()  # refused, redelivery pending
    _lake(data_root, 0, 0)

    plan = plan_features(None, None, [str(D)], data_root)
    assert (plan.first, plan.last) == (D, _day(3))  # one range: nothing past the gap
    assert sorted(plan.left) == [_day(4), _day(5), _day(6)]
    assert plan.left[_day(5)][0] == f"cannot be recomputed in this run: raw {missing} " + (
        f"ds={_day(4)} are not published" if missing == "transactions" else
        f"arriving on ds={_day(4)} are not published")


@functools.cache
def _features_dag_plan():
    import importlib.util

    from include.config import REPO_ROOT

    spec = importlib.util.spec_from_file_location("features_dag", REPO_ROOT / "dags" / "features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plan.function


def test_the_dag_plans_the_stale_days_and_records_their_inputs(data_root, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://local")
    _lake(data_root, -40, 2, skip=(0,))
    _computed(data_root, _day(1), _day(2), "before")
    _lake(data_root, 0, 0)
    plan = _features_dag_plan()(params={"start": str(D)}, run_id="late")
    assert (plan["start"], plan["end"], sorted(plan["stale"])) == (str(D), str(_day(2)), [str(_day(1)), str(_day(2))])
    recorded = json.loads(planned_inputs_file(Path(plan["staging"])).read_text())
    assert sorted(recorded["days"]) == plan["days"]


def test_the_dag_skips_days_that_are_not_over_yet(data_root, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://local")
    today = dt.datetime.now(dt.UTC).date()
    with pytest.raises(AirflowSkipException, match=f"ds={today} is not over yet"):
        _features_dag_plan()(params={"start": str(today - dt.timedelta(days=1)), "end": str(today)}, run_id="r")
    assert not (data_root / "_staging").exists()  # nothing planned, nothing recorded


def test_the_plan_summary_names_a_few_reasons_per_day_and_counts_the_others(data_root):
    _lake(data_root, -40, 1)
    _computed(data_root, _day(1), _day(1), "before")
    _lake(data_root, -40, 0)  # every input of D+1 but its own day republished (a restore without mtimes)
    plan = plan_features(str(D), None, [], data_root)
    assert len(plan.stale[_day(1)]) == 37 + 30
    summary = plan.summary()["stale"][str(_day(1))]
    assert len(summary) == 4 and summary[-1] == "and 64 more"

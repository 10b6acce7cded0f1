"""Which days a features run computes, and what publishing does with the staged files."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.features.pipeline import plan_feature_days, publish_staged_features
from include.pipelines.fraud.features.baseline import label_days, transaction_days
from include.storage import partition_file, write_parquet_atomic

D = dt.date(2026, 4, 10)


def _raw(root, *days, labels: bool = True):
    """Raw partitions of ``days`` as one ingest run publishes them: transactions and that day's labels."""
    for day in days:
        write_parquet_atomic(pd.DataFrame({"transaction_id": [1]}), partition_file("raw", "transactions", day, root))
        if labels:
            write_parquet_atomic(pd.DataFrame({"transaction_id": [0], "tx_fraud": [0]}),
                                 partition_file("raw", "labels", day, root))


def test_triggered_days_become_one_range(data_root):
    _raw(data_root, D, D + dt.timedelta(days=1), D + dt.timedelta(days=2))
    assert plan_feature_days(None, None, [str(D + dt.timedelta(days=2)), str(D)]) == (D, D + dt.timedelta(days=2))


def test_params_win_over_triggers(data_root):
    _raw(data_root, D)
    assert plan_feature_days(str(D), None, ["2030-01-01"]) == (D, D)


def test_no_days_is_a_clear_error(data_root):
    with pytest.raises(ValueError, match="no feature days"):
        plan_feature_days(None, None, [])


def test_missing_raw_partition_is_named(data_root):
    _raw(data_root, D)
    with pytest.raises(FileNotFoundError, match=str(D + dt.timedelta(days=1))):
        plan_feature_days(str(D), str(D + dt.timedelta(days=1)), [])


def test_labels_still_on_their_way_hold_the_features_back(data_root):
    _raw(data_root, D - dt.timedelta(days=1))
    _raw(data_root, D, labels=False)  # transactions published, the day's labels not yet
    with pytest.raises(FileNotFoundError, match=f"raw labels are not published for arrival days \\['{D}'\\]"):
        plan_feature_days(str(D), None, [])
    _raw(data_root, D)
    assert plan_feature_days(str(D), None, []) == (D, D)


def test_backwards_range_is_rejected(data_root):
    with pytest.raises(ValueError, match="ends before it starts"):
        plan_feature_days(str(D), str(D - dt.timedelta(days=1)), [])


def test_lookback_windows_grow_with_the_range_not_with_history():
    assert len(transaction_days(D, D)) == 38  # 7-day delay + 30-day window + the day itself
    assert len(label_days(D, D)) == 31
    assert max(label_days(D, D)) == D  # never a label that arrives after the day
    assert len(transaction_days(D, D + dt.timedelta(days=89))) == 38 + 89


def test_publish_moves_each_day_and_cleans_staging(data_root):
    staging = data_root / "_staging" / "run1" / "features"
    for day in (D, D + dt.timedelta(days=1)):
        write_parquet_atomic(pd.DataFrame({"x": [day.day]}), staging / f"ds={day}" / "part-0.parquet")
    result = publish_staged_features(staging, D, D + dt.timedelta(days=1))
    assert result["days"] == [str(D), str(D + dt.timedelta(days=1))]
    assert pd.read_parquet(partition_file("features", "baseline", D, data_root))["x"].tolist() == [D.day]
    assert not staging.exists()


def test_publish_refuses_an_incomplete_staging(data_root):
    staging = data_root / "_staging" / "run2" / "features"
    write_parquet_atomic(pd.DataFrame({"x": [1]}), staging / f"ds={D}" / "part-0.parquet")
    with pytest.raises(RuntimeError, match=f"ds={D + dt.timedelta(days=1)}"):
        publish_staged_features(staging, D, D + dt.timedelta(days=1))
    assert not partition_file("features", "baseline", D, data_root).exists()  # nothing half-published


def test_stale_days_after_the_range_join_it_as_one_range(data_root):
    from include.features.pipeline import plan_features, record_planned_inputs
    from include.storage import day_range, staging_dir

    days = day_range(D - dt.timedelta(days=40), D + dt.timedelta(days=4))
    _raw(data_root, *days)
    staging = staging_dir("before", "features", root=data_root)  # features D+1..D+4, with their lineage
    record_planned_inputs(staging, days[-4], days[-1], data_root)
    for day in days[-4:]:
        write_parquet_atomic(pd.DataFrame({"x": [1]}), staging / f"ds={day}" / "part-0.parquet")
    publish_staged_features(staging, days[-4], days[-1], data_root)
    _raw(data_root, D + dt.timedelta(days=3))  # republished: read by D+3 and D+4, not by D+1 and D+2

    plan = plan_features(str(D), None, [], data_root)
    # build_features takes one range: D+1 and D+2 are fresh but lie between, so they are recomputed too
    assert (plan.first, plan.last) == (D, D + dt.timedelta(days=4))
    assert plan.summary() == {
        "requested": [str(D), str(D)], "stale_left": {}, "unfeatured": {},
        "stale": {str(D + dt.timedelta(days=n)): [
            f"raw {source} ds={D + dt.timedelta(days=3)} republished after features ds={D + dt.timedelta(days=n)} "
            "were computed" for source in ("transactions", "labels")] for n in (3, 4)}}


def _featured(root, *days):
    """Feature partitions of ``days`` published by a run that planned them (with their lineage)."""
    from include.features.pipeline import record_planned_inputs
    from include.storage import staging_dir

    staging = staging_dir(f"run-{days[0]}", "features", root=root)
    record_planned_inputs(staging, days[0], days[-1], root)
    for day in days:
        write_parquet_atomic(pd.DataFrame({"x": [1]}), staging / f"ds={day}" / "part-0.parquet")
    publish_staged_features(staging, days[0], days[-1], root)


def _day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def test_a_triggered_run_adds_the_published_days_after_it_that_have_no_features(data_root):
    """The lost Asset queue row (docs/operations.md): the run started by the events of D+1 is created
    after D+2 and D+3 were published, whose events it does not consume; its plan computes them."""
    from include.features.pipeline import plan_features

    _raw(data_root, D, _day(1), _day(2), _day(3))
    _featured(data_root, D)  # the run that held the slot
    plan = plan_features(None, None, [str(_day(1))], data_root)
    assert (plan.first, plan.last, plan.stale, plan.left) == (_day(1), _day(3), {}, {})
    assert sorted(plan.unfeatured) == [_day(2), _day(3)]
    reason = plan.summary()["unfeatured"][str(_day(3))]
    assert reason == [f"raw transactions and labels ds={_day(3)} are published and features ds={_day(3)} are not: "
                      "no features run took its Asset events (a run that waited for its slot can consume the events "
                      "before them and drop theirs: docs/operations.md, late and out-of-order data)"]


def test_a_backfill_computes_the_range_it_names_only(data_root):
    _raw(data_root, D, _day(1), _day(2))
    assert plan_feature_days(str(D), None, []) == (D, D)


def test_a_day_still_being_ingested_stops_the_extension_and_the_days_past_it_are_left(data_root):
    _raw(data_root, D, _day(1), _day(3))
    _raw(data_root, _day(2), labels=False)  # its labels are still being validated
    from include.features.pipeline import plan_features

    plan = plan_features(None, None, [str(D)], data_root)
    assert (plan.first, plan.last, plan.unfeatured) == (D, _day(1), {_day(1): plan.unfeatured[_day(1)]})
    assert list(plan.left) == [_day(3)]
    assert plan.left[_day(3)][0] == f"cannot be recomputed in this run: raw labels arriving on ds={_day(2)} " \
                                    "are not published"


def test_the_window_ends_with_the_longest_lookback_and_a_featured_day_is_not_added(data_root):
    from include.features.pipeline import DEPENDANT_DAYS, plan_features

    _raw(data_root, *(_day(n) for n in range(DEPENDANT_DAYS + 3)))
    _featured(data_root, _day(2))
    plan = plan_features(None, None, [str(D)], data_root)
    assert (plan.first, plan.last) == (D, _day(DEPENDANT_DAYS))  # D+38 and D+39 wait for a later run
    assert _day(2) not in plan.unfeatured and len(plan.unfeatured) == DEPENDANT_DAYS - 1

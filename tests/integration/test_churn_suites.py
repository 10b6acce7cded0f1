"""The churn suites (include/pipelines/churn/suites.py) in the platform's real Great Expectations
checkpoint: a good features partition and good raw files pass, each kind of bad one fails naming the
column and the expectation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.pipelines.churn import features as cf
from include.pipelines.churn import suites
from include.pipelines.churn.simulator import ChurnSimulatorConfig, active_customers, simulate
from include.validation.checkpoints import checkpoint_runner, validate_frame, validate_parquet_file
from include.validation.datasets import day_bounds
from tests.churn_reference import oracle

CFG = ChurnSimulatorConfig(n_customers=150, n_weeks=13, seed=5)
S = CFG.start_date + dt.timedelta(days=84)


@pytest.fixture(scope="module")
def sim():
    return simulate(CFG)


@pytest.fixture(scope="module")
def good(sim) -> pd.DataFrame:
    return oracle(sim, S)


def _bad(frame: pd.DataFrame, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object if isinstance(value, str) or value is None else frame[column].dtype)
    frame.loc[3, column] = value
    return frame.astype({column: "float64"}) if value is None and column != "plan" else frame


BAD_FEATURES = {
    "duplicate_customer": (lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True), None,
                           "expect_compound_columns_to_be_unique"),
    "missing_column": (lambda f: f.drop(columns=["minutes_7d"]), None, "expect_table_columns_to_match_set"),
    "null_input": (lambda f: _bad(f, "minutes_28d", None), "minutes_28d", "expect_column_values_to_not_be_null"),
    "trend_out_of_bounds": (lambda f: _bad(f, "minutes_trend_7_28", 9.0), "minutes_trend_7_28",
                            "expect_column_values_to_be_between"),
    "week_above_its_month": (lambda f: _bad(f, "sessions_7d", int(f["sessions_28d"][3]) + 1), None,
                             "expect_column_pair_values_a_to_be_greater_than_b"),
    "unknown_plan": (lambda f: _bad(f, "plan", "platinum"), "plan", "expect_column_values_to_be_in_set"),
    "more_rows_than_the_extract": (lambda f: f, None, "expect_table_row_count_to_be_between"),
}


@pytest.mark.slow
def test_features_suite_passes_good_and_stops_bad(data_root, good, sim):
    suites.register()
    suites.register()  # idempotent: DAG files call it on every parse
    rows = len(active_customers(sim, S))
    assert len(good) <= rows
    with checkpoint_runner(data_root) as runner:
        report = validate_frame("churn_features", good, S.isoformat(), data_root / "good.parquet",
                                {"max_rows": rows}, data_root, runner)
        assert report.success, report.message()
        assert report.evaluated > 60
        for case, (change, column, expectation) in BAD_FEATURES.items():
            max_rows = len(good) - 1 if case == "more_rows_than_the_extract" else rows
            report = validate_frame("churn_features", change(good), S.isoformat(), data_root / f"{case}.parquet",
                                    {"max_rows": max_rows}, data_root, runner)
            assert not report.success, case
            assert any(f.expectation == expectation and (column is None or f.column == column)
                       for f in report.failures), (case, report.message())


def test_raw_usage_suite_in_the_checkpoint(data_root, sim, tmp_path):
    """Raw files are read from parquet as ingest reads them (tz-aware times made naive UTC)."""
    suites.register()
    day = S - dt.timedelta(days=1)
    usage = sim.usage_events[sim.usage_events["event_time"].dt.date == day].reset_index(drop=True)
    bad = usage.assign(minutes=np.where(usage.index == 2, -5.0, usage["minutes"]))
    late = usage.assign(event_time=usage["event_time"].where(usage.index != 1, usage["event_time"][1] + pd.Timedelta(
        days=1)))
    with checkpoint_runner(data_root) as runner:
        for name, frame, column, expectation in (("good", usage, None, None),
                                                 ("bad", bad, "minutes", "expect_column_values_to_be_between"),
                                                 ("late", late, "event_time", "expect_column_values_to_be_between")):
            path = data_root / "landing" / "churn_usage_events" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path)
            report, _ = validate_parquet_file("churn_usage_events", path, day.isoformat(), day_bounds(day), data_root,
                                              runner)
            if expectation is None:
                assert report.success, report.message()
            else:
                assert not report.success and any(f.column == column and f.expectation == expectation
                                                  for f in report.failures), (name, report.message())


def test_every_raw_dataset_of_the_spec_has_a_suite_and_a_check():
    from include.pipelines import get

    spec = get("churn")
    assert {d.suite for d in spec.datasets if d.zone in ("raw", "features")} == set(suites.SUITES)
    assert set(suites.checks()) == set(suites.SUITES)
    assert set(cf.RAW_DATASETS.values()) == {d.dataset for d in spec.in_zone("raw")}

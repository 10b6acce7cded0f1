"""Days of an asset-scheduled run: params first, else the ranges of the triggering events."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from include.run_days import days_to_process


def _events(*ranges):
    return {"asset": [SimpleNamespace(extra={"start": s, "end": e}) for s, e in ranges]}


def test_params_win_over_events():
    assert days_to_process({"start": "2026-05-01", "end": "2026-05-02"}, _events(("2026-06-01", "2026-06-01")),
                           "score") == ["2026-05-01", "2026-05-02"]
    assert days_to_process({"start": "2026-05-01", "end": None}, None, "score") == ["2026-05-01"]


def test_event_ranges_are_merged_and_sorted():
    days = days_to_process({}, _events(("2026-05-03", "2026-05-04"), ("2026-05-01", "2026-05-03")), "monitor")
    assert days == ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]


@pytest.mark.parametrize(("params", "events", "message"), [
    ({}, None, "no days to monitor"),
    ({}, {"asset": [SimpleNamespace(extra=None)]}, "no days to monitor"),
    ({"start": "2026-05-02", "end": "2026-05-01"}, None, "ends before it starts"),
])
def test_no_or_bad_days_are_named(params, events, message):
    with pytest.raises(ValueError, match=message):
        days_to_process(params, events, "monitor")


def test_single_day_events_and_ranges_mix():
    # ingest's nightly events carry {"ds"}, its range runs {"start", "end"}
    events = {"asset": [SimpleNamespace(extra={"ds": "2026-05-05", "rows": 10}),
                        SimpleNamespace(extra={"start": "2026-05-01", "end": "2026-05-02"})]}
    assert days_to_process({}, events, "build features for") == ["2026-05-01", "2026-05-02", "2026-05-05"]


@pytest.mark.parametrize(("params", "message"), [
    ({"start": None, "end": "2026-05-02"}, "param 'end' = '2026-05-02' was given without 'start'"),
    ({"start": "", "end": "2026-05-02"}, "param 'end' = '2026-05-02' was given without 'start'"),
    ({"end": "2026-05-02"}, "param 'end' = '2026-05-02' was given without 'start'"),
    ({"start": "2026-05-02", "end": "2026-05-01"}, "param 'end' = '2026-05-01' is before param 'start' = "
                                                   "'2026-05-02'"),
    ({"start": "yesterday"}, "param 'start' = 'yesterday' is not a date (YYYY-MM-DD)"),
    ({"start": "2026-05-01", "end": "2026-02-30"}, "param 'end' = '2026-02-30' is not a date"),
    ({"start": 20260501}, "param 'start' = 20260501 is not a date"),
    ({"start": "2026-05-01", "end": "2062-05-01"}, "params 'start' = '2026-05-01' .. 'end' = '2062-05-01' span "
                                                   "13150 days, more than one run takes (3660)"),
])
def test_bad_params_name_the_param_and_its_value(params, message):
    """An 'end' alone used to be ignored: the run processed the day of its trigger and was green."""
    from include.run_days import ParamError

    events = _events(("2026-06-01", "2026-06-01"))
    with pytest.raises(ParamError) as refused:
        days_to_process(params, events, "score")
    assert message in str(refused.value)


def test_empty_params_fall_back_to_the_events():
    from include.run_days import param_days

    assert param_days({"start": "", "end": None}) is None and param_days(None) is None
    assert days_to_process({"start": " ", "end": ""}, _events(("2026-06-01", "2026-06-01")), "x") == ["2026-06-01"]
    assert param_days({"start": "2026-05-01", "end": "2036-05-03"})[-1] == "2036-05-03"  # ten years: one run

"""Days of an asset-scheduled run: params first, else the ranges of the triggering events."""

from __future__ import annotations

import datetime as dt
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


# --- the clock: a day D is over from D + 1 00:00 UTC ------------------------------------------------

UTC = dt.UTC
KIRITIMATI = dt.timezone(dt.timedelta(hours=14))  # UTC+14: its day begins ten hours before UTC's
LOS_ANGELES = dt.timezone(dt.timedelta(hours=-8))


@pytest.mark.parametrize(("now", "today"), [
    (dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), "2026-03-01"),
    (dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC), "2026-03-02"),
    (dt.datetime(2026, 3, 2, 9, 0, tzinfo=KIRITIMATI), "2026-03-01"),  # 2026-03-01 19:00 UTC
    (dt.datetime(2026, 3, 1, 17, 0, tzinfo=LOS_ANGELES), "2026-03-02"),  # 2026-03-02 01:00 UTC
    (dt.datetime(2026, 3, 1, 23, 30), "2026-03-01"),  # naive: UTC, never the machine's zone
])
def test_today_is_the_utc_day(now, today):
    from include.run_days import today_utc

    assert today_utc(now).isoformat() == today


@pytest.mark.parametrize(("days", "now", "future"), [
    # one second before midnight UTC, D is not over; at midnight it is
    (["2026-03-01"], dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), "ds=2026-03-01 is not over yet"),
    (["2026-03-01"], dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC), None),
    # already 2026-03-02 in Kiritimati, still 2026-03-01 in UTC: not over
    (["2026-03-01"], dt.datetime(2026, 3, 2, 9, 0, tzinfo=KIRITIMATI), "(today is 2026-03-01 UTC)"),
    # still 2026-03-01 in Los Angeles, already 2026-03-02 in UTC: over
    (["2026-03-01"], dt.datetime(2026, 3, 1, 17, 0, tzinfo=LOS_ANGELES), None),
    # a range reaching into the future names its first and last day not over
    (["2026-02-28", "2026-03-01", "2026-03-02"], dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
     "nothing to score: ds=2026-03-01..2026-03-02 is not over yet (today is 2026-03-01 UTC); the run is skipped"),
    ([dt.date(2026, 2, 28)], dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC), None),
])
def test_check_not_future_judges_in_utc(days, now, future):
    from include.run_days import NothingToDo, check_not_future

    if future is None:
        assert check_not_future(days, "score", now) is None
        return
    with pytest.raises(NothingToDo) as skipped:
        check_not_future(days, "score", now)
    assert future in str(skipped.value)


def test_days_to_process_does_not_judge_the_clock():
    """The days a run names are read apart from the clock: each task checks them and skips itself."""
    future = (dt.datetime.now(UTC) + dt.timedelta(days=2)).date().isoformat()
    assert days_to_process({"start": future}, None, "score") == [future]

"""Which day a training run is "as of": the day whose knowledge it uses (labels up to that day - 7)."""

from __future__ import annotations

import datetime as dt


def resolve_as_of(param: str | None, triggered_days: list[str], logical_date: dt.datetime | None) -> str:
    """``param`` when given; else the newest day carried by the drift alerts that triggered the run;
    else the day before the scheduled time (a weekly run at Sunday 03:00 UTC trains on what was known
    at the end of Saturday). Days are UTC days: ``logical_date`` is read in UTC (naive: UTC, as
    Airflow stores it), whatever zone it carries or ``TZ`` says. Whether as_of is over yet is the
    caller's check (include.run_days.check_not_future)."""
    if param:
        return dt.date.fromisoformat(param).isoformat()
    if triggered_days:
        return max(dt.date.fromisoformat(d) for d in triggered_days).isoformat()
    if logical_date is None:
        raise ValueError("no as_of: the run has no logical date, no triggering drift alert with a ds, "
                         "and no 'as_of' param (trigger with {\"as_of\": \"YYYY-MM-DD\"})")
    moment = logical_date if logical_date.tzinfo else logical_date.replace(tzinfo=dt.UTC)
    return (moment.astimezone(dt.UTC).date() - dt.timedelta(days=1)).isoformat()

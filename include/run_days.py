"""Which days a run processes: the ``start``/``end`` params of a manual or backfill run, else the days
carried by the triggering Asset events (extra ``start``/``end`` for a range, ``ds`` for one day).
Several events queued before the run was created are processed together.

:func:`param_days` is the one reading of the ``start``/``end`` params for every DAG that takes them
(ingest, features, scoring, monitoring): a param that cannot be what the operator meant is a
``ParamError`` naming the param and its value, which the tasks turn into a failure without retry.

"Future" is judged in UTC (:func:`check_not_future`): a day D is over from D + 1 00:00 UTC, whatever
``TZ`` or Airflow's ``default_timezone`` say. :func:`param_days` and :func:`days_to_process` only say
*which* days a run names; they never judge the clock. Each task that plans days calls
:func:`check_not_future` right after, and turns its :class:`NothingToDo` into a skip itself: a caller
that catches ``ValueError`` for bad params must not meet a second kind of exception that it would
let through as a retried failure.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.storage import as_date, day_range

# The longest range one run takes: ten years of days. A longer one is a typo (2062 for 2026), and
# would plan, stage and hold in memory every day of it before anything else could fail.
MAX_RANGE_DAYS = 3660


class ParamError(ValueError):
    """A run's params are invalid; the message names the param, its value and the rule."""


class NothingToDo(Exception):
    """The run has nothing to do for a reason that is not a failure: a day that is not over yet (in
    UTC), days before the first champion. The task ends as *skipped* with this message, so the run is
    not red and nothing downstream runs (docs/operations.md, "Odd dates")."""


def today_utc(now: dt.datetime | None = None) -> dt.date:
    """The current day in UTC, whatever ``TZ`` or Airflow's ``default_timezone`` say (``now``: the
    moment to judge; a naive one means UTC, as Airflow stores times, never the machine's zone)."""
    now = now or dt.datetime.now(dt.UTC)
    return (now if now.tzinfo else now.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()


def check_not_future(days: list[str] | list[dt.date], what: str, now: dt.datetime | None = None) -> None:
    """NothingToDo when any of ``days`` is not over yet in UTC (a day D is complete from D + 1 00:00
    UTC): a run dated in the future, or a range reaching into it, has no data to ``what`` yet."""
    today = today_utc(now)
    future = [as_date(d) for d in days if as_date(d) >= today]
    if future:
        raise NothingToDo(f"nothing to {what}: ds={future[0].isoformat()}"
                          + (f"..{future[-1].isoformat()}" if len(future) > 1 else "")
                          + f" is not over yet (today is {today.isoformat()} UTC); the run is skipped, not failed")


def _param_date(params: dict[str, Any], name: str) -> dt.date | None:
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # not given (the trigger form sends an empty field as "" or null)
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ParamError(f"param '{name}' = {value!r} is not a date (YYYY-MM-DD)")


def param_days(params: dict[str, Any] | None) -> list[str] | None:
    """The ISO days of the ``start``/``end`` params (``end`` defaults to ``start``), or None when
    neither is given. ParamError naming the param when ``end`` comes without ``start`` (it would be
    silently ignored: the run would process the day of its trigger only), ``end`` is before
    ``start``, a value is not a date, or the range is longer than ``MAX_RANGE_DAYS``."""
    params = params or {}
    start, end = _param_date(params, "start"), _param_date(params, "end")
    if start is None and end is None:
        return None
    if start is None:
        raise ParamError(f"param 'end' = {params['end']!r} was given without 'start': a range needs its first day "
                         "(trigger with {\"start\": \"YYYY-MM-DD\", \"end\": \"YYYY-MM-DD\"}, or 'start' alone "
                         "for one day)")
    end = end or start
    if end < start:
        raise ParamError(f"param 'end' = {end.isoformat()!r} is before param 'start' = {start.isoformat()!r}: "
                         "the range ends before it starts")
    length = (end - start).days + 1
    if length > MAX_RANGE_DAYS:
        raise ParamError(f"params 'start' = {start.isoformat()!r} .. 'end' = {end.isoformat()!r} span {length} days, "
                         f"more than one run takes ({MAX_RANGE_DAYS}); split the range into several runs")
    return [d.isoformat() for d in day_range(start, end)]


def days_to_process(params: dict[str, Any] | None, triggering_asset_events, what: str) -> list[str]:
    """Sorted ISO days; ValueError (ParamError for the params) naming the problem when there are none
    or the range is invalid. Days not over yet are returned too: the caller checks them with
    :func:`check_not_future` (see the module's docstring)."""
    days = param_days(params)
    if days is not None:
        return days
    days = [d.isoformat() for d in event_days(triggering_asset_events)]
    if not days:
        raise ValueError(f"no days to {what}: the run was not triggered by an Asset event carrying a day (ds, "
                         "or start/end) and no 'start' param was given (trigger with "
                         "{\"start\": \"YYYY-MM-DD\", \"end\": ...})")
    return days


def event_days(triggering_asset_events) -> list[dt.date]:
    """Every day the triggering Asset events carry, sorted and once each. ValueError naming the asset
    and the extra when one carries something that is not a day (YYYY-MM-DD) or a reversed range."""
    days = set()
    for asset, events in (triggering_asset_events or {}).items():
        for extra in (e.extra for e in events):
            try:
                if extra and extra.get("start"):
                    days.update(day_range(extra["start"], extra.get("end") or extra["start"]))
                elif extra and extra.get("ds"):
                    days.add(as_date(extra["ds"]))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"an Asset event of {getattr(asset, 'name', asset)} carries {extra!r}, not a day "
                                 f"(YYYY-MM-DD) or a range of days: {exc}") from None
    return sorted(days)


def event_extra(days: list[str] | list[dt.date], **fields: Any) -> dict[str, Any]:
    """The extra of an Asset event carrying ``days`` (in order), the inverse of :func:`event_days`:
    ``{"ds": day}`` for one day, ``{"start": first, "end": last}`` for a range, then ``fields``
    (counts, versions). ValueError when there is no day: an event must carry one."""
    if not days:
        raise ValueError("an Asset event must carry a day: no days given")
    first, last = as_date(days[0]).isoformat(), as_date(days[-1]).isoformat()
    return {"ds": first, **fields} if first == last else {"start": first, "end": last, **fields}

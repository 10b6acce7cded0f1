"""Which days a run of an asset-scheduled DAG processes: the ``start``/``end`` params of a manual or
backfill run, else the days carried by the triggering Asset events (extra ``start``/``end`` for a
range, ``ds`` for one day). Several events queued before the run was created are processed together."""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.storage import as_date, day_range


def days_to_process(params: dict[str, Any] | None, triggering_asset_events, what: str) -> list[str]:
    """Sorted ISO days; ValueError naming the problem when there are none or the range is invalid."""
    params = params or {}
    if params.get("start"):
        days = day_range(params["start"], params.get("end") or params["start"])
    else:
        days = event_days(triggering_asset_events)
        if not days:
            raise ValueError(f"no days to {what}: the run was not triggered by an Asset event carrying a day (ds, "
                             "or start/end) and no 'start' param was given (trigger with "
                             "{\"start\": \"YYYY-MM-DD\", \"end\": ...})")
    return sorted(d.isoformat() for d in days)


def event_days(triggering_asset_events) -> list[dt.date]:
    """Every day the triggering Asset events carry, sorted and once each."""
    days = set()
    for events in (triggering_asset_events or {}).values():
        for extra in (e.extra for e in events):
            if extra and extra.get("start"):
                days.update(day_range(extra["start"], extra.get("end") or extra["start"]))
            elif extra and extra.get("ds"):
                days.add(as_date(extra["ds"]))
    return sorted(days)

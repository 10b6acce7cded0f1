"""Which days a run of an asset-scheduled DAG processes: the ``start``/``end`` params of a manual or
backfill run, else the days carried by the triggering Asset events (extra ``start``/``end`` for a
range, ``ds`` for one day). Several events queued before the run was created are processed together."""

from __future__ import annotations

from typing import Any

from include.storage import day_range


def days_to_process(params: dict[str, Any] | None, triggering_asset_events, what: str) -> list[str]:
    """Sorted ISO days; ValueError naming the problem when there are none or the range is invalid."""
    params = params or {}
    if params.get("start"):
        days = day_range(params["start"], params.get("end") or params["start"])
    else:
        ranges = [_event_range(e.extra) for events in (triggering_asset_events or {}).values()
                  for e in events if e.extra and (e.extra.get("start") or e.extra.get("ds"))]
        if not ranges:
            raise ValueError(f"no days to {what}: the run was not triggered by an Asset event carrying a day (ds, or start/end) "
                             "and no 'start' param was given (trigger with {\"start\": \"YYYY-MM-DD\", \"end\": ...})")
        days = {d for start, end in ranges for d in day_range(start, end)}
    return sorted(d.isoformat() for d in days)


def _event_range(extra: dict[str, Any]) -> tuple[str, str]:
    if extra.get("start"):
        return extra["start"], extra.get("end") or extra["start"]
    return extra["ds"], extra["ds"]

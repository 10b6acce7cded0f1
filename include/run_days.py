"""Which days a run of an asset-scheduled DAG processes: the ``start``/``end`` params of a manual or
backfill run, else the day ranges carried by the triggering Asset events (extra ``start``/``end``)."""

from __future__ import annotations

from typing import Any

from include.storage import day_range


def days_to_process(params: dict[str, Any] | None, triggering_asset_events, what: str) -> list[str]:
    """Sorted ISO days; ValueError naming the problem when there are none or the range is invalid."""
    params = params or {}
    if params.get("start"):
        days = day_range(params["start"], params.get("end") or params["start"])
    else:
        ranges = [(e.extra["start"], e.extra["end"]) for events in (triggering_asset_events or {}).values()
                  for e in events if e.extra and e.extra.get("start")]
        if not ranges:
            raise ValueError(f"no days to {what}: the run was not triggered by an Asset event carrying start/end "
                             "and no 'start' param was given (trigger with {\"start\": \"YYYY-MM-DD\", \"end\": ...})")
        days = {d for start, end in ranges for d in day_range(start, end)}
    return sorted(d.isoformat() for d in days)

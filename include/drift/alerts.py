"""The drift alert a monitoring run sends: which of its days raises it, and what it says.

The monitoring DAG's check (include.drift.monitor, through DriftCheckOperator) returns one result per
day, in day order: ``{"ds", "model_version", "alerts": [messages], "report", "triggers_training", ...}``.
A run raises at most one alert, for the newest day whose result starts a new drift episode
(``triggers_training``); its text goes to the task log and the configured channels
(batchml.notifiers.AlertNotifier), and its ``{"ds", "model_version"}`` become the extra of the
``drift_alert`` Asset event, whose ``ds`` the training DAG trains as of (include.run_days.event_days).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DriftAlert:
    """The alert of one day: what the notifier sends, what the Asset event carries, what the task returns."""

    ds: str
    model_version: str
    alerts: list[str]
    report: str
    subject: str
    message: str

    @property
    def event_extra(self) -> dict[str, Any]:
        """The extra of the ``drift_alert`` Asset event."""
        return {"ds": self.ds, "model_version": self.model_version}

    def summary(self, delivered: dict[str, str]) -> dict[str, Any]:
        """What the emitting task returns (small JSON): the day, the alerts and each channel's outcome."""
        return {"ds": self.ds, "alerts": self.alerts, "notified": delivered}


def triggers_training(results: list[dict[str, Any]]) -> bool:
    """Whether any day of the run starts a new drift episode (the run emits ``drift_alert``)."""
    return any(r["triggers_training"] for r in results)


def drift_alert(results: list[dict[str, Any]], pipeline: str | None = None) -> DriftAlert:
    """The alert of the newest day of ``results`` that starts a drift episode, with its text: the
    subject names the day and the model version (prefixed by ``pipeline`` when given), the message
    lists the day's alerts, the report and what the alert schedules. ValueError naming the days when
    no day triggers training (the caller checks :func:`triggers_training` first)."""
    triggering = [r for r in results if r["triggers_training"]]
    if not triggering:
        days = ", ".join(str(r.get("ds")) for r in results) or "none"
        raise ValueError(f"no drift alert to send: no day of the run starts a drift episode (days: {days})")
    newest = triggering[-1]
    ds, version = str(newest["ds"]), str(newest["model_version"])
    subject = f"{pipeline + ' ' if pipeline else ''}drift alert ds={ds}: model version {version}"
    message = "\n".join([*newest["alerts"], f"report: {newest['report']}", "the training DAG is scheduled by this alert"])
    return DriftAlert(ds=ds, model_version=version, alerts=list(newest["alerts"]), report=str(newest["report"]),
                      subject=subject, message=message)

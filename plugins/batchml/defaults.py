"""The task defaults every DAG of the project shares, so the retry and alerting policy lives in one place."""

from __future__ import annotations

import datetime as dt
from typing import Any

from batchml.notifiers import TaskFailureNotifier


def default_args(owner: str, *, retries: int = 1, retry_delay: dt.timedelta = dt.timedelta(minutes=2),
                 max_retry_delay: dt.timedelta = dt.timedelta(minutes=30)) -> dict[str, Any]:
    """Owner, retries whose delay doubles each try up to ``max_retry_delay`` (Airflow 3.3 reads
    ``retry_exponential_backoff`` as a multiplier: ``True`` would mean 1.0, a constant delay), and the
    failure notifier (task log, ``alerts`` table, e-mail/Slack when configured). Bad data and bad
    parameters skip the retries by raising ``AirflowFailException``."""
    return {"owner": owner, "retries": retries, "retry_delay": retry_delay, "retry_exponential_backoff": 2.0,
            "max_retry_delay": max_retry_delay, "on_failure_callback": TaskFailureNotifier()}


def day_range_params(purpose: str = "backfill") -> dict[str, Any]:
    """The ``start`` / ``end`` params of a DAG that processes a range of days when triggered by hand
    (``purpose`` is shown in the trigger form); both empty: the days of the triggering event."""
    from airflow.sdk import Param

    return {
        "start": Param(None, type=["null", "string"], format="date", description=f"first day ({purpose})"),
        "end": Param(None, type=["null", "string"], format="date", description=f"last day ({purpose})"),
    }

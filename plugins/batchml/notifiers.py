"""Alert delivery: the task log always, e-mail and Slack when they are configured.

The channels are looked up when an alert fires, never while a DAG file is parsed:

- e-mail: the Airflow Variable ``batchml_alert_emails`` (comma-separated addresses) through the
  SMTP provider's ``SmtpNotifier`` and the connection ``smtp_default``;
- Slack: the connection ``slack_alerts`` (an incoming webhook) through ``SlackWebhookNotifier``.

The alert itself is already recorded by the task that raised it (the warehouse ``alerts`` table);
a channel that cannot be reached is logged as an error and does not stop the other channels or the
pipeline (a broken mail relay must not hold back the retraining an alert schedules).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

EMAIL_VARIABLE = "batchml_alert_emails"
SLACK_CONN_ID = "slack_alerts"


class AlertNotifier(BaseNotifier):
    """Send ``subject`` and ``message`` (templated) to the task log and every configured channel.

    :param subject: one line, e.g. ``drift alert ds={{ ds }}``.
    :param message: the body (plain text).
    :param email_variable: the Airflow Variable listing e-mail recipients.
    :param slack_conn_id: the Slack incoming-webhook connection.
    :param smtp_conn_id: the SMTP connection for e-mail.
    """

    template_fields: Sequence[str] = ("subject", "message")

    def __init__(self, *, subject: str, message: str, email_variable: str = EMAIL_VARIABLE,
                 slack_conn_id: str = SLACK_CONN_ID, smtp_conn_id: str = "smtp_default") -> None:
        super().__init__()
        self.subject = subject
        self.message = message
        self.email_variable = email_variable
        self.slack_conn_id = slack_conn_id
        self.smtp_conn_id = smtp_conn_id
        self.delivered: dict[str, str] = {}  # channel -> "sent" or the error, for the caller's XCom

    def notify(self, context: Context) -> None:
        log.warning("ALERT %s: %s", self.subject, self.message)
        self.delivered = {"log": "sent"}
        for name, channel in self._channels():
            try:
                channel.notify(context)
                self.delivered[name] = "sent"
            except Exception as exc:  # one unreachable channel must not silence the others
                log.error("alert channel %s failed: %s", name, exc)
                self.delivered[name] = f"failed: {exc}"

    def _channels(self) -> list[tuple[str, Any]]:
        from airflow.sdk import Variable

        channels = []
        recipients = [a.strip() for a in (Variable.get(self.email_variable, default=None) or "").split(",")
                      if a.strip()]
        if recipients:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            channels.append(("email", SmtpNotifier(to=recipients, subject=self.subject, smtp_conn_id=self.smtp_conn_id,
                                                   html_content=f"<pre>{html.escape(self.message)}</pre>")))
        if _connection_exists(self.slack_conn_id):
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            channels.append(("slack", SlackWebhookNotifier(slack_webhook_conn_id=self.slack_conn_id,
                                                           text=f"*{self.subject}*\n{self.message}")))
        return channels


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


# Failures of tasks and late runs: every DAG's default_args carry ``on_failure_callback``, the nightly
# scoring DAG a DeadlineAlert. Both record a row in the warehouse ``alerts`` table (``model_name`` holds
# the DAG id, ``kind`` is ``task_failure`` or ``deadline_missed``) and go to the same channels.

MAX_MESSAGE_CHARS = 2000


class TaskFailureNotifier(BaseNotifier):
    """``on_failure_callback`` of every task (``default_args``): runs in the failed task's process
    after its last try, never on a retry.

    It logs the failure, appends a ``task_failure`` row to the warehouse ``alerts`` table (DAG, task,
    run, day, try and the exception) and sends it to the configured e-mail / Slack channels through
    :class:`AlertNotifier`. Each step is best effort: a warehouse or channel that cannot be reached is
    logged and does not hide the others (Airflow also only logs a failing callback).
    """

    def __init__(self, *, email_variable: str = EMAIL_VARIABLE, slack_conn_id: str = SLACK_CONN_ID,
                 smtp_conn_id: str = "smtp_default") -> None:
        super().__init__()
        self.email_variable = email_variable
        self.slack_conn_id = slack_conn_id
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Context) -> None:
        failure = describe_failure(context)
        log.error("TASK FAILED %s", failure["message"])
        _record_alert(failure["day"], failure["dag_id"], "task_failure", failure["message"])
        AlertNotifier(subject=failure["subject"], message=failure["message"], email_variable=self.email_variable,
                      slack_conn_id=self.slack_conn_id, smtp_conn_id=self.smtp_conn_id).notify(context)


def describe_failure(context: Context) -> dict[str, Any]:
    """Who failed, on which day and why, from a task's context."""
    ti = context["ti"]
    task = f"{ti.task_id}[{ti.map_index}]" if getattr(ti, "map_index", -1) not in (-1, None) else ti.task_id
    day = _run_day(context)
    error = context.get("exception")
    reason = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "unknown error")
    message = (f"{ti.dag_id}.{task} failed (run {ti.run_id}, ds {day}, try {getattr(ti, 'try_number', '?')}): "
               f"{reason}")[:MAX_MESSAGE_CHARS]
    return {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "day": day, "message": message,
            "subject": f"task failed: {ti.dag_id}.{task} ds={day}"}


def _run_day(context: Context):
    """The run's day: ``ds`` when the run has a logical date, else the ``start`` param of a manual or
    backfill run, else the day the run was created for (asset-triggered runs have no logical date)."""
    import datetime as dt

    if context.get("ds"):
        return dt.date.fromisoformat(context["ds"])
    params = context.get("params") or {}
    if params.get("start"):
        try:
            return dt.date.fromisoformat(str(params["start"]))
        except ValueError:
            pass
    run = context.get("dag_run")
    when = getattr(run, "run_after", None) or getattr(run, "logical_date", None) or dt.datetime.now(dt.UTC)
    return when.date()


def _record_alert(day, dag_id: str, kind: str, message: str) -> None:
    try:
        from include import warehouse

        warehouse.record_pipeline_alert(day, dag_id, kind, message)
    except Exception as exc:  # the warehouse may be what failed; the log and the channels still get it
        log.error("could not record the %s alert in the warehouse: %s", kind, exc)


def deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """DeadlineAlert callback (``SyncCallback``, run by the executor when a run is still not finished
    at its deadline). ``context`` holds the run (``dag_run``, the API's JSON form) and the
    ``deadline``; ``kwargs`` what the DAG passed (``dag_id``, ``minutes``).

    Records a ``deadline_missed`` row in the warehouse ``alerts`` table and sends the alert to the
    log and the configured channels. The run itself goes on: the deadline only says it is late.
    """
    import datetime as dt

    context = context or {}
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id = run.get("dag_id") or kwargs.get("dag_id") or "unknown"
    conf = run.get("conf") or {}
    stamp = run.get("logical_date") or run.get("run_after")
    # the data day when the run names it (params); an Asset-triggered run's days are in its events,
    # which the callback does not see: its row is filed under the date the run was due, said as such
    which = "ds" if conf.get("start") else "run date"
    try:
        day = dt.date.fromisoformat(str(conf["start"])) if conf.get("start") else dt.datetime.fromisoformat(
            str(stamp)).date()
    except (TypeError, ValueError):
        day = dt.datetime.now(dt.UTC).date()
    limit = f" ({kwargs['minutes']} min after it was queued)" if kwargs.get("minutes") else ""
    message = (f"{dag_id} run {run.get('dag_run_id', '?')} ({which} {day}) has not finished by its deadline "
               f"{deadline.get('deadline_time', '?')}{limit}; state {run.get('state', '?')}, queued at "
               f"{run.get('queued_at', '?')}, started {run.get('start_date') or 'not yet'}")[:MAX_MESSAGE_CHARS]
    log.error("DEADLINE MISSED %s", message)
    _record_alert(day, dag_id, "deadline_missed", message)
    AlertNotifier(subject=f"late run: {dag_id} ds={day}", message=message).notify(context)  # type: ignore[arg-type]

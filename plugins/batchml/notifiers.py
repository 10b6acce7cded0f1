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
                                                   html_content=f"<pre>{_escape(self.message)}</pre>")))
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


def _escape(text: str) -> str:
    import html

    return html.escape(text)

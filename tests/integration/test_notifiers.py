"""Alert delivery through the real providers: an SMTP conversation with a local mail server and an
HTTP POST to a local stand-in for a Slack incoming webhook, both on loopback."""

from __future__ import annotations

import email
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from batchml.notifiers import AlertNotifier


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: greet, accept one message, keep it."""

    def handle(self) -> None:
        self.wfile.write(b"220 localhost test SMTP\r\n")
        data, lines = False, []
        while line := self.rfile.readline():
            text = line.decode().rstrip("\r\n")
            if data:
                if text == ".":
                    data = False
                    self.server.messages.append("\n".join(lines))
                    self.wfile.write(b"250 OK queued\r\n")
                else:
                    lines.append(text)
                continue
            verb = text.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == "DATA":
                data, lines = True, []
                self.wfile.write(b"354 end with <CRLF>.<CRLF>\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # MAIL FROM, RCPT TO, RSET, NOOP
                self.server.envelope.append(text)
                self.wfile.write(b"250 OK\r\n")


class _WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def _serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages, server.envelope = [], []
    yield _serve(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _WebhookHandler)
    server.posts = []
    yield _serve(server)
    server.shutdown()
    server.server_close()


def _smtp_connection(port: int) -> str:
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "", "password": "",
                       "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"}})


def _alert() -> AlertNotifier:
    return AlertNotifier(subject="drift alert ds=2026-03-19: model version 3",
                         message="3 drifted column(s): tx_amount (PSI 0.912)\nreport: /lake/report.html")


def test_without_channels_the_alert_goes_to_the_log_only(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_VAR_BATCHML_ALERT_EMAILS", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    notifier = _alert()
    with caplog.at_level("WARNING"):
        notifier.notify({})
    assert notifier.delivered == {"log": "sent"}
    assert "ALERT drift alert ds=2026-03-19" in caplog.text and "tx_amount (PSI 0.912)" in caplog.text


def test_email_and_slack_when_configured(monkeypatch, smtp_server, webhook):
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_ALERT_EMAILS", "ops@example.com, oncall@example.com")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_connection(smtp_server.server_address[1]))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps(
        {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{webhook.server_address[1]}/services/T0/B0/x"}))
    notifier = _alert()
    notifier.notify({})

    assert notifier.delivered == {"log": "sent", "email": "sent", "slack": "sent"}
    assert len(smtp_server.messages) == 1
    mail = email.message_from_string(smtp_server.messages[0])
    assert " ".join(mail["Subject"].split()) == "drift alert ds=2026-03-19: model version 3"
    body = next(part for part in mail.walk() if part.get_content_type() == "text/html")
    assert "tx_amount (PSI 0.912)" in body.get_payload(decode=True).decode()
    assert any("ops@example.com" in e for e in smtp_server.envelope)
    assert any("oncall@example.com" in e for e in smtp_server.envelope)
    [(path, payload)] = webhook.posts
    assert path == "/services/T0/B0/x"
    assert payload["text"].startswith("*drift alert ds=2026-03-19: model version 3*") and "PSI 0.912" in payload["text"]


def test_an_unreachable_channel_is_reported_and_the_others_still_go_out(monkeypatch, webhook):
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        dead_port = closed.server_address[1]  # bound, then closed: nothing listens there
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_ALERT_EMAILS", "ops@example.com")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(
        {**json.loads(_smtp_connection(dead_port)), "extra": {"disable_ssl": True, "disable_tls": True,
                                                               "retry_limit": 1, "timeout": 5}}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", json.dumps(
        {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{webhook.server_address[1]}/hook"}))
    notifier = _alert()
    notifier.notify({})
    assert notifier.delivered["email"].startswith("failed:")
    assert notifier.delivered["slack"] == "sent" and len(webhook.posts) == 1

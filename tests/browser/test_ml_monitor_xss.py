"""Stored and reflected script against the ML monitor, in a real Airflow API server and a real Chromium.

Script payloads sit in every field the page takes from the registry and the warehouse
(tests/unit/test_ml_monitor_http.py plants them: version tags, the metrics JSON's keys and values, a
version's description, alert messages, gate reasons, drift column names, data-quality failure texts,
text in numeric SQLite columns) and in the ``model`` query parameter. Chromium loads the page:

- as served, under the plugin's Content-Security-Policy: the DOM Chromium built holds no element or
  event handler of a payload, every payload is shown as text, and Chromium reports no CSP violation
  (so the page's own style is not blocked either: it renders fully under the policy);
- saved to a file and opened without any policy: escaping alone keeps every payload inert.

A payload that ran ``alert()`` would open a dialog, which blocks headless Chromium's ``--dump-dom``: a
dialog shows as the dump timing out, and the test fails saying so.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import urllib.parse

import pytest

from tests.browser.test_ml_monitor_browser import _api_server, _chrome, _chromium, _environment, _get
from tests.unit.test_ml_monitor import END, fill_history
from tests.unit.test_ml_monitor_http import HIDDEN, PAYLOADS, assert_inert, plant_payloads

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REFLECTED = '"><svg onload=alert(document.domain)><img src=x onerror=alert(document.domain)>'


def _dom(chromium: str, profile, url: str) -> tuple[str, list[str]]:
    """The DOM Chromium built for ``url`` and the Content-Security-Policy violations it logged."""
    try:
        run = _chrome(chromium, profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                      "--dump-dom", url)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish loading {url}: a script of a payload opened a dialog", pytrace=False)
    assert run.returncode == 0, run.stderr[-2000:]
    violations = [line for line in run.stderr.splitlines() if "Content Security Policy" in line]
    return run.stdout, violations


def test_script_payloads_stay_inert_in_chromium(data_root, tmp_path, reliability):
    stored = reliability.case(
        "security", "ML monitor in Chromium: stored script payloads in every registry and warehouse field the page "
        "shows (tags, metrics keys and values, descriptions, alerts, gate reasons, drift columns, data-quality "
        "failures)", expected="no payload element or event handler in the DOM, no dialog, each payload shown as text; "
        "the same with the page opened without its CSP")
    reflected = reliability.case("security", "ML monitor in Chromium: a script payload in ?model=",
                                 expected="no payload element in the DOM, no dialog, the name shown as text")
    csp = reliability.case("security", "ML monitor in Chromium: the page under its Content-Security-Policy",
                           expected="Chromium reports no CSP violation: no inline script, its own style allowed")
    chromium = _chromium()
    started = time.monotonic()
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = _environment(home, data_root, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True")
    migrate = subprocess.Popen(["airflow", "db", "migrate"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    fill_history(days=13, rows_per_day=20, end=END - dt.timedelta(days=1))  # ordinary days before the hostile one
    plant_payloads()
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output[-4000:]

    profile = tmp_path / "chromium-profile"
    with _api_server(env, tmp_path / "api-xss.log") as base:
        page_url = f"{base}/ml-monitor/?days=14"
        status, headers, body = _get(page_url)
        assert status == 200 and "script-src 'none'" in headers["content-security-policy"], (status, headers)
        dom, violations = _dom(chromium, profile, page_url)
        assert_inert(dom, {f: p for f, p in PAYLOADS.items() if f != "tag threshold"}, HIDDEN)
        assert 'class="card champion" id="champion"' in dom and 'class="grid drift-heatmap"' in dom
        assert not violations, violations
        stored.observed = f"{len(PAYLOADS) - 1} payloads shown as text in the DOM, no element, no dialog"
        csp.observed = f"no violation logged; {headers['content-security-policy']}"

        # escaping alone: the same page opened from a file, where no policy applies
        saved = tmp_path / "ml-monitor.html"
        saved.write_bytes(body)
        unprotected, _ = _dom(chromium, profile, saved.as_uri())
        assert_inert(unprotected, {f: p for f, p in PAYLOADS.items() if f != "tag threshold"}, HIDDEN)
        stored.observed += "; the same without the CSP"

        url = f"{base}/ml-monitor/?days=14&model={urllib.parse.quote(REFLECTED)}"
        dom, violations = _dom(chromium, profile, url)
        assert_inert(dom, {"model": REFLECTED})
        assert not violations, violations
        reflected.observed = "the name shown as text in the title, heading and empty states; no element, no dialog"
    took = time.monotonic() - started
    print(f"\nXSS in Chromium: {took:.1f} s")
    assert took < 120, f"the test took {took:.0f} s"

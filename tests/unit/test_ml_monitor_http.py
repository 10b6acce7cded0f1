"""The ML monitor as an attacker and a careless user meet it: script in every value it shows, and the
HTTP surface with parameters nobody meant.

Script payloads are written where a user with write access to MLflow or the warehouse would put them
(version tags, a version's description, alert messages, gate reasons, drift column names, data-quality
failure texts, even text in a numeric column of an SQLite warehouse), then the page is rendered and
parsed: no element or attribute of a payload may appear, and each payload must be shown as text.
The browser test (tests/browser/test_ml_monitor_xss.py) loads the same rows in a real Chromium.

Real MLflow (sqlite store of the test's data root), real SQLite warehouse, the plugin's FastAPI app
through Starlette's TestClient (the Airflow login is exercised by the browser tests).
"""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser

import pytest

from include import ml_monitor, warehouse
from tests.unit.test_ml_monitor import END, MODEL, MONITORED, cells, fill_history
from tests.unit.test_ml_monitor import client as client  # noqa: F401 - the plugin app's fixture, reused

pytestmark = [pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]

# A payload per field, naming the field: a payload that got through says where it came from.
SHAPES = ("<img src=x onerror=alert(document.domain)>{}", "<script>alert(1)</script>{}", '"><svg onload=alert(1)>{}',
          "'><iframe src=javascript:alert(1)>{}", "</title></pre><script>alert(1)</script>{}")
FIELDS = ("tag model", "tag family", "tag as_of", "tag training_window", "tag evaluation_window", "tag gate_decision",
          "tag gate_reason", "tag rolled_back", "tag threshold", "tag metrics value", "drift column_name",
          "drift model_version", "drift psi_level", "drift psi (text in a REAL column)", "dq dataset", "dq failures",
          "dq failed (text in an INTEGER column)", "alert kind", "alert model_version", "alert message",
          "promotion decision", "promotion reason", "promotion primary_metric", "promotion challenger_version",
          "promotion champion_version", "promotion challenger_value (text in a REAL column)", "performance role",
          "performance model_version", "performance alerts", "performance estimate_note", "performance calibration",
          "performance auc_roc (text in a REAL column)")
PAYLOADS = {f: SHAPES[i % len(SHAPES)].format(f" [{f}]") for i, f in enumerate(FIELDS)}
# in the registry but not shown by the page: they must not come through either
HIDDEN = {"tag metrics key": "<img src=x onerror=alert(document.domain)> [tag metrics key]",
          "version description": "<script>alert(1)</script> [version description]"}
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "tbody", "h1", "h2", "h3", "p", "a", "b", "code", "section",
                "div", "table", "tr", "th", "td", "pre", "svg", "rect", "text", "footer", "span", "polyline", "line",
                "circle", "path"}


def bare_version(description: str | None = None):
    """(client, version): a version of MODEL in the real MLflow store of the data root, with no model
    behind it (the page reads tags and aliases only)."""
    from include.config import data_root
    from include.training import tracking

    mlflow = tracking.client()
    mlflow.create_registered_model(MODEL)
    return mlflow, mlflow.create_model_version(MODEL, source=(data_root() / "no-model").as_uri(),
                                               description=description)


def plant_payloads(day: dt.date = END) -> str:
    """Script payloads in every field the page reads: a champion version with hostile tags (set straight
    through the MLflow client, as anyone who may write to the registry can) and warehouse rows of ``day``
    (SQLite keeps text even in a numeric column). Returns the champion's version."""
    from sqlalchemy import text

    p = PAYLOADS
    mlflow, mv = bare_version(description=HIDDEN["version description"])
    tags = {"model": p["tag model"], "family": p["tag family"], "as_of": p["tag as_of"],
            "threshold": p["tag threshold"], "training_window": p["tag training_window"],
            "evaluation_window": p["tag evaluation_window"], "gate_decision": p["tag gate_decision"],
            "gate_reason": p["tag gate_reason"], "rolled_back": p["tag rolled_back"],
            "metrics": json.dumps({"average_precision": p["tag metrics value"], "auc_roc": 0.85,
                                   HIDDEN["tag metrics key"]: 1.0})}
    for key, value in tags.items():
        mlflow.set_model_version_tag(MODEL, mv.version, key, value)
    mlflow.set_registered_model_alias(MODEL, "champion", mv.version)

    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.drift_metrics.insert(), [
            {"ds": day, "model_name": MODEL, "model_version": p["drift model_version"],
             "column_name": p["drift column_name"], "kind": "numeric", "psi": 0.3, "psi_level": p["drift psi_level"],
             "ks_statistic": 0.1, "ks_p_value": 0.01, "drifted": True},
            {"ds": day, "model_name": MODEL, "model_version": "1", "column_name": "tx_amount", "kind": "numeric",
             "psi": 0.01, "psi_level": "ok", "ks_statistic": None, "ks_p_value": None, "drifted": False}])
        conn.execute(warehouse.data_quality.insert(), [
            {"ds": day, "dataset": p["dq dataset"], "suite": "s", "success": False, "evaluated": 12, "failed": 1,
             "rows": 10, "failures": p["dq failures"], "path": "/x", "quarantined_to": None, "validated_at": now}])
        conn.execute(warehouse.alerts.insert(), [
            {"ds": day, "model_name": MODEL, "model_version": p["alert model_version"], "kind": p["alert kind"],
             "message": p["alert message"], "triggered_training": True, "raised_at": now}])
        conn.execute(warehouse.promotions.insert(), [
            {"model_name": MODEL, "as_of": day, "challenger_version": p["promotion challenger_version"],
             "challenger_run_id": "f" * 32, "champion_version": p["promotion champion_version"],
             "decision": p["promotion decision"], "promoted": False, "reason": p["promotion reason"],
             "primary_metric": p["promotion primary_metric"], "challenger_value": 0.5, "champion_value": 0.4,
             "metrics_json": None, "dag_run_id": "manual", "decided_at": now, "promoted_at": None}])
        # what SQLAlchemy's types would refuse, a raw write into SQLite's dynamic types still stores
        conn.execute(text("UPDATE drift_metrics SET psi = :v WHERE column_name = 'tx_amount'"),
                     {"v": p["drift psi (text in a REAL column)"]})
        conn.execute(text("UPDATE data_quality SET failed = :v"), {"v": p["dq failed (text in an INTEGER column)"]})
        conn.execute(text("UPDATE promotions SET challenger_value = :v"),
                     {"v": p["promotion challenger_value (text in a REAL column)"]})
        # live performance: the day before with labels (a hostile realised figure), the day itself estimated
        blank = dict.fromkeys(c.name for c in warehouse.performance_days.columns)
        conn.execute(warehouse.performance_days.insert(), [
            {**blank, "ds": d + dt.timedelta(days=7), "scored_day": d, "model_name": MODEL, "role": p["performance role"],
             "model_version": p["performance model_version"], "threshold": 0.3, "estimated": d == day,
             "n_labelled": None if d == day else 100, "n_frauds": None if d == day else 5,
             "auc_roc": None if d == day else 0.8, "alerts": None if d == day else p["performance alerts"],
             "realised_at": None if d == day else now, "est_auc_roc": 0.82, "est_precision_at_threshold": 0.4,
             "calibration": p["performance calibration"], "estimate_note": p["performance estimate_note"],
             "estimated_at": now, "reference_json": json.dumps({"auc_roc": 0.85, HIDDEN["tag metrics key"]: 1.0})}
            for d in (day - dt.timedelta(days=1), day)])
        conn.execute(text("UPDATE performance_days SET auc_roc = :v WHERE auc_roc IS NOT NULL"),
                     {"v": p["performance auc_roc (text in a REAL column)"]})
    return str(mv.version)


class _Page(HTMLParser):
    """Every element, attribute and text of a page, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(page: str, shown: dict[str, str], hidden: dict[str, str] | None = None) -> _Page:
    """No element or event-handler attribute of a payload in ``page``; each payload of ``shown`` visible as
    text (or an attribute's value); none of ``hidden`` anywhere."""
    parsed = _Page(page)
    foreign = sorted({tag for tag, _ in parsed.tags} - ALLOWED_TAGS)
    assert not foreign, f"elements a payload would bring: {foreign}"
    handlers = [(tag, name) for tag, attrs in parsed.tags for name, _ in attrs
                if name.startswith("on") or name in ("src", "srcdoc", "formaction")]
    assert not handlers, f"event handlers or sources a payload would bring: {handlers}"
    visible = "\n".join(parsed.text) + "\n".join(v or "" for _, attrs in parsed.tags for _, v in attrs)
    missing = [field for field, payload in shown.items() if payload not in visible]
    assert not missing, f"payloads not shown as text (dropped rather than escaped?): {missing}"
    leaked = [field for field, payload in (hidden or {}).items() if payload in visible or payload in page]
    assert not leaked, f"fields the page does not show came through: {leaked}"
    return parsed


# ------------------------------------------------------------------------------------------------
# escaping


def test_every_value_from_registry_and_warehouse_is_escaped(data_root, reliability):
    case = reliability.case(
        "security", "ML monitor: script payloads in every registry tag, description, alert, gate reason, drift "
        "column, data-quality failure and numeric column the page reads",
        expected="the page shows each payload as text; no element or event handler of a payload in the page")
    version = plant_payloads()
    data = ml_monitor.gather(days=7, registry_timeout_s=30)
    assert data.registry.versions["champion"].version == version and not data.errors
    page = ml_monitor.render_html(data, base="/ml-monitor")
    shown = {f: p for f, p in PAYLOADS.items() if f != "tag threshold"}
    parsed = assert_inert(page, shown, HIDDEN)
    # the threshold that is not a number is named, with its value, as an unreadable tag
    assert f"tag threshold is not a finite number: {PAYLOADS['tag threshold']!r}" in "".join(parsed.text)
    (amount,) = [dict(attrs) for tag, attrs in parsed.tags if ("data-column", "tx_amount") in attrs]
    assert amount["data-psi"] == PAYLOADS["drift psi (text in a REAL column)"] and amount["fill"] == "#d0d0d0"
    case.observed = (f"{len(shown)} payloads shown as text, {len(HIDDEN)} hidden fields absent; elements of the page: "
                     f"{sorted({t for t, _ in parsed.tags})}")


def test_rendering_escapes_every_string_it_is_given():
    """render_html alone, on data made by hand: a payload in every string of MonitorData (the parts a
    store cannot hold, like error messages quoting a value, the tracking URI or the warehouse note, too)."""
    day = END
    strings = iter(range(1000))
    WARN, ALERT = ml_monitor.psi_thresholds()  # noqa: N806 - the monitoring configuration's levels

    def x() -> str:  # a fresh payload each time, numbered so that a leak names its field's place
        n = next(strings)
        return SHAPES[n % len(SHAPES)].format(f" [{n}]")

    version = ml_monitor.VersionInfo(
        alias="champion", version=x(), model=x(), family=x(), as_of=x(), threshold=None,
        metrics={"average_precision": x(), "auc_roc": x()}, training_window=x(), evaluation_window=x(),
        gate_decision=x(), gate_reason=x(), rolled_back=x(), run_id=x(), created=x(), problems=[x()])
    challenger = ml_monitor.VersionInfo(**{**vars(version), "alias": "challenger", "version": x()})
    registry = ml_monitor.RegistryState(model_name=x(), tracking_uri=x(), versions={"champion": version,
                                                                                     "challenger": challenger})
    promotion = {"decision": x(), "promoted": True, "decided_at": x(), "promoted_at": x(), "as_of": x(),
                 "challenger_version": version.version, "champion_version": x(), "primary_metric": x(),
                 "challenger_value": x(), "champion_value": x(), "reason": x()}
    data = ml_monitor.MonitorData(
        model_name=registry.model_name, window=ml_monitor.window_ending(day, 3), generated_at=dt.datetime.now(dt.UTC),
        registry=registry, psi_warn=WARN, psi_alert=ALERT, promotions=[promotion], promotions_total=1,
        drift=[{"ds": day, "column_name": x(), "model_version": x(), "kind": "numeric", "psi": x(), "psi_level": x(),
                "ks_statistic": x(), "ks_p_value": x(), "drifted": True}],
        data_quality=[{"ds": day, "dataset": x(), "success": False, "failed": x(), "evaluated": x(), "rows": x(),
                       "failures": x()}],
        scoring=[{"ds": day, "model_version": x(), "rows": 10, "flagged": 1, "mean_score": 0.1}],
        histogram={day: [1] * ml_monitor.SCORE_BINS},
        alerts=[{"ds": day, "kind": x(), "model_version": x(), "triggered_training": True, "message": x()}],
        alerts_total=1, warehouse_note=x())
    n_data = next(strings)
    page = ml_monitor.render_html(data, base="/ml-monitor")
    payloads = {str(i): SHAPES[i % len(SHAPES)].format(f" [{i}]") for i in range(n_data)}
    assert_inert(page, payloads)
    # every section in its error state, with messages that quote what they could not read
    registry_down = ml_monitor.RegistryState(model_name=x(), tracking_uri=x(), error=x())
    errors = {section: x() for section in ("window", "registry", "thresholds", "promotions", "drift",
                                            "data_quality", "predictions", "alerts")}
    broken = ml_monitor.MonitorData(model_name=registry_down.model_name, window=ml_monitor.window_ending(day, 3),
                                    generated_at=dt.datetime.now(dt.UTC), registry=registry_down, psi_warn=None,
                                    psi_alert=None, errors=errors)
    payloads = {str(i): SHAPES[i % len(SHAPES)].format(f" [{i}]") for i in range(n_data + 1, next(strings))}
    assert_inert(ml_monitor.render_html(broken), payloads)


def test_model_name_in_the_query_is_escaped(client, reliability):
    case = reliability.case("security", "ML monitor: a script payload as ?model= (reflected into the page)",
                            expected="200; the name is shown as text, the page has no element of it")
    fill_history(days=3, rows_per_day=5)
    payload = '"><svg onload=alert(document.domain)><img src=x onerror=alert(1)><script>alert(1)</script>'
    response = client.get("/", params={"model": payload})
    assert response.status_code == 200
    assert_inert(response.text, {"model": payload})
    assert "No registered model" in response.text or "No MLflow store yet" in response.text
    case.observed = f"{response.status_code}; shown as text in the title, the heading and the empty states"


# ------------------------------------------------------------------------------------------------
# headers


def test_page_forbids_inline_script_and_keeps_its_style(client, reliability):
    case = reliability.case("security", "ML monitor: the response headers of the page, the JSON and an error",
                            expected="a CSP without script or inline script (the page's own <style> by hash), "
                                     "frame-ancestors 'self', nosniff, on every response")
    import base64
    import hashlib
    import re

    fill_history(days=3, rows_per_day=5)
    response = client.get("/", params={"days": 3})
    assert response.status_code == 200
    csp = dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'none'" and csp["default-src"] == "'none'" and csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'self'" and "unsafe-inline" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # the one <style> of the page is the one the policy allows (its sha256), and nothing else styles inline
    (style,) = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert csp["style-src"] == f"'sha256-{digest}'"
    assert " style=" not in response.text and "<script" not in response.text
    for other in (client.get("/api/summary", params={"days": 3}), client.get("/", params={"days": "x"}),
                  client.get("/no-such-page")):
        assert other.headers["x-content-type-options"] == "nosniff", other.url
        assert other.headers["content-security-policy"].startswith("default-src 'none'"), other.url
    case.observed = f"page: {response.headers['content-security-policy']}"


# ------------------------------------------------------------------------------------------------
# the HTTP surface: parameters nobody meant


def _warehouse_rows() -> dict[str, int]:
    from sqlalchemy import func, select

    with warehouse.engine().connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (warehouse.drift_metrics, warehouse.data_quality, warehouse.alerts, warehouse.promotions,
                          warehouse.prediction_days)}


@pytest.mark.parametrize(("what", "query", "culprit"), [
    ("?end= that is not a date", {"end": "30/06/2026"}, "end"),
    ("?end= that is no calendar day (February 30)", {"end": "2026-02-30"}, "end"),
    ("?end= at the first day of the calendar (a window before year 1)", {"end": "0001-01-01"}, "end"),
    ("?days= beyond two years", {"days": "100000"}, "days"),
    ("?days= negative", {"days": "-5"}, "days"),
    ("?model= with a NUL byte", {"model": "fraud\x00detector"}, "model"),
    ("?model= of 5,000 characters", {"model": "m" * 5000}, "model"),
    ("?model= with a right-to-left override (U+202E: the page would show another name than it queried)",
     {"model": "fraud-detector\u202e"}, "model"),
    ("?model= with a zero-width space (U+200B: looks like the real model, is not)",
     {"model": "fraud\u200bdetector"}, "model"),
    ("?model= with a C1 control character (U+0085, next line)", {"model": "fraud\x85detector"}, "model"),
])
def test_bad_parameters_are_a_clear_422(client, reliability, what, query, culprit):
    case = reliability.case("bad input", f"ML monitor HTTP: {what}",
                            expected="422 naming the parameter, for the page and the JSON; nothing read or written")
    fill_history(days=3, rows_per_day=5)
    before = _warehouse_rows()
    for path in ("/", "/api/summary"):
        response = client.get(path, params=query)
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", culprit], error
    assert _warehouse_rows() == before
    case.observed = f"422: {error['loc'][-1]}: {error['msg']}"


def test_a_window_before_the_calendar_is_cut_not_an_overflow(data_root):
    """Below the plugin's bounds, the library itself never computes a day before year 1."""
    assert ml_monitor.window_ending(dt.date.min, 90) == ml_monitor.Window(dt.date.min, dt.date.min, 1)
    assert ml_monitor.gather(days=90, end=dt.date(1, 1, 5), registry_timeout_s=5).window.days == 5


@pytest.mark.parametrize(("what", "model", "note"), [
    ("an unknown registered model", "no-such-model", "No registered model 'no-such-model' yet"),
    ("a non-ASCII model name", "modèle-détection-😀", "No registered model 'modèle-détection-😀' yet"),
    ("a path traversal", "../../../../etc/passwd",
     "No registered model can be named '../../../../etc/passwd': Invalid model name"),
    ("a file URL", "file:///etc/passwd", "No registered model can be named 'file:///etc/passwd': Invalid model name"),
    ("a name MLflow refuses (would resolve to another file name)", ".. fraud detector ..",
     "No registered model can be named '.. fraud detector ..': Invalid value"),
])
def test_unknown_model_names_show_an_empty_page(client, reliability, what, model, note):
    case = reliability.case("bad input", f"ML monitor HTTP: ?model= {what}",
                            expected="200 page saying no such model is registered (naming MLflow's rule when the "
                                     "name breaks one); nothing read from the path, nothing written, the real model's "
                                     "rows not shown")
    from include.training import tracking

    tracking.ensure_experiment("fraud-training")  # the store exists; only MODEL's rows are in the warehouse
    fill_history(days=3, rows_per_day=5)
    before = _warehouse_rows()
    response = client.get("/", params={"model": model})
    assert response.status_code == 200, response.text[-500:]
    assert_inert(response.text, {"model": model})
    assert note in "".join(_Page(response.text).text)
    assert 'id="drift-empty"' in response.text and 'id="alerts-empty"' in response.text
    assert 'class="error"' not in response.text
    summary = client.get("/api/summary", params={"model": model}).json()
    assert summary["model"] == model and summary["drift"]["rows"] == [] and not summary["errors"]
    assert _warehouse_rows() == before
    case.observed = f"200: {note}…; empty drift, alerts, scoring"


@pytest.mark.parametrize(("what", "tags", "message"), [
    ("a metrics tag that is not JSON", {"metrics": "average_precision=0.64"},
     "tag metrics is not a JSON object: 'average_precision=0.64'"),
    ("a metrics tag that is a JSON list", {"metrics": "[0.64, 0.85]"}, "tag metrics is not a JSON object: '[0.64, 0.85]'"),
    ("a threshold tag that is not a number", {"threshold": "high", "metrics": "{}"},
     "tag threshold is not a finite number: 'high'"),
])
def test_unreadable_tags_are_named_on_the_page(client, reliability, what, tags, message):
    case = reliability.case("bad input", f"ML monitor HTTP: the champion has {what}",
                            expected="200 page; the champion card names the tag and its value; other sections intact")
    mlflow, mv = bare_version()
    for key, value in tags.items():
        mlflow.set_model_version_tag(MODEL, mv.version, key, value)
    mlflow.set_registered_model_alias(MODEL, "champion", mv.version)
    fill_history(days=3, rows_per_day=5)
    response = client.get("/", params={"days": 3})
    assert response.status_code == 200
    text = "".join(_Page(response.text).text)
    assert f"unreadable tag{message}" in text, text[:2000]
    assert 'id="champion"' in response.text and len(cells(response.text, "drift-heatmap")) == 3 * MONITORED
    case.observed = f"200: champion card says {message}"


def test_text_in_a_numeric_column_of_prediction_days_is_named(client, reliability):
    case = reliability.case("bad input", "ML monitor HTTP: text in prediction_days.mean_score (SQLite keeps it)",
                            expected="200 page; the scoring section names the day, version, column and value; "
                                     "the other sections intact")
    from sqlalchemy import text

    fill_history(days=3, rows_per_day=5)
    with warehouse.engine().begin() as conn:
        conn.execute(text("UPDATE prediction_days SET mean_score = 'n/a' WHERE ds = :d"), {"d": END.isoformat()})
    response = client.get("/", params={"days": 3})
    assert response.status_code == 200
    message = f"ValueError: prediction_days ds={END} version 1: mean_score 'n/a' is not a number"
    assert message in "".join(_Page(response.text).text)
    assert len(cells(response.text, "drift-heatmap")) == 3 * MONITORED and len(cells(response.text, "dq-grid")) == 3 * 4
    case.observed = f"200; scoring section: {message}"


# ------------------------------------------------------------------------------------------------
# what nobody scripted: JSON nested deeper than Python recurses, an unforeseen error, repeated params


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _plain_client(**kwargs):
    """The plugin app answering as the API server would: an unhandled error is a 500 response, not raised."""
    from batchml import ml_monitor_plugin
    from fastapi.testclient import TestClient

    return TestClient(ml_monitor_plugin.app, root_path="/ml-monitor", raise_server_exceptions=False, **kwargs)


@pytest.mark.parametrize(("what", "depth"), [
    ("nested 3,000 levels deep (deeper than the JSON parser recurses)", 3000),
    ("nested 600 levels deep (parsed, but deeper than Python recurses converting it)", 600),
])
def test_a_deeply_nested_metrics_tag_is_named_not_a_broken_registry(client, reliability, what, depth):
    case = reliability.case("bad input", f"ML monitor HTTP: the champion's metrics tag {what}",
                            expected="200 page and JSON; the champion card names the tag; the registry is not "
                                     "reported unreachable")
    mlflow, mv = bare_version()
    mlflow.set_model_version_tag(MODEL, mv.version, "metrics", '{"average_precision": ' + _nested(depth) + "}")
    mlflow.set_registered_model_alias(MODEL, "champion", mv.version)
    fill_history(days=3, rows_per_day=5)
    app = _plain_client()
    page, summary = app.get("/", params={"days": 3}), app.get("/api/summary", params={"days": 3})
    assert (page.status_code, summary.status_code) == (200, 200), (page.text[:300], summary.text[:300])
    text = "".join(_Page(page.text).text)
    assert "Registry unreachable" not in text and 'id="champion"' in page.text
    assert "unreadable tagtag metrics is " in text, text[:2000]
    assert summary.headers["content-type"] == "application/json"
    assert summary.json()["registry"]["versions"]["champion"]["metrics"] == {}
    case.observed = "200; " + text[text.index("unreadable tag") + 14:][:90]


@pytest.mark.parametrize("depth", [100_000, 600])
def test_a_deeply_nested_promotion_metrics_json_does_not_break_the_json(client, reliability, depth):
    case = reliability.case("bad input", f"ML monitor HTTP: promotions.metrics_json nested {depth:,} levels deep",
                            expected="200 JSON (metrics null, metrics_error naming the column) and page")
    fill_history(days=3, rows_per_day=5)
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.promotions.insert(), [
            {"model_name": MODEL, "as_of": END, "challenger_version": "9", "challenger_run_id": "f" * 32,
             "champion_version": "1", "decision": "reject", "promoted": False, "reason": "r", "primary_metric": "ap",
             "challenger_value": 0.5, "champion_value": 0.4, "metrics_json": _nested(depth), "dag_run_id": "manual",
             "decided_at": dt.datetime(2026, 7, 1, tzinfo=dt.UTC), "promoted_at": None}])
    app = _plain_client()
    summary, page = app.get("/api/summary", params={"days": 3}), app.get("/", params={"days": 3})
    assert (summary.status_code, page.status_code) == (200, 200), summary.text[:300]
    (bad,) = [p for p in summary.json()["promotions"]["newest"] if p["challenger_version"] == "9"]
    assert bad["metrics"] is None and bad["metrics_error"].startswith("metrics_json is ")
    case.observed = f"200; {bad['metrics_error']}"


def test_an_unforeseen_error_is_a_500_with_the_security_headers(client, reliability, monkeypatch):
    case = reliability.case("security", "ML monitor HTTP: an unforeseen error while gathering (a 500)",
                            expected="500 for the page and the JSON, with nosniff and the strict CSP like every "
                                     "other response; the error's text (a payload) not echoed")
    payload = "<script>alert(document.domain)</script>"

    def broken(**_kwargs):
        raise RuntimeError(payload)  # stands for any bug: the error path itself is under test

    monkeypatch.setattr(ml_monitor, "gather", broken)
    app = _plain_client()
    for path in ("/", "/api/summary"):
        response = app.get(path, params={"days": 3})
        assert response.status_code == 500, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["content-security-policy"].startswith("default-src 'none'"), path
        assert response.headers["content-type"].startswith("text/plain") and payload not in response.text
    case.observed = f"500 {response.headers['content-type']}; CSP {response.headers['content-security-policy']}"


def test_repeated_query_parameters_are_each_checked(client, reliability):
    case = reliability.case("bad input", "ML monitor HTTP: a parameter given twice (?days=3&days=100000, "
                                         "?model=ok&model=<payload>)",
                            expected="the value used (the last) is the value checked: 422 for the bad days; "
                                     "the payload model shown as text")
    fill_history(days=3, rows_per_day=5)
    bad = client.get("/api/summary?days=3&days=100000")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "days"]
    payload = '"><img src=x onerror=alert(1)>'
    page = client.get("/", params=[("model", "fraud-detector"), ("model", payload)])
    assert page.status_code == 200
    assert_inert(page.text, {"model": payload})
    case.observed = "422 naming days; the second model shown as text"


@pytest.mark.parametrize(("what", "uri"), [
    ("a password as a query parameter of a database store", "sqlite:///{root}/no-store.db?password={secret}"),
    ("a token as a query parameter of a tracking server", "http://127.0.0.1:{port}/?token={secret}"),
])
def test_a_credential_in_the_tracking_uri_query_is_never_shown(client, monkeypatch, reliability, what, uri):
    case = reliability.case("security", f"ML monitor HTTP: {what} in MLFLOW_TRACKING_URI",
                            expected="the page and the JSON show the URI with the value as ***, in the registry line "
                                     "and in any error")
    import secrets

    from tests.unit.test_ml_monitor import _closed_port

    secret = secrets.token_hex(8)  # made per run: the repository holds no credential, even a fake one
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(root=_lake(), port=_closed_port(), secret=secret))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    fill_history(days=3, rows_per_day=5)
    page, summary = client.get("/", params={"days": 3}), client.get("/api/summary", params={"days": 3})
    assert page.status_code == summary.status_code == 200
    assert secret not in page.text and secret not in summary.text
    shown = summary.json()["registry"]["tracking_uri"]
    assert shown.endswith("=***") and shown in "".join(_Page(page.text).text)
    case.observed = f"shown as {shown.split('?')[-1]}; " + (summary.json()["registry"]["error"] or "no error")[:80]


def _lake() -> str:
    from include.config import data_root

    return str(data_root())


def test_a_decision_cannot_borrow_the_pages_styles(client, reliability):
    case = reliability.case("security", "ML monitor HTTP: promotions.decision 'reject error card champion' (class "
                                        "names of the page's own stylesheet)",
                            expected="the row's class is 'other' (only promote, reject, rollback become a class); "
                                     "the decision shown as text")
    fill_history(days=3, rows_per_day=5)
    with warehouse.engine().begin() as conn:
        conn.execute(warehouse.promotions.insert(), [
            {"model_name": MODEL, "as_of": END, "challenger_version": "9", "challenger_run_id": "f" * 32,
             "champion_version": "1", "decision": "reject error card champion", "promoted": False, "reason": "r",
             "primary_metric": "ap", "challenger_value": 0.5, "champion_value": 0.4, "metrics_json": None,
             "dag_run_id": "manual", "decided_at": dt.datetime(2026, 7, 1, tzinfo=dt.UTC), "promoted_at": None}])
    page = client.get("/", params={"days": 3})
    parsed = _Page(page.text)
    classes = [dict(attrs).get("class") for tag, attrs in parsed.tags if tag == "tr" and dict(attrs).get("class")]
    assert "other" in classes and not any("error" in c or "card" in c for c in classes), classes
    assert "reject error card champion" in parsed.text
    case.observed = f"row classes {sorted(set(classes))}"

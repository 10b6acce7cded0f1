"""The ML monitor: one page that tells an operator how the model is doing.

What the "ML monitor" view of the Airflow UI shows (``plugins/batchml/ml_monitor_plugin.py`` serves it):

- the ``champion``, ``challenger`` and ``previous_champion`` versions of the registered model with
  their evaluation metrics and decision threshold (MLflow registry, version tags), and the gate's
  promotion history (warehouse ``promotions``);
- a drift heatmap: every monitored column by day, coloured by PSI (warehouse ``drift_metrics``);
- data quality by day: pass or fail of every Great Expectations checkpoint (warehouse ``data_quality``);
- rows scored by day and the daily score distribution in 10 bins of [0, 1] (warehouse
  ``prediction_days``: one row per day and model version, written with the day's predictions; the
  predictions themselves are never read);
- the alerts of the window (warehouse ``alerts``).

:func:`gather` reads everything for a window of days (90 by default, ending on the newest day the
warehouse has rows for), :func:`render_html` turns it into one self-contained page (inline CSS and
SVG, no script, nothing fetched from elsewhere; every value it shows is escaped, and :data:`CSP` is the
Content-Security-Policy it is served with) and :func:`as_json` into JSON. A part that cannot be
read (registry unreachable, warehouse down) shows its error in its own section; the page still renders.

Only the standard library is imported at module level: the plugin that imports this runs in the API
server. SQLAlchemy, PyYAML and MLflow are imported when data is gathered.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90
MAX_DAYS = 731
SCORE_BINS = 10  # the bins of warehouse.prediction_days (warehouse.SCORE_BINS)
REGISTRY_TIMEOUT_S = 10.0
DEFAULT_MODEL = "fraud-detector"
ALIASES = ("champion", "challenger", "previous_champion")
# Datasets validated by include.validation.datasets, in pipeline order (others are listed after them).
DATASETS = ("raw_transactions", "raw_labels", "features_baseline", "predictions")
METRICS = (  # (tag key in the version's ``metrics`` JSON, label, format)
    ("average_precision", "Average precision", "{:.4f}"),
    ("auc_roc", "AUC ROC", "{:.4f}"),
    ("card_precision", "Card precision@k", "{:.4f}"),
    ("brier_score", "Brier score", "{:.4f}"),
    ("precision_at_threshold", "Precision at threshold", "{:.3f}"),
    ("recall_at_threshold", "Recall at threshold", "{:.3f}"),
    ("expected_cost", "Expected cost", "{:,.0f}"),
    ("n_transactions", "Evaluation rows", "{:,.0f}"),
    ("n_frauds", "Evaluation frauds", "{:,.0f}"),
)
# newest rows kept in the data (JSON) / shown in the page's tables
MAX_PROMOTIONS, MAX_ALERTS, PAGE_ROWS, MAX_DQ_FAILURES, RECENT_SCORING_DAYS = 50, 100, 10, 20, 14
# JSON read from the registry or the warehouse (a metrics tag, promotions.metrics_json) nests two levels;
# deeper is refused: a few thousand brackets would exhaust Python's recursion converting it for the page
MAX_JSON_DEPTH = 8


# ----------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Window:
    """The days shown: ``days`` days ending on ``end`` (inclusive)."""

    start: dt.date
    end: dt.date
    days: int


@dataclass
class VersionInfo:
    """One aliased model version, from its registry tags (see include.registry.register)."""

    alias: str
    version: str
    model: str | None = None
    family: str | None = None
    as_of: str | None = None
    threshold: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    training_window: str | None = None
    evaluation_window: str | None = None
    gate_decision: str | None = None
    gate_reason: str | None = None
    rolled_back: str | None = None
    run_id: str | None = None
    created: str | None = None
    problems: list[str] = field(default_factory=list)  # tags the page could not read, named with their value


@dataclass
class RegistryState:
    """What the registry says about the model; ``error`` when it could not be read, ``note`` for an
    expected empty state (no store, model not registered yet)."""

    model_name: str
    tracking_uri: str
    versions: dict[str, VersionInfo] = field(default_factory=dict)  # alias -> version
    error: str | None = None
    note: str | None = None


@dataclass
class MonitorData:
    model_name: str
    window: Window
    generated_at: dt.datetime
    registry: RegistryState
    psi_warn: float = 0.1
    psi_alert: float = 0.2
    promotions: list[dict[str, Any]] = field(default_factory=list)  # newest first, at most MAX_PROMOTIONS
    promotions_total: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)  # rows of the window, this model only
    data_quality: list[dict[str, Any]] = field(default_factory=list)
    scoring: list[dict[str, Any]] = field(default_factory=list)  # per day and model version
    histogram: dict[dt.date, list[int]] = field(default_factory=dict)  # day -> count per score bin
    alerts: list[dict[str, Any]] = field(default_factory=list)  # newest first, at most MAX_ALERTS
    alerts_total: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # section -> what went wrong
    warehouse_note: str | None = None  # the expected empty state: no warehouse database yet
    timings_ms: dict[str, float] = field(default_factory=dict)

    def axis(self) -> list[dt.date]:
        """The days of the day-by-day charts: from the first day with any row in the window to its end,
        shared by the charts so that one column is one day everywhere."""
        seen = [r["ds"] for rows in (self.drift, self.data_quality, self.scoring) for r in rows]
        seen += list(self.histogram)
        if not seen:
            return []
        first = max(min(seen), self.window.start)
        return [first + dt.timedelta(days=i) for i in range((self.window.end - first).days + 1)]


def configured_model() -> str:
    """The registered model of the training configuration (``fraud-detector`` if it cannot be read)."""
    try:
        from include.training.config import load_training_config

        return load_training_config().registered_model
    except Exception:  # noqa: BLE001 - a broken config must not take the page down
        log.warning("training configuration unreadable; showing %s", DEFAULT_MODEL, exc_info=True)
        return DEFAULT_MODEL


def resolve_window(days: int = DEFAULT_DAYS, end: dt.date | None = None) -> Window:
    """``days`` days ending on ``end``; without ``end``, on the newest day the warehouse has rows for
    (today when it has none), so that a history replayed for past dates shows without parameters. A
    row dated after today (UTC; a run dated in the future) never moves the default view."""
    from include import warehouse

    if end is None:
        today = dt.datetime.now(dt.UTC).date()
        end = warehouse.latest_day(until=today) or today
    return window_ending(end, days)


def window_ending(end: dt.date, days: int) -> Window:
    """``days`` days (1 to MAX_DAYS) ending on ``end``; fewer when the calendar starts before them."""
    days = max(1, min(int(days), MAX_DAYS, (end - dt.date.min).days + 1))
    return Window(end - dt.timedelta(days=days - 1), end, days)


# query parameters of a URI that hold a credential (libpq and SQLAlchemy take ``?password=``; some
# clients a ``token`` or ``secret``)
_SECRET_PARAM = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)


def _secret_query(query: str) -> list[tuple[str, str]]:
    """(name, raw value) of the query parameters of ``query`` that hold a credential."""
    pairs = [item.partition("=") for item in query.split("&")]
    return [(k, v) for k, sep, v in pairs if sep and v and _SECRET_PARAM.search(unquote_plus(k))]


def redact(uri: str) -> str:
    """``uri`` without a password, in its user part or in a query parameter (tracking URIs may carry
    credentials: ``http://user:pw@host``, ``postgresql://host/db?password=pw``)."""
    try:
        parts = urlsplit(uri)
        port = parts.port if parts.password is not None else None
    except ValueError:
        return "<unparsable URI>"
    shown = uri  # edited in place: urlunsplit would turn sqlite://// into sqlite://
    if parts.password is not None:
        netloc = f"{parts.username}:***@{parts.hostname or ''}" + (f":{port}" if port else "")
        shown = shown.replace(parts.netloc, netloc, 1)
    for name, value in _secret_query(parts.query):
        shown = shown.replace(f"{name}={value}", f"{name}=***")
    return shown


def scrub(text: str, uri: str) -> str:
    """``text`` without the credentials of ``uri`` (client errors quote the URL they called), as written in
    the URI and decoded."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return text
    secrets = [parts.password or "", *(v for _, v in _secret_query(parts.query))]
    for secret in sorted({form for s in secrets if s for form in (s, unquote_plus(s))}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def read_registry(model_name: str, timeout_s: float = REGISTRY_TIMEOUT_S) -> RegistryState:
    """The aliased versions of ``model_name``; never raises.

    An SQLite store that does not exist yet is an empty state (it is not created by looking). The
    registry is read in a helper thread so that an unreachable ``mlflow server`` (whose client retries
    for minutes) costs at most ``timeout_s``."""
    from include.config import mlflow_tracking_uri

    uri = mlflow_tracking_uri()
    state = RegistryState(model_name, redact(uri))
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///").split("?")[0])
        if not store.exists():
            state.note = f"No MLflow store yet at {store}: the training DAG creates it with the first model."
            return state
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["state"] = _read_registry(model_name, state)
        except Exception as exc:  # noqa: BLE001 - shown in the page
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="ml-monitor-registry", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        state.error = f"the registry at {state.tracking_uri} did not answer within {timeout_s:g} s"
    elif "error" in outcome:
        exc = outcome["error"]
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        state.error = scrub(f"{type(exc).__name__}: {first}", uri)[:600]
    else:
        return outcome["state"]
    log.warning("ML monitor: registry of %s unreadable: %s", model_name, state.error)
    return state


def _read_registry(model_name: str, state: RegistryState) -> RegistryState:
    from mlflow.exceptions import MlflowException

    from include.training import tracking

    client = tracking.client()
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            state.note = f"No registered model {model_name!r} yet: the training DAG registers the first one."
            return state
        if getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE":  # MLflow's rules for names
            reason = (str(getattr(exc, "message", exc)).strip().splitlines() or [""])[0][:300]
            state.note = f"No registered model can be named {model_name!r}: {reason}"
            return state
        raise
    aliases = dict(model.aliases or {})
    for alias in ALIASES:
        if alias in aliases:
            state.versions[alias] = version_info(alias, client.get_model_version(model_name, str(aliases[alias])))
    return state


def version_info(alias: str, mv: Any) -> VersionInfo:
    """A registry ModelVersion as the page shows it (tag names of include.registry and the gate)."""
    tags = dict(mv.tags or {})
    problems = []
    metrics, why = read_json(tags.get("metrics") or "{}")
    if isinstance(metrics, dict):
        metrics = {str(k): _finite(v) for k, v in metrics.items()}
    else:
        problems.append(f"tag metrics is {why or 'not a JSON object'}: {_clip(tags.get('metrics'))}")
        metrics = {}
    threshold = _float(tags.get("threshold"))
    if threshold is None and tags.get("threshold") not in (None, ""):
        problems.append(f"tag threshold is not a finite number: {_clip(tags.get('threshold'))}")
    created = None
    if getattr(mv, "creation_timestamp", None):
        created = dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return VersionInfo(
        alias=alias, version=str(mv.version), model=tags.get("model"), family=tags.get("family"),
        as_of=tags.get("as_of"), threshold=threshold, metrics=metrics,
        training_window=tags.get("training_window"), evaluation_window=tags.get("evaluation_window"),
        gate_decision=tags.get("gate_decision"), gate_reason=tags.get("gate_reason"),
        rolled_back=tags.get("rolled_back"), run_id=mv.run_id, created=created, problems=problems)


def read_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, str | None]:
    """(value, None) for JSON text nested at most ``max_depth`` levels; else (None, what is wrong)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None, "not a JSON object"
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return None, f"JSON nested deeper than {max_depth} levels"
            stack.extend((x, depth + 1) for x in (item.values() if isinstance(item, dict) else item))
    return value, None


def _clip(value: Any, limit: int = 120) -> str:
    """``repr`` of a tag value, shortened for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _float(v: Any) -> float | None:
    try:
        return _finite(float(v))
    except (TypeError, ValueError):
        return None


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def psi_thresholds() -> tuple[float, float]:
    """(warn, alert) of the monitoring configuration; the defaults when it cannot be read."""
    try:
        from include.drift.config import load_monitoring_config

        cfg = load_monitoring_config()
        return cfg.psi_warn, cfg.psi_alert
    except Exception:  # noqa: BLE001
        log.warning("monitoring configuration unreadable; PSI colours use 0.1 / 0.2", exc_info=True)
        return 0.1, 0.2


def gather(days: int = DEFAULT_DAYS, end: dt.date | None = None, model_name: str | None = None,
           registry_timeout_s: float = REGISTRY_TIMEOUT_S) -> MonitorData:
    """Everything the page shows for the window; each part that fails is reported in ``errors``."""
    from include import warehouse
    from include.config import warehouse_url

    t0 = time.perf_counter()
    name = model_name or configured_model()
    url = warehouse_url()
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}

    def part(section: str, read: Callable[[], Any], empty: Any) -> Any:
        start = time.perf_counter()
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
            log.exception("ML monitor: %s unreadable", section)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            errors[section] = scrub(f"{type(exc).__name__}: {first}", url)[:600]
            return empty
        finally:
            timings[section] = round((time.perf_counter() - start) * 1000, 1)

    fallback = window_ending(end or dt.datetime.now(dt.UTC).date(), days)
    n = fallback.days
    note = missing_warehouse()
    window = fallback if note else part("window", lambda: resolve_window(n, end), fallback)
    registry = part("registry", lambda: read_registry(name, registry_timeout_s), RegistryState(name, "?"))
    warn, alert = psi_thresholds()
    data = MonitorData(model_name=name, window=window, generated_at=dt.datetime.now(dt.UTC), registry=registry,
                       psi_warn=warn, psi_alert=alert, errors=errors, warehouse_note=note, timings_ms=timings)
    if note is None:
        s, e = window.start, window.end
        history = part("promotions", lambda: warehouse.promotion_history(name), [])
        data.promotions, data.promotions_total = list(reversed(history))[:MAX_PROMOTIONS], len(history)
        data.drift = part("drift", lambda: warehouse.drift_between(s, e, name), [])
        data.data_quality = part("data_quality", lambda: warehouse.data_quality_between(s, e), [])
        scored = part("predictions", lambda: _scoring(warehouse.prediction_days_between(s, e, name)), [])
        data.scoring, data.histogram = [{k: v for k, v in r.items() if k != "bins"} for r in scored], _histogram(scored)
        alerts = part("alerts", lambda: warehouse.alerts_between(s, e, name), [])
        data.alerts, data.alerts_total = list(reversed(alerts))[:MAX_ALERTS], len(alerts)
    timings["total"] = round((time.perf_counter() - t0) * 1000, 1)
    return data


def missing_warehouse() -> str | None:
    """The empty state of an SQLite warehouse whose file does not exist yet (looking must not create it)."""
    from sqlalchemy.engine import make_url

    from include.config import warehouse_url

    url = make_url(warehouse_url())
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).exists():
            return f"No warehouse yet at {url.database}: the pipelines create it when they first write."
    return None


def _histogram(rows: list[dict[str, Any]]) -> dict[dt.date, list[int]]:
    """Per day, the predictions in each score bin (all versions of the day together)."""
    out: dict[dt.date, list[int]] = {}
    for r in rows:
        counts = out.setdefault(r["ds"], [0] * SCORE_BINS)
        for b, n in enumerate(r["bins"]):
            counts[b] += n
    return out


def _scoring(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per day and model version: rows, flagged rows, mean score and score bins, as numbers; a value that
    is not one (SQLite keeps text in any column) raises naming the row, the column and the value."""

    def number(r: dict[str, Any], key: str, value: Any, kind: type) -> Any:
        try:
            return None if value is None and kind is float else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"prediction_days ds={r['ds']} version {r['model_version']}: {key} {_clip(value)} is "
                             f"not a number") from None

    return [{"ds": r["ds"], "model_version": str(r["model_version"]), "rows": number(r, "rows", r["rows"], int),
             "flagged": number(r, "flagged", r["flagged"], int),
             "mean_score": number(r, "mean_score", r["mean_score"], float),
             "bins": [number(r, f"bin_{b}", n, int) for b, n in enumerate(r["bins"])]} for r in rows]


def daily_scoring(data: MonitorData) -> dict[dt.date, dict[str, Any]]:
    """Per day: rows, flagged rows, mean score and the versions that scored it."""
    days: dict[dt.date, dict[str, Any]] = {}
    for r in data.scoring:
        d = days.setdefault(r["ds"], {"rows": 0, "flagged": 0, "score_sum": 0.0, "versions": []})
        d["rows"] += int(r["rows"])
        d["flagged"] += int(r["flagged"] or 0)
        d["score_sum"] += float(r["mean_score"] or 0.0) * int(r["rows"])
        d["versions"].append(str(r["model_version"]))
    for d in days.values():
        d["mean_score"] = d.pop("score_sum") / d["rows"] if d["rows"] else None
    return days


# ----------------------------------------------------------------------------------------------
# JSON


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(_jsonable(k)): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def as_json(data: MonitorData) -> dict[str, Any]:
    """The page's data as JSON-safe values (ISO dates, NaN as null)."""
    promotions = []
    for p in data.promotions:
        p = dict(p)
        p["metrics"], why = read_json(p.pop("metrics_json") or "null")
        if why:
            p["metrics_error"] = f"metrics_json is {why}"
        promotions.append(p)
    return _jsonable({
        "model": data.model_name,
        "window": {"start": data.window.start, "end": data.window.end, "days": data.window.days},
        "generated_at": data.generated_at,
        "registry": {"tracking_uri": data.registry.tracking_uri, "error": data.registry.error,
                     "note": data.registry.note,
                     "versions": {a: vars(v) for a, v in data.registry.versions.items()}},
        "promotions": {"total": data.promotions_total, "newest": promotions},
        "drift": {"psi_warn": data.psi_warn, "psi_alert": data.psi_alert, "rows": [
            {k: r[k] for k in ("ds", "column_name", "model_version", "kind", "psi", "psi_level", "ks_statistic",
                               "ks_p_value", "drifted")} for r in data.drift]},
        "data_quality": [{k: r[k] for k in ("ds", "dataset", "suite", "success", "evaluated", "failed", "rows",
                                             "failures", "validated_at")} for r in data.data_quality],
        "scoring": [dict(r) for r in data.scoring],
        "score_histogram": {"bins": SCORE_BINS, "days": data.histogram},
        "alerts": {"total": data.alerts_total, "newest": data.alerts},
        "errors": data.errors,
        "warehouse_note": data.warehouse_note,
        "timings_ms": data.timings_ms,
    })


# ----------------------------------------------------------------------------------------------
# HTML

LABEL_W = 180  # width of the row labels of the day grids
CHART_W = 1100  # width the day columns share


def psi_colour(psi: float | None, warn: float = 0.1, alert: float = 0.2) -> str:
    """Green below ``warn`` (darker as it grows), amber up to ``alert``, red from ``alert`` (dark red from
    twice ``alert``); grey when there is no value."""
    if not isinstance(psi, int | float) or not math.isfinite(psi):  # None, NaN, or not a number at all
        return "#d0d0d0"
    if psi < warn:
        return _mix((0xe3, 0xf4, 0xe1), (0x5c, 0xb8, 0x5c), max(psi, 0.0) / warn)
    if psi < alert:
        return _mix((0xff, 0xd5, 0x4f), (0xfb, 0x8c, 0x00), (psi - warn) / (alert - warn))
    return _mix((0xe5, 0x39, 0x35), (0x8b, 0x00, 0x00), min((psi - alert) / alert, 1.0))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def _share_colour(share: float) -> str:
    """Blue intensity of a score bin's share of the day; log scale (most scores sit in the first bin)."""
    if share <= 0:
        return "#f4f6f8"
    return _mix((0xde, 0xeb, 0xf7), (0x08, 0x30, 0x6b), math.log10(1 + 999 * share) / 3)


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _num(v: Any, pattern: str = "{:.4f}") -> str:
    """``v`` formatted as text (not HTML): "–" for no value, the value itself when it is not a number."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    try:
        return pattern.format(v)
    except (TypeError, ValueError):
        return str(v)


def _fmt(v: Any, pattern: str = "{:.4f}") -> str:
    """``v`` formatted for HTML: :func:`_num`, escaped (a registry tag or a warehouse row may hold anything)."""
    return _e(_num(v, pattern))


def _swatch(colour: str) -> str:
    """A legend's colour square, drawn as SVG (``fill``) rather than with a ``style`` attribute: the page's
    Content-Security-Policy allows no inline style but its own stylesheet."""
    return (f'<svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" '
            f'fill="{_e(colour)}"/></svg>')


def _geometry(n_days: int) -> tuple[int, int]:
    """(cell width, label step in days) for ``n_days`` columns."""
    cell = max(3, min(16, CHART_W // max(n_days, 1)))
    return cell, max(1, math.ceil(46 / cell))


def _day_labels(days: list[dt.date], cell: int, step: int, y: int = 12) -> str:
    """Every ``step``-th day as MM-DD, the first one and each new year's with the year; a label that
    would overlap the previous one is left out."""
    out, free_x = [], 0
    for i, d in enumerate(days):
        x = LABEL_W + i * cell
        if i % step or x < free_x:
            continue
        text = d.isoformat() if i == 0 or (d.month == 1 and d.day <= step) else d.strftime("%m-%d")
        out.append(f'<text x="{x}" y="{y}" class="axis">{text}</text>')
        free_x = x + 6.2 * len(text) + 8
    return "".join(out)


def _grid_svg(kind: str, days: list[dt.date], rows: list[tuple[str, str]], height: int,
              cell_of: Callable[[str, dt.date], tuple[str, str, dict[str, Any]] | None],
              right: dict[str, str] | None = None) -> str:
    """A day-by-row grid: ``rows`` are (key, label); ``cell_of(key, day)`` gives (colour, tooltip,
    data attributes) or None (no data: a light grey cell); ``right`` an optional text after each row."""
    cell, step = _geometry(len(days))
    top = 18
    width, total_h = LABEL_W + cell * len(days) + 50, top + height * len(rows) + 4
    parts = [f'<svg class="grid {kind}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
             f'role="img" aria-label="{_e(kind)} by day">', _day_labels(days, cell, step)]
    for r, (key, label) in enumerate(rows):
        y = top + r * height
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + height - 4}" class="label" text-anchor="end">{_e(label)}</text>')
        if right and key in right:
            parts.append(f'<text x="{LABEL_W + cell * len(days) + 6}" y="{y + height - 4}" class="axis">'
                         f'{_e(right[key])}</text>')
        for i, day in enumerate(days):
            found = cell_of(key, day)
            x = LABEL_W + i * cell
            if found is None:
                parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{height - 1}" fill="#f1f1f1">'
                             f'<title>{_e(label)} {day}: no data</title></rect>')
                continue
            colour, title, attrs = found
            data = "".join(f' data-{k}="{_e(v)}"' for k, v in attrs.items())
            parts.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell - 1}" height="{height - 1}" '
                         f'fill="{colour}"{data}><title>{_e(title)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _drift_section(data: MonitorData, days: list[dt.date]) -> str:
    if "drift" in data.errors:
        return _error_box("drift", data.errors["drift"])
    if not data.drift:
        return (f'<p class="empty" id="drift-empty">No drift rows for {_e(data.model_name)} between '
                f'{data.window.start} and {data.window.end}. The monitoring DAG writes one row per monitored '
                'column and scored day.</p>')
    by_key = {(r["column_name"], r["ds"]): r for r in data.drift}
    columns = sorted({r["column_name"] for r in data.drift}, key=lambda c: (c == "score", c))
    latest = {}
    for r in data.drift:  # rows come ordered by day: the last one of a column is its newest
        latest[r["column_name"]] = r

    def cell(column: str, day: dt.date):
        r = by_key.get((column, day))
        if r is None:
            return None
        psi = r["psi"]
        ks_text = "" if r["ks_statistic"] is None else f", KS D {_num(r['ks_statistic'], '{:.3f}')} p {_num(r['ks_p_value'], '{:.2g}')}"
        title = (f"{column} {day}: PSI {_num(psi)} ({r['psi_level']}){ks_text}"
                 f"{', drifted' if r['drifted'] else ''} (version {r['model_version']})")
        return (psi_colour(psi, data.psi_warn, data.psi_alert), title,
                {"column": column, "ds": day.isoformat(), "psi": _num(psi), "drifted": str(bool(r["drifted"])).lower()})

    labels = [(c, c) for c in columns]
    newest = {c: _num(latest[c]["psi"], "{:.3f}") for c in columns}
    legend = "".join(
        f'{_swatch(psi_colour(v, data.psi_warn, data.psi_alert))}{_e(t)} '
        for v, t in ((0.0, "0"), (data.psi_warn * 0.99, f"< {data.psi_warn:g}"),
                     (data.psi_warn, f"{data.psi_warn:g}–{data.psi_alert:g} warn"),
                     (data.psi_alert, f">= {data.psi_alert:g} alert"), (data.psi_alert * 2, f">= {2 * data.psi_alert:g}"),
                     (None, "no PSI")))
    drifted_days = len({r["ds"] for r in data.drift if r["drifted"]})
    return (f'<p class="legend">PSI against the reference of the version that scored the day (right: the newest '
            f'value). {legend}{_swatch("#f1f1f1")}not monitored</p>'
            f'<p>{len(columns)} columns, {len({r["ds"] for r in data.drift})} monitored days, '
            f'{drifted_days} with a drifted column.</p>'
            f'<div class="scroll">{_grid_svg("drift-heatmap", days, labels, 15, cell, newest)}</div>')


def _quality_section(data: MonitorData, days: list[dt.date]) -> str:
    if "data_quality" in data.errors:
        return _error_box("data quality", data.errors["data_quality"])
    if not data.data_quality:
        return (f'<p class="empty" id="dq-empty">No validation results between {data.window.start} and '
                f'{data.window.end}. Every Great Expectations checkpoint (ingest, features, scoring) records '
                'its verdict here.</p>')
    by_key = {(r["dataset"], r["ds"]): r for r in data.data_quality}
    seen = {r["dataset"] for r in data.data_quality}
    datasets = [d for d in DATASETS if d in seen] + sorted(seen - set(DATASETS))

    def cell(dataset: str, day: dt.date):
        r = by_key.get((dataset, day))
        if r is None:
            return None
        verdict = "passed" if r["success"] else "FAILED"
        title = f"{dataset} {day}: {verdict}, {r['failed']} of {r['evaluated']} expectations failed, {r['rows']} rows"
        if r["failures"]:
            title += "\n" + r["failures"][:600]
        return ("#43a047" if r["success"] else "#e53935", title,
                {"dataset": dataset, "ds": day.isoformat(), "success": str(bool(r["success"])).lower()})

    failed = [r for r in reversed(data.data_quality) if not r["success"]]
    n_pass = sum(1 for r in data.data_quality if r["success"])
    table = ""
    if failed:
        rows = "".join(
            f'<tr class="fail"><td>{_e(r["ds"])}</td><td>{_e(r["dataset"])}</td><td>{_e(r["failed"])} of {_e(r["evaluated"])}</td>'
            f'<td><pre>{_e(r["failures"])}</pre></td></tr>' for r in failed[:MAX_DQ_FAILURES])
        table = ('<h3>Failed validations, newest first</h3><table class="dq-failures"><tr><th>day</th><th>dataset</th>'
                 f'<th>failed</th><th>expectations</th></tr>{rows}</table>')
    return (f'<p class="legend">{_swatch("#43a047")}passed {_swatch("#e53935")}failed '
            f'{_swatch("#f1f1f1")}not validated</p>'
            f'<p>{n_pass} passed, {len(failed)} failed validations.</p>'
            f'<div class="scroll">{_grid_svg("dq-grid", days, [(d, d) for d in datasets], 18, cell)}</div>{table}')


def _scoring_section(data: MonitorData, days: list[dt.date]) -> str:
    parts = []
    if "predictions" in data.errors:
        parts.append(_error_box("predictions", data.errors["predictions"]))
    per_day = daily_scoring(data)
    if not per_day and not data.histogram:
        return "".join(parts) + (f'<p class="empty" id="scoring-empty">No predictions between {data.window.start} and '
                                 f'{data.window.end}. The scoring DAG writes them.</p>')
    cell, step = _geometry(len(days))
    peak = max((d["rows"] for d in per_day.values()), default=0) or 1
    bar_h = 60
    bars = [f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + cell * len(days) + 70}" '
            f'height="{bar_h + 22}" role="img" aria-label="rows scored by day">', _day_labels(days, cell, step),
            f'<text x="{LABEL_W - 6}" y="{18 + bar_h // 2}" class="label" text-anchor="end">rows scored (max {peak:,})</text>']
    for i, day in enumerate(days):
        d = per_day.get(day)
        if not d:
            continue
        h = max(1, round(bar_h * d["rows"] / peak))
        fh = min(h, max(1 if d["flagged"] else 0, round(bar_h * d["flagged"] / peak)))
        x = LABEL_W + i * cell
        title = (f"{day}: {d['rows']:,} rows, {d['flagged']:,} flagged, mean score {_num(d['mean_score'])}, "
                 f"version {', '.join(d['versions'])}")
        bars.append(f'<rect class="bar" x="{x}" y="{18 + bar_h - h}" width="{cell - 1}" height="{h}" fill="#90a4ae" '
                    f'data-ds="{day}" data-rows="{d["rows"]}"><title>{_e(title)}</title></rect>')
        if fh:
            bars.append(f'<rect x="{x}" y="{18 + bar_h - fh}" width="{cell - 1}" height="{fh}" fill="#e53935">'
                        f'<title>{_e(title)}</title></rect>')
    bars.append("</svg>")
    parts.append(f'<p class="legend">{_swatch("#90a4ae")}rows scored {_swatch("#e53935")}flagged (score &gt;= the '
                 'version\'s threshold)</p>')
    parts.append(f'<div class="scroll">{"".join(bars)}</div>')
    if data.histogram:
        labels = [(str(b), f"score {b / SCORE_BINS:.1f}–{(b + 1) / SCORE_BINS:.1f}") for b in reversed(range(SCORE_BINS))]

        def hist_cell(b: str, day: dt.date):
            counts = data.histogram.get(day)
            if not counts:
                return None
            total = sum(counts) or 1
            n = counts[int(b)]
            return (_share_colour(n / total), f"{day}, score {int(b) / SCORE_BINS:.1f}–{(int(b) + 1) / SCORE_BINS:.1f}: "
                    f"{n:,} of {total:,} rows ({100 * n / total:.2f} %)", {"ds": day.isoformat(), "bin": b, "n": n})

        parts.append('<h3>Score distribution by day</h3><p class="legend">Share of the day\'s predictions in each '
                     f'tenth of [0, 1], log colour scale: {_swatch(_share_colour(0.001))}0.1 % '
                     f'{_swatch(_share_colour(0.01))}1 % {_swatch(_share_colour(0.1))}10 % '
                     f'{_swatch(_share_colour(1.0))}100 %</p>')
        parts.append(f'<div class="scroll">{_grid_svg("score-histogram", days, labels, 11, hist_cell)}</div>')
    recent = sorted(per_day.items(), reverse=True)[:RECENT_SCORING_DAYS]
    rows = "".join(
        f'<tr><td>{_e(day)}</td><td>{_e(", ".join(d["versions"]))}</td><td class="num">{d["rows"]:,}</td>'
        f'<td class="num">{d["flagged"]:,}</td><td class="num">{_fmt(d["flagged"] / d["rows"] if d["rows"] else None, "{:.2%}")}</td>'
        f'<td class="num">{_fmt(d["mean_score"])}</td></tr>' for day, d in recent)
    parts.append(f'<h3>Newest {len(recent)} scored days</h3><table class="scoring"><tr><th>day</th><th>version</th>'
                 f'<th>rows</th><th>flagged</th><th>flag rate</th><th>mean score</th></tr>{rows}</table>')
    return "".join(parts)


def _error_box(what: str, message: str) -> str:
    return f'<div class="error" data-section="{_e(what)}"><b>Could not read {_e(what)}:</b> {_e(message)}</div>'


def _version_card(v: VersionInfo, main: bool, since: str | None = None) -> str:
    metrics = "".join(
        f'<tr><th>{_e(label)}</th><td class="num">{_fmt(v.metrics.get(key), pattern)}</td></tr>'
        for key, label, pattern in METRICS if key in v.metrics)
    facts = [("model", f"{v.model or '?'} ({v.family or '?'})"), ("champion since", since), ("trained as of", v.as_of),
             ("decision threshold", _num(v.threshold)), ("training window", v.training_window),
             ("evaluation window", v.evaluation_window), ("registered", v.created),
             ("gate", f"{v.gate_decision}: {v.gate_reason}" if v.gate_decision else None),
             ("rolled back", v.rolled_back), ("run", v.run_id), *(("unreadable tag", p) for p in v.problems)]
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(val)}</td></tr>" for k, val in facts if val)
    title = v.alias.replace("_", " ")
    return (f'<div class="card {"champion" if main else "other"}" id="{_e(v.alias)}" data-version="{_e(v.version)}">'
            f'<div class="alias">{_e(title)}</div><div class="version">version {_e(v.version)}</div>'
            f'<table class="facts">{facts_html}</table>'
            f'<table class="metrics">{metrics or "<tr><td>no metrics tag</td></tr>"}</table></div>')


def _models_section(data: MonitorData) -> str:
    reg = data.registry
    parts = [f'<p class="muted">Registered model <b>{_e(reg.model_name)}</b> in {_e(reg.tracking_uri)}</p>']
    if "registry" in data.errors:
        parts.append(_error_box("the registry", data.errors["registry"]))
    if reg.error:
        parts.append(f'<div class="error" id="registry-error"><b>Registry unreachable:</b> {_e(reg.error)}. '
                     'The warehouse sections below do not depend on it.</div>')
    elif reg.note:
        parts.append(f'<p class="empty" id="no-champion">{_e(reg.note)}</p>')
    elif "champion" not in reg.versions:
        parts.append('<p class="empty" id="no-champion">No champion yet: the registered model has no '
                     '<code>champion</code> alias. The training DAG sets it when a challenger passes the gate.</p>')
    cards = []
    champion = reg.versions.get("champion")
    for alias in ALIASES:
        v = reg.versions.get(alias)
        if v is None:
            continue
        if alias != "champion" and champion is not None and v.version == champion.version:
            cards.append(f'<div class="card other same" id="{alias}" data-version="{_e(v.version)}"><div class="alias">'
                         f'{alias.replace("_", " ")}</div><div class="version">version {_e(v.version)}</div>'
                         '<p>the champion itself</p></div>')
            continue
        cards.append(_version_card(v, alias == "champion", _since(data, v) if alias == "champion" else None))
    if cards:
        parts.append(f'<div class="cards">{"".join(cards)}</div>')
    return "".join(parts)


def _since(data: MonitorData, v: VersionInfo) -> str | None:
    """When ``v`` last became champion, from the promotion history (promotion or rollback)."""
    for p in data.promotions:  # newest first
        if p["promoted"] and str(p["challenger_version"]) == v.version:
            return f"{_day(p['promoted_at'] or p['decided_at'])} ({p['decision']} as of {p['as_of']})"
    return None


def _promotions_section(data: MonitorData) -> str:
    parts = []
    if "promotions" in data.errors:
        parts.append(_error_box("promotions", data.errors["promotions"]))
    elif not data.promotions:
        parts.append('<p class="empty" id="promotions-empty">No gate decisions recorded yet. Every training run '
                     'records one in the warehouse <code>promotions</code> table.</p>')
    else:
        rows = "".join(
            f'<tr class="{_decision_class(p["decision"])}"><td>{_e(_day(p["decided_at"]))}</td><td>{_e(p["as_of"])}</td>'
            f'<td><b>{_e(p["decision"])}</b>{" (done)" if p["promoted"] and p["decision"] == "promote" else ""}</td>'
            f'<td>{_e(p["challenger_version"])}</td><td>{_e(p["champion_version"] or "–")}</td>'
            f'<td>{_e(p["primary_metric"])}</td><td class="num">{_fmt(p["challenger_value"])}</td>'
            f'<td class="num">{_fmt(p["champion_value"])}</td><td>{_e(p["reason"])}</td></tr>'
            for p in data.promotions[:PAGE_ROWS])
        more = (f'<p class="muted">Newest {PAGE_ROWS} of {data.promotions_total} decisions (the JSON has '
                f'{len(data.promotions)}).</p>' if data.promotions_total > PAGE_ROWS else "")
        parts.append('<table class="promotions"><tr><th>decided</th><th>as of</th><th>decision</th><th>challenger</th>'
                     '<th>champion then</th><th>metric</th><th>challenger</th><th>champion</th><th>reason</th></tr>'
                     f'{rows}</table>{more}')
    return "".join(parts)


DECISIONS = ("promote", "reject", "rollback")  # include.warehouse promotions.decision


def _decision_class(decision: Any) -> str:
    """The row's class: the decision when it is one the gate writes, else "other" (a value from the
    warehouse in a class attribute could borrow the page's own styles: ``error``, ``card champion``)."""
    return decision if decision in DECISIONS else "other"


def _day(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if isinstance(v, dt.datetime) else str(v)


def _alerts_section(data: MonitorData) -> str:
    if "alerts" in data.errors:
        return _error_box("alerts", data.errors["alerts"])
    if not data.alerts:
        return (f'<p class="empty" id="alerts-empty">No alerts between {data.window.start} and {data.window.end}.</p>')
    rows = "".join(
        f'<tr><td>{_e(a["ds"])}</td><td>{_e(a["kind"])}</td><td>{_e(a["model_version"])}</td>'
        f'<td>{"yes" if a["triggered_training"] else "no"}</td><td>{_e(a["message"])}</td></tr>'
        for a in data.alerts[:PAGE_ROWS])
    more = (f'<p class="muted">Newest {PAGE_ROWS} of {data.alerts_total} alerts in the window (the JSON has '
            f'{len(data.alerts)}).</p>' if data.alerts_total > PAGE_ROWS else "")
    return ('<table class="alerts"><tr><th>day</th><th>kind</th><th>version</th><th>triggered training</th>'
            f'<th>message</th></tr>{rows}</table>{more}')


CSS = """
:root { color-scheme: light; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 16px 20px; color: #1d2630;
       background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 26px 0 8px; border-bottom: 1px solid #e0e4e8;
     padding-bottom: 4px; } h3 { font-size: 14px; margin: 16px 0 6px; }
.muted, .legend { color: #5f6b76; font-size: 12.5px; } .empty { color: #5f6b76; font-style: italic; }
.nav a { margin-right: 10px; } .nav .current { font-weight: 600; }
.error { background: #fdecea; border: 1px solid #f5c2c0; color: #8a1c15; padding: 8px 12px; border-radius: 6px;
         margin: 8px 0; }
.cards { display: flex; gap: 14px; flex-wrap: wrap; align-items: flex-start; }
.card { border: 1px solid #d6dde3; border-radius: 8px; padding: 10px 14px; background: #fafbfc; }
.card.champion { border: 2px solid #2e7d32; background: #f1f8f1; min-width: 420px; }
.card .alias { text-transform: uppercase; letter-spacing: .06em; font-size: 11.5px; color: #5f6b76; }
.card .version { font-size: 20px; font-weight: 700; margin-bottom: 6px; }
.card.champion .version { font-size: 30px; color: #1b5e20; }
.card table { border-collapse: collapse; margin-top: 4px; } .card th { text-align: left; font-weight: 500;
  color: #5f6b76; padding: 1px 12px 1px 0; } .card td { padding: 1px 0; }
.card.champion .metrics td { font-size: 15px; font-weight: 600; }
table.promotions, table.alerts, table.scoring, table.dq-failures { border-collapse: collapse; font-size: 13px; }
table.promotions th, table.alerts th, table.scoring th, table.dq-failures th { text-align: left;
  background: #f1f3f5; padding: 4px 8px; }
table.promotions td, table.alerts td, table.scoring td, table.dq-failures td { border-top: 1px solid #e6e9ec;
  padding: 3px 8px; vertical-align: top; }
tr.reject td { color: #6d4c41; } tr.rollback td { color: #8a1c15; } tr.fail td { background: #fff6f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { margin: 0; white-space: pre-wrap; font-size: 12px; }
.scroll { overflow-x: auto; }
svg text.axis { font-size: 10px; fill: #5f6b76; } svg text.label { font-size: 11.5px; fill: #1d2630; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -2px; margin: 0 3px 0 8px;
          border: 1px solid rgba(0,0,0,.12); }
footer { margin-top: 28px; color: #8a949d; font-size: 12px; }
"""
# The page's Content-Security-Policy: no script at all, no style but the page's own <style> element
# (allowed by its hash, so that the page stays one self-contained file), nothing fetched from elsewhere,
# framed only by its own origin (the Airflow UI). An escaping slip would still not run a script.
CSP = "; ".join([
    "default-src 'none'", "script-src 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'",
    "img-src 'self' data:", "frame-ancestors 'self'",
])


def render_html(data: MonitorData, base: str = "") -> str:
    """The whole page; ``base`` is the URL prefix of the view's links (the plugin's mount point)."""
    days = data.axis()
    w = data.window
    links = []
    for n in (30, 90, 180, 365):
        cls = ' class="current"' if n == w.days else ""
        links.append(f'<a{cls} href="{_e(base)}/?days={n}&amp;end={w.end}">{n} days</a>')
    window_errors = _error_box("the window", data.errors["window"]) if "window" in data.errors else ""
    if data.warehouse_note:
        window_errors += f'<p class="empty" id="no-warehouse">{_e(data.warehouse_note)}</p>'
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in data.timings_ms.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ML monitor: {_e(data.model_name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>ML monitor: {_e(data.model_name)}</h1>
<p class="nav muted">Days {w.start} to {w.end} ({w.days} days; the newest day with data unless <code>end</code> is
given) · {" ".join(links)} · <a href="{_e(base)}/api/summary?days={w.days}&amp;end={w.end}">JSON</a></p>
{window_errors}
<section id="models"><h2>Champion and challenger</h2>{_models_section(data)}</section>
<section id="alerts"><h2>Alerts</h2>{_alerts_section(data)}</section>
<section id="drift"><h2>Drift by day (PSI)</h2>{_drift_section(data, days)}</section>
<section id="data-quality"><h2>Data quality by day</h2>{_quality_section(data, days)}</section>
<section id="scoring"><h2>Scoring by day</h2>{_scoring_section(data, days)}</section>
<section id="promotions"><h2>Promotion history</h2>{_promotions_section(data)}</section>
<footer>Generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC in {timings}.</footer>
</body></html>
"""

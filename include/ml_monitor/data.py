"""The ML monitor's data: what the page shows, read for a window of days, and its JSON.

- :func:`read_registry`: the ``champion``, ``challenger`` and ``previous_champion`` versions of the
  registered model with their evaluation metrics and decision threshold (MLflow registry, version tags),
  read in a helper thread so that an unreachable registry costs at most a timeout;
- :func:`gather`: everything for a window of days (90 by default, ending on the newest day the warehouse
  has rows for): the registry, the gate's promotion history (warehouse ``promotions``), drift by day and
  column (``drift_metrics``), data quality by day (``data_quality``), rows scored and the daily score
  distribution in 10 bins of [0, 1] (``prediction_days``: the predictions themselves are never read), the
  alerts of the window (``alerts``), the model's live performance by scored day (``performance_days``:
  realised on the arrived labels, estimated from the scores before they arrive, and the estimate's
  error) and the PSI thresholds of the monitoring configuration
  (the pipeline's monitoring.yaml through include.drift.config, their only source). A part that cannot be
  read (registry unreachable, warehouse down, configuration invalid) is reported in ``errors`` under its
  section; the other parts are still read;
- :func:`as_json`: the same data as JSON-safe values.

Only the standard library is imported at module level: the plugin that imports this runs in the API
server. SQLAlchemy, PyYAML, pydantic and MLflow are imported when data is gathered.
"""

from __future__ import annotations

import datetime as dt
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
# the shadow: scored every night beside the champion (dags/shadow_scoring.py), never the decision
ALIASES = ("champion", "challenger", "previous_champion", "shadow")
# newest rows kept in the data (and the JSON)
MAX_PROMOTIONS, MAX_ALERTS = 50, 100
# JSON read from the registry or the warehouse (a metrics tag, promotions.metrics_json) nests two levels;
# deeper is refused: a few thousand brackets would exhaust Python's recursion converting it for the page
MAX_JSON_DEPTH = 8



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
    # the PSI levels of the monitoring configuration (the pipeline's monitoring.yaml), which colour the drift
    # heatmap; None when it could not be read (``errors["thresholds"]`` says why): there is no other source
    psi_warn: float | None
    psi_alert: float | None
    promotions: list[dict[str, Any]] = field(default_factory=list)  # newest first, at most MAX_PROMOTIONS
    promotions_total: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)  # rows of the window, this model only
    data_quality: list[dict[str, Any]] = field(default_factory=list)
    scoring: list[dict[str, Any]] = field(default_factory=list)  # per day and model version
    histogram: dict[dt.date, list[int]] = field(default_factory=dict)  # day -> count per score bin
    alerts: list[dict[str, Any]] = field(default_factory=list)  # newest first, at most MAX_ALERTS
    alerts_total: int = 0
    # performance_days rows of the window (by scored day, every role), reference_json read as ``reference``
    performance: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # section -> what went wrong
    warehouse_note: str | None = None  # the expected empty state: no warehouse database yet
    timings_ms: dict[str, float] = field(default_factory=dict)

    def axis(self) -> list[dt.date]:
        """The days of the day-by-day charts: from the first day with any row in the window to its end,
        shared by the charts so that one column is one day everywhere."""
        seen = [r["ds"] for rows in (self.drift, self.data_quality, self.scoring) for r in rows]
        seen += [r["scored_day"] for r in self.performance]
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
    """(warn, alert) PSI levels of the monitoring configuration (include.drift.config: the file named by
    BATCHML_MONITORING_CONFIG, else the pipeline's monitoring.yaml); raises ConfigError naming the file,
    the key and the rule when it cannot be read or is invalid."""
    from include.drift.config import load_monitoring_config

    cfg = load_monitoring_config()
    return cfg.psi_warn, cfg.psi_alert


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

    def part(section: str, read: Callable[[], Any], empty: Any, all_lines: bool = False) -> Any:
        start = time.perf_counter()
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
            log.exception("ML monitor: %s unreadable", section)
            lines = str(exc).strip().splitlines() or [""]
            message = "; ".join(lines) if all_lines else lines[0]  # all_lines: a ConfigError's broken rules
            errors[section] = scrub(f"{type(exc).__name__}: {message}", url)[:600]
            return empty
        finally:
            timings[section] = round((time.perf_counter() - start) * 1000, 1)

    fallback = window_ending(end or dt.datetime.now(dt.UTC).date(), days)
    n = fallback.days
    note = missing_warehouse()
    window = fallback if note else part("window", lambda: resolve_window(n, end), fallback)
    registry = part("registry", lambda: read_registry(name, registry_timeout_s), RegistryState(name, "?"))
    warn, alert = part("thresholds", psi_thresholds, (None, None), all_lines=True)
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
        data.performance = part("performance", lambda: _performance(warehouse.performance_between(s, e, name)), [])
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


def _performance(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their ``reference_json`` (the version's offline figures) read as ``reference``: a
    dict of finite numbers, or empty with ``reference_error`` when it is not one."""
    out = []
    for r in rows:
        r = dict(r)
        reference, why = read_json(r.pop("reference_json") or "{}")
        r["reference"] = {str(k): v for k, v in reference.items() if isinstance(v, int | float) and not
                          isinstance(v, bool) and math.isfinite(v)} if isinstance(reference, dict) else {}
        if why or not isinstance(reference, dict):
            r["reference_error"] = f"reference_json is {why or 'not a JSON object'}"
        out.append(r)
    return out


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
        "performance": data.performance,
        "errors": data.errors,
        "warehouse_note": data.warehouse_note,
        "timings_ms": data.timings_ms,
    })

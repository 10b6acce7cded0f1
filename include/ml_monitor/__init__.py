"""The ML monitor: one page that tells an operator how the model is doing.

What the "ML monitor" view of the Airflow UI shows (``plugins/batchml/ml_monitor_plugin.py`` serves it):
the aliased versions of the registered model with their metrics, the gate's promotion history, a drift
heatmap coloured by PSI, data quality, rows scored and the daily score distribution, the model's live
performance (realised on the arrived labels, estimated before they arrive), and the alerts of a window
of days. Three parts:

- :mod:`include.ml_monitor.data`: reading it (MLflow registry with a timeout, warehouse, the monitoring
  configuration's PSI levels) into :class:`MonitorData`, and :func:`as_json`;
- :mod:`include.ml_monitor.render`: the page from the data, no I/O (:func:`render_html`, :data:`CSP`);
- ``static/monitor.css``: the page's stylesheet, inlined in the page (read once, at import).

Only the standard library is imported at module level: the plugin that imports this runs in the API
server. SQLAlchemy, PyYAML, pydantic and MLflow are imported when data is gathered.
"""

from include.ml_monitor.data import (
    ALIASES,
    DEFAULT_DAYS,
    MAX_DAYS,
    REGISTRY_TIMEOUT_S,
    SCORE_BINS,
    MonitorData,
    RegistryState,
    VersionInfo,
    Window,
    as_json,
    daily_scoring,
    gather,
    psi_thresholds,
    read_json,
    read_registry,
    redact,
    resolve_window,
    scrub,
    version_info,
    window_ending,
)
from include.ml_monitor.render import CSP, CSS, psi_colour, render_html

__all__ = [
    "ALIASES", "CSP", "CSS", "DEFAULT_DAYS", "MAX_DAYS", "REGISTRY_TIMEOUT_S", "SCORE_BINS", "MonitorData",
    "RegistryState", "VersionInfo", "Window", "as_json", "daily_scoring", "gather", "psi_colour", "psi_thresholds",
    "read_json", "read_registry", "redact", "render_html", "resolve_window", "scrub", "version_info",
    "window_ending",
]

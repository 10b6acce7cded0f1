"""Operator extra links: buttons on a task instance in the Airflow UI that open what the task made.

| link | set on | opens |
|---|---|---|
| ``MLflow`` | ModelPromotionOperator, BatchScoringOperator | the model version page in the MLflow UI (the run page when there is no version) |
| ``Data Docs`` | GXCheckpointOperator | the Great Expectations Data Docs page of the validation (of the first failed partition when one failed; the site index when several passed) |
| ``Drift report`` | DriftCheckOperator | ``reports/drift/ds=<day>/report.html`` of the day that alerted (else the last day) |

How they work in Airflow 3: the operator stores what its link needs as a small XCom while it
executes (key :attr:`data_key`, pushed on failure too, so a failed validation links to its own
page). When the task finishes, the task runner calls :meth:`get_link` in the worker, which reads
that XCom back with ``XCom.get_value(ti_key=..., key=...)`` and stores the URL under
:attr:`xcom_key` (``_link_<class name>``). The API server shows that stored URL; it never needs the
data lake, MLflow or these Variables.

Where the links point is configuration, read in the worker when the link is built:

| Airflow Variable | meaning | default |
|---|---|---|
| ``batchml_mlflow_ui_url`` | base URL of the MLflow UI | ``MLFLOW_TRACKING_URI`` when it is an http(s) server, else ``http://localhost:5000`` (``make mlflow``) |
| ``batchml_data_docs_url`` | base URL that serves the Data Docs site folder (``.../data_docs/local_site/``) | none: ``file://`` URLs |
| ``batchml_drift_report_url`` | URL template of a served drift report, with ``{ds}`` | none: ``file://`` URLs |

Only the standard library and ``airflow.sdk`` are imported at module level: the API server loads
this module with the plugin.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

MLFLOW_UI_VARIABLE = "batchml_mlflow_ui_url"
DATA_DOCS_VARIABLE = "batchml_data_docs_url"
DRIFT_REPORT_VARIABLE = "batchml_drift_report_url"
DEFAULT_MLFLOW_UI = "http://localhost:5000"

# XCom keys the operators push for their links (small JSON).
MLFLOW_XCOM = "mlflow"
DATA_DOCS_XCOM = "data_docs"
DRIFT_REPORTS_XCOM = "drift_reports"


def _variable(key: str) -> str | None:
    """An Airflow Variable, or None when unset or unreadable (a link must never fail a task)."""
    from airflow.sdk import Variable

    try:
        value = Variable.get(key, default=None)
    except Exception:  # noqa: BLE001 - no metadata DB or API here: fall back to the default
        log.debug("variable %s not readable", key, exc_info=True)
        return None
    return (value.strip() or None) if isinstance(value, str) else None


def _in_task_process() -> bool:
    """True in a task's process (the Task SDK's supervisor channel is set), as Airflow itself checks."""
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


class _XComDataLink(BaseOperatorLink):
    """A link built from the small XCom ``data_key`` the operator pushed while it executed."""

    data_key: ClassVar[str]
    operator_names: ClassVar[tuple[str, ...]] = ()

    @property
    def operators(self) -> list[type[BaseOperator]]:  # type: ignore[override]
        """The operators the plugin attaches this link to (imported lazily: no import cycle).

        Read by every deserialisation of a DAG in the API server: an environment that cannot import
        the operators gets no plugin override, and the serialised links still show their stored URL."""
        try:
            from batchml import operators
        except ImportError as exc:
            log.warning("batchml.operators not importable here (%s): links served from their stored URL", exc)
            return []
        return [getattr(operators, name) for name in self.operator_names]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if not _in_task_process():
            # API server: a plugin link takes precedence over the serialised one, but the worker
            # already rendered this link into the ``_link_<class>`` XCom when the task finished
            from airflow.serialization.definitions.operatorlink import XComOperatorLink

            return XComOperatorLink(name=self.name, xcom_key=self.xcom_key).get_link(operator, ti_key=ti_key)
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.data_key)
        if not value:
            return ""
        try:
            return self.url(value)
        except (KeyError, TypeError, ValueError):
            log.warning("%s: cannot build a link from XCom %s=%r", self.name, self.data_key, value)
            return ""

    def url(self, value: Any) -> str:
        """The URL for the operator's XCom ``value`` (pure: what the unit tests call)."""
        raise NotImplementedError


class MLflowLink(_XComDataLink):
    """The model version (or run) in the MLflow UI.

    XCom ``mlflow``: ``{"model": name, "version": "3", "run_id": ..., "experiment_id": ...}``.
    """

    name = "MLflow"
    data_key = MLFLOW_XCOM
    operator_names = ("ModelPromotionOperator", "BatchScoringOperator")

    def url(self, value: dict[str, Any]) -> str:
        base = mlflow_ui_base()
        if value.get("model") and value.get("version"):
            return f"{base}/#/models/{quote(str(value['model']), safe='')}/versions/{quote(str(value['version']))}"
        if value.get("run_id") and value.get("experiment_id"):
            return f"{base}/#/experiments/{quote(str(value['experiment_id']))}/runs/{quote(str(value['run_id']))}"
        raise ValueError("neither a model version nor a run")


def mlflow_ui_base() -> str:
    """The MLflow UI: the Variable, else the tracking server itself, else ``make mlflow``'s address."""
    configured = _variable(MLFLOW_UI_VARIABLE)
    if configured:
        return configured.rstrip("/")
    from include.config import mlflow_tracking_uri

    uri = mlflow_tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI


class DataDocsLink(_XComDataLink):
    """The Great Expectations Data Docs page of the validation.

    XCom ``data_docs``: ``{"site": <local_site folder>, "pages": {ds: page path}, "failed": [ds, ...]}``.
    One page, or a failed partition: that page; several passing partitions: the site index.
    """

    name = "Data Docs"
    data_key = DATA_DOCS_XCOM
    operator_names = ("GXCheckpointOperator",)

    def url(self, value: dict[str, Any]) -> str:
        site, pages = Path(value["site"]), value.get("pages") or {}
        failed = [pages[d] for d in value.get("failed") or [] if d in pages]
        if failed:
            page = Path(failed[0])
        elif len(pages) == 1:
            page = Path(next(iter(pages.values())))
        else:
            page = site / "index.html"
        served = _variable(DATA_DOCS_VARIABLE)
        if served:
            return f"{served.rstrip('/')}/{quote(page.relative_to(site).as_posix())}"
        return page.as_uri()


class DriftReportLink(_XComDataLink):
    """The drift report of the day: the first day that alerted, else the last day monitored.

    XCom ``drift_reports``: ``{"reports": {ds: report.html path}, "alerting": [ds, ...]}``.
    """

    name = "Drift report"
    data_key = DRIFT_REPORTS_XCOM
    operator_names = ("DriftCheckOperator",)

    def url(self, value: dict[str, Any]) -> str:
        reports = value["reports"]
        alerting = [d for d in value.get("alerting") or [] if d in reports]
        day = alerting[0] if alerting else max(reports)
        template = _variable(DRIFT_REPORT_VARIABLE)
        if template:
            return template.format(ds=day)
        return Path(reports[day]).as_uri()

"""Operators that wrap the shared library of include/ with Airflow's failure semantics.

Written the way Airflow's own providers are (``SparkSubmitOperator``, ``SQLExecuteQueryOperator``):
keyword-only constructors that only assign; templated arguments keep their names as attributes and
are listed in ``template_fields``; heavy libraries (Great Expectations, MLflow, pandas) are imported in
``execute``; the return value is a small JSON-serialisable summary for XCom; each operator states
what a failure means:

| raised | when | retried |
|---|---|---|
| ``AirflowFailException`` | bad data (a failed check, predictions mixing model versions), bad parameters (no days, an unknown dataset, a malformed decision), or a spark-submit job that exited with a code of ``include.spark.NO_RETRY_EXIT_CODES`` (bad data, bad configuration or registry state, reported on a ``BATCHML-ERROR`` line) | no: a retry cannot fix it |
| ``AirflowException`` / the library's error | an input not there yet, a database, registry or Spark cluster not reachable | yes, with the task's backoff |
| ``AirflowSkipException`` | ``ModelPromotionOperator`` given a decision the gate rejected, or one already carried out (a rerun); ``DriftCheckOperator`` given days not over yet (UTC) or before the first champion | no: nothing to do |

Each operator also pushes what its operator extra link needs (:mod:`batchml.links`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from batchml.links import (
    DATA_DOCS_XCOM,
    DRIFT_REPORTS_XCOM,
    MLFLOW_XCOM,
    DataDocsLink,
    DriftReportLink,
    MLflowLink,
)
from include.config import REPO_ROOT

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.validation.checkpoints import ValidationReport

SCORE_JOB = str(REPO_ROOT / "include" / "jobs" / "score.py")


def _exit_code(exc: BaseException) -> int | None:
    """The spark-submit exit code in the hook's error ("... Error code is: 65."), or None."""
    import re

    found = re.search(r"Error code is: (-?\d+)", str(exc))
    return int(found.group(1)) if found else None


def spark_connect_url(conn_id: str) -> str | None:
    """The ``sc://`` URL of ``conn_id`` when it is a Spark Connect connection (type ``spark_connect``,
    or a host that starts with ``sc://``), by the provider's SparkConnectHook; None for any other
    connection, or none of that name (spark-submit then reports it as it always has)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if conn.conn_type != "spark_connect" and not (conn.host or "").startswith("sc://"):
        return None
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

    return SparkConnectHook(conn_id).get_connection_url()


def _job_module(application: str) -> str:
    """``include/jobs/score.py`` -> ``include.jobs.score``: the module of a job file of this repository;
    AirflowFailException naming the file for one outside it (a Connect session runs only the
    repository's jobs, in the task's process)."""
    path = Path(application).resolve()
    try:
        relative = path.relative_to(REPO_ROOT)
    except ValueError:
        raise AirflowFailException(f"{application} is not a job of this repository ({REPO_ROOT}): a Spark "
                                   "Connect connection runs only the repository's jobs; use spark-submit") from None
    if path.suffix != ".py" or not path.is_file():
        raise AirflowFailException(f"{application} is not a Python job file")
    return ".".join(relative.with_suffix("").parts)


def _days(value: str | Sequence[str]) -> list[str]:
    """ISO days from one day or a list of days; ValueError naming a bad one."""
    import datetime as dt

    raw = [value] if isinstance(value, str) else list(value)
    if not raw:
        raise ValueError("no days given")
    days = set()
    for day in raw:
        try:
            days.add((day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day).strip())).isoformat())
        except ValueError:
            raise ValueError(f"not a day (YYYY-MM-DD): {day!r}") from None
    return sorted(days)


class GXCheckpointOperator(BaseOperator):
    """Validate the partitions of a dataset with its Great Expectations checkpoint.

    A failed expectation quarantines the file and fails the task *without retry*, naming the
    partition, the column and the expectation; downstream tasks do not run. A file that is not
    there yet fails with a normal (retryable) error. An unknown dataset, a malformed day or an
    invalid override (a row-count Variable that is not a number) fails without retry. The
    ``Data Docs`` link opens the validation's page (the failed one first).

    :param dataset: a key of ``include.validation.datasets.DATASETS`` (e.g. ``raw_transactions``).
    :param partitions: the day (``{{ ds }}``) or list of days to validate.
    :param staging: folder of staged files, for datasets validated before they are published.
    :param overrides: suite parameter overrides, e.g. row-count bounds from Airflow Variables.
    """

    template_fields: Sequence[str] = ("partitions", "staging", "overrides")
    template_fields_renderers = {"overrides": "json"}
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#ffe8c2"

    def __init__(
        self,
        *,
        dataset: str,
        partitions: str | list[str] = "{{ ds }}",
        staging: str | None = None,
        overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.partitions = partitions
        self.staging = staging
        self.overrides = overrides

    def execute(self, context: Context) -> dict[str, Any]:
        from include.config import ConfigError
        from include.storage import MissingInputError
        from include.validation.checkpoints import DataQualityError, data_docs_index
        from include.validation.datasets import DATASETS, validate_partitions

        if self.dataset not in DATASETS:
            raise AirflowFailException(f"no checks defined for dataset {self.dataset!r}; known: {sorted(DATASETS)}")
        try:
            days = _days(self.partitions)
        except ValueError as exc:
            raise AirflowFailException(f"{self.dataset}: {exc}") from None
        overrides = {k: v for k, v in (self.overrides or {}).items() if v not in (None, "")}
        site, suite = data_docs_index().parent, DATASETS[self.dataset].suite
        before = _data_docs_pages(site, suite)
        try:
            reports = validate_partitions(
                self.dataset, days, Path(self.staging) if self.staging else None, overrides
            )
        except DataQualityError as exc:
            self._push_data_docs(context, site, suite, before, days, exc.reports)
            self.log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        except MissingInputError as exc:
            raise AirflowException(str(exc)) from None
        except ConfigError as exc:  # e.g. a row-count Variable that is not a number: fix it, then clear
            raise AirflowFailException(str(exc)) from None
        self._push_data_docs(context, site, suite, before, days, [])
        return {
            "dataset": self.dataset,
            "partitions": [
                {"ds": r.ds, "rows": r.rows, "expectations": r.evaluated, "sha256": r.sha256} for r in reports
            ],
        }

    def _push_data_docs(self, context: Context, site: Path, suite: str, before: set[str], days: list[str],
                        failed: list[ValidationReport]) -> None:
        """Which Data Docs page belongs to which day, for the link: the pages this run added, in order.

        Days are validated one after another and each checkpoint run adds one page (named by its run
        time); an unreadable file is rejected before GX runs and adds none."""
        unreadable = {r.ds for r in failed if any(f.expectation == "file_is_readable_parquet" for f in r.failures)}
        ran = [d for d in days if d not in unreadable]
        added = sorted(_data_docs_pages(site, suite) - before, key=lambda p: Path(p).parent.name)
        pages = dict(zip(ran, added, strict=True)) if len(added) == len(ran) else {}
        if len(added) != len(ran):
            self.log.warning("Data Docs: %d new page(s) for %d validated day(s); the link opens the index",
                             len(added), len(ran))
        context["ti"].xcom_push(key=DATA_DOCS_XCOM, value={"site": str(site), "pages": pages,
                                                          "failed": [r.ds for r in failed]})


def _data_docs_pages(site: Path, suite: str) -> set[str]:
    """The validation pages of ``suite``: ``validations/<suite>/<run name>/<run time>/<batch>.html``."""
    return {str(p) for p in (site / "validations" / suite).glob("*/*/*.html")}


class DriftCheckOperator(BaseOperator):
    """PSI/KS drift and label performance of each day, with ``include.drift.monitor.monitor_day``.

    The days are ``days`` when given (``{{ ds }}`` or a list), else those of the run: its
    ``start``/``end`` params, or the day ranges of the Asset events that triggered it. Each day
    writes its ``drift_metrics`` and ``alerts`` rows and ``reports/drift/ds=<day>/report.{json,html}``.

    Alerts are results, not failures: the task succeeds and returns them. Days not over yet (UTC),
    and days before the first champion (no model scored them), are nothing to do: they are left out
    with a warning, and the task is skipped with the reason when no day is left. It fails without retry
    when the run names no valid day, the monitoring configuration is invalid, or a day's
    predictions mix model versions (rescore the day); a missing predictions or features partition
    is retried (scoring may be late). The ``Drift report`` link opens the alerting day's report.

    :param days: the day or days to monitor; None: the run's days (params, else Asset events).
    :param registered_model: the registered model; None: the training configuration's.
    :param config_path: a monitoring YAML; None: ``BATCHML_MONITORING_CONFIG`` or the shipped one.
    :return: one summary per day: ``ds``, ``model_version``, ``drifted``, ``alerts``,
        ``triggers_training``, ``report``.
    """

    template_fields: Sequence[str] = ("days", "registered_model", "config_path")
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        days: str | list[str] | None = None,
        registered_model: str | None = None,
        config_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.days = days
        self.registered_model = registered_model
        self.config_path = config_path

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from include.config import ConfigError
        from include.drift.config import load_monitoring_config
        from include.drift.monitor import before_first_champion, monitor_day
        from include.run_days import NothingToDo, check_not_future, days_to_process
        from include.storage import MissingInputError
        from include.training.config import load_training_config

        try:
            if self.days is None:
                days = days_to_process(context.get("params"), context.get("triggering_asset_events"), "monitor")
            else:
                days = _days(self.days)
            check_not_future(days, "monitor")
            cfg = load_monitoring_config(self.config_path or None)
            name = self.registered_model or load_training_config().registered_model
        except NothingToDo as exc:  # days not over yet: a skip with the reason, not a red run
            raise AirflowSkipException(str(exc)) from None
        except (ValueError, ConfigError, FileNotFoundError) as exc:
            raise AirflowFailException(str(exc)) from None  # a retry cannot fix the run's parameters
        unscored = before_first_champion(days, name)
        if unscored:
            reason = (f"nothing to monitor on {len(unscored)} day(s) {unscored[0]}..{unscored[-1]}: they lie before "
                      f"the first champion of {name!r}, so no model scored them")
            days = [d for d in days if d not in unscored]
            if not days:
                raise AirflowSkipException(f"{reason}; the run is skipped, not failed")
            self.log.warning("%s; monitoring the other %d day(s)", reason, len(days))
        results: list[dict[str, Any]] = []
        try:
            for day in days:
                results.append(monitor_day(day, name, cfg))
        except MissingInputError as exc:
            raise AirflowException(str(exc)) from None  # upstream late: retried
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None  # bad data, e.g. a day scored by two versions
        finally:
            if results:
                alerting = ([r["ds"] for r in results if r["triggers_training"]]
                            + [r["ds"] for r in results if r["alerts"] and not r["triggers_training"]])
                context["ti"].xcom_push(key=DRIFT_REPORTS_XCOM, value={
                    "reports": {r["ds"]: r["report"] for r in results}, "alerting": alerting})
        return results


class ModelPromotionOperator(BaseOperator):
    """Carry out the gate's decision: ``include.training.pipeline.promote`` moves the ``champion``
    alias to the accepted challenger (the replaced one becomes ``previous_champion``), marks the
    decision promoted in the warehouse ``promotions`` table and tags the MLflow run.

    Policy: a decision the gate rejected is skipped (AirflowSkipException: nothing to promote, the
    champion stays); a malformed decision, or one for another registered model than the training
    configuration's, fails without retry; a registry or warehouse error is retried. A decision is
    carried out once: a rerun or clear of a decision already carried out, or of one whose version a
    rollback withdrew since, is skipped with the reason (no alias moves, no Asset event), so a rerun
    never undoes a rollback; one interrupted after the alias moved is completed. Each Asset in ``outlets`` gets the event
    extra ``{"version", "as_of"}``. The ``MLflow`` link opens the new champion's version page.

    :param decision: the gate's decision (the ``gate`` task's XCom): ``promote``, ``version``,
        ``as_of``, ``run_id``, ``reason``, ``registered_model``.
    :param training_config: a training YAML; None: ``BATCHML_TRAINING_CONFIG`` or the shipped one.
    """

    template_fields: Sequence[str] = ("decision", "training_config")
    template_fields_renderers = {"decision": "json"}
    operator_extra_links = (MLflowLink(),)
    ui_color = "#e8f5e9"

    REQUIRED = ("promote", "version", "as_of", "run_id", "reason", "registered_model")

    def __init__(self, *, decision: Any, training_config: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision = decision
        self.training_config = training_config

    def execute(self, context: Context) -> dict[str, Any]:
        from include.config import ConfigError
        from include.training.config import load_training_config
        from include.training.pipeline import promote

        decision = self.decision
        if isinstance(decision, str):
            try:
                decision = json.loads(decision)
            except ValueError:
                raise AirflowFailException(f"decision is not JSON: {decision[:200]!r}") from None
        missing = [k for k in self.REQUIRED if not isinstance(decision, dict) or k not in decision]
        if missing:
            raise AirflowFailException(f"decision lacks {missing}: {decision!r}"[:500])
        if not decision["promote"]:
            raise AirflowSkipException(f"version {decision['version']} was not accepted by the gate: "
                                       f"{decision['reason']}; the champion stays")
        try:
            cfg = load_training_config(self.training_config or None)
        except (ConfigError, FileNotFoundError) as exc:
            raise AirflowFailException(str(exc)) from None
        if cfg.registered_model != decision["registered_model"]:
            raise AirflowFailException(f"decision is for {decision['registered_model']!r}, the training "
                                       f"configuration registers {cfg.registered_model!r}")
        result = promote(decision, cfg)
        if result.get("unchanged"):  # a decision already carried out, or a withdrawn version: history
            raise AirflowSkipException(result["unchanged"])
        context["ti"].xcom_push(key=MLFLOW_XCOM, value={"model": cfg.registered_model, "version": result["champion"],
                                                       "run_id": decision["run_id"]})
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"version": result["champion"], "as_of": result["as_of"]}
        self.log.info("%s: champion is version %s (previous champion %s): %s", cfg.registered_model,
                      result["champion"], result["previous_champion"], decision["reason"])
        return result


class SparkJobOperator(SparkSubmitOperator):
    """``spark-submit`` of a project job (``include/jobs/``) that reports a failure a retry cannot fix.

    The plain provider operator retries every failed application. A project job that meets bad data
    or a bad configuration / registry state prints one ``BATCHML-ERROR`` line, leaves ``_error.json``
    in its output folder and exits with a code of ``include.spark.NO_RETRY_EXIT_CODES``
    (``include.spark.JobFailure``): this operator then fails without retry with that message. Any
    other failed application (a lost executor, an unreachable cluster) is retried.

    When the connection is a Spark Connect one (type ``spark_connect``, or a host ``sc://...``;
    ``make spark-connect`` starts a server), there is no spark-submit: the job's ``main(argv)`` runs
    in the task's process on a session of that long-lived server (``include.spark.connect_to``), with
    the same failure mapping (its exit code; an exception it raises is retried).

    :param error_output: the job's output folder, where it leaves ``_error.json`` (templated).
    """

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "error_output")

    def __init__(self, *, error_output: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error_output = error_output

    def execute(self, context: Context) -> Any:
        from include.spark import ERROR_FILE, NO_RETRY_EXIT_CODES, reported_failure

        (Path(self.error_output) / ERROR_FILE).unlink(missing_ok=True)  # a previous try's
        remote = spark_connect_url(self._conn_id)
        if remote is not None:
            return self._run_on_connect(remote)
        try:
            return super().execute(context)
        except AirflowException as exc:
            code = _exit_code(exc)
            failure = reported_failure(Path(self.error_output))
            if code in NO_RETRY_EXIT_CODES or failure is not None:
                what = (f"{failure['kind']}: {failure['message']}" if failure else
                        "see the BATCHML-ERROR line in the log above")
                raise AirflowFailException(f"{self.task_id}: {what} (spark-submit exit code {code}: not retried)") \
                    from None
            raise

    def _run_on_connect(self, remote: str) -> int:
        """The job's ``main(application_args)`` on a session of the Connect server at ``remote``."""
        import importlib
        import time

        from include.spark import NO_RETRY_EXIT_CODES, connect_to, reported_failure

        module = _job_module(self.application)
        args = [str(a) for a in (self.application_args or [])]
        self.log.info("Spark Connect %s: %s.main(%s)", remote, module, args)
        began = time.perf_counter()
        with connect_to(remote):
            code = importlib.import_module(module).main(args)
        self.log.info("%s finished with code %s in %.1f s", module, code, time.perf_counter() - began)
        if code in (0, None):
            return 0
        failure = reported_failure(Path(self.error_output))
        if code in NO_RETRY_EXIT_CODES or failure is not None:
            what = f"{failure['kind']}: {failure['message']}" if failure else f"{module} exited with code {code}"
            raise AirflowFailException(f"{self.task_id}: {what} (exit code {code} on Spark Connect: not retried)")
        raise AirflowException(f"{self.task_id}: {module} exited with code {code} on Spark Connect {remote}")


class BatchScoringOperator(SparkJobOperator):
    """``spark-submit`` of ``include/jobs/score.py`` over a scoring plan (``include.scoring.plan_scoring``).

    A ``SparkSubmitOperator`` with the job, its arguments and the project's defaults filled in: the
    ``spark_default`` connection (``local[*]``, or a cluster) and the ``spark`` pool. The driver
    loads each model of the plan once and ships it to the executors with the scoring function (a
    ``spark_connect`` connection: on a session of that server, see SparkJobOperator); every day is staged as one parquet file
    under ``staging`` (checked and published by the tasks after it).

    A plan that cannot be read fails without retry (rerun the task that wrote it). A job that exits
    with a code of ``include.spark.NO_RETRY_EXIT_CODES`` fails without retry, with the job's
    ``BATCHML-ERROR`` message (bad data: a feature partition the model refuses; bad registry state:
    model files that do not load); any other failed Spark application is retried. The ``MLflow``
    link opens the version that scored the newest day.

    :param plans: path of ``plans.json`` (templated).
    :param staging: staging folder of the predictions, the job's ``--output`` (templated).
    :return: ``{"days", "models" (day -> version), "staging"}``.
    """

    template_fields: Sequence[str] = (*SparkJobOperator.template_fields, "plans", "staging")
    operator_extra_links = (MLflowLink(),)
    ui_color = "#fff3e0"

    def __init__(
        self,
        *,
        plans: str,
        staging: str,
        application: str = SCORE_JOB,
        conn_id: str = "spark_default",
        name: str = "score",
        pool: str = "spark",
        **kwargs: Any,
    ) -> None:
        super().__init__(application=application, conn_id=conn_id, name=name, pool=pool, error_output=staging,
                         **kwargs)
        self.plans = plans
        self.staging = staging

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            plans = json.loads(Path(self.plans).read_text())
            models = {p["ds"]: p["model"] for p in plans}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AirflowFailException(f"scoring plan {self.plans} is unusable ({type(exc).__name__}: {exc}); "
                                       "clear the task that wrote it") from None
        if not models:
            raise AirflowFailException(f"scoring plan {self.plans} has no day")
        newest = models[max(models)]
        context["ti"].xcom_push(key=MLFLOW_XCOM, value={"model": newest["name"], "version": str(newest["version"]),
                                                       "run_id": newest.get("run_id")})
        self.application_args = ["--plans", str(self.plans), "--output", str(self.staging)]
        super().execute(context)
        return {"days": sorted(models), "models": {d: str(m["version"]) for d, m in sorted(models.items())},
                "staging": str(self.staging)}

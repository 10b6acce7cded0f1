"""The custom operators, their extra links and the failure / deadline notifiers.

Each operator's ``execute(context)`` runs on the real engine where that is cheap (Great Expectations
on a one-day landing file, drift on a small lake with a reference built here, promotion against a
real MLflow sqlite registry); the Spark submission of the scoring operator is recorded instead of
run (``tests/integration/test_scoring.py`` runs the real job through the DAG). Every return value
and link XCom must be JSON; templated fields render ``{{ ds }}``. Two ``dag.test()`` runs check what
only a real task run shows: the failure callback writes its ``alerts`` row from the task's process,
and the link the worker stores is the one the API server reads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from batchml import links
from batchml.links import DataDocsLink, DriftReportLink, MLflowLink
from batchml.notifiers import TaskFailureNotifier, deadline_missed
from batchml.operators import BatchScoringOperator, DriftCheckOperator, GXCheckpointOperator, ModelPromotionOperator

from include import warehouse
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.pipelines.fraud.simulator import SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_landing_files
from include.storage import landing_file, partition_file, write_parquet_atomic
from tests.conftest import REPO
from tests.task_context import FakeTI

DAY = "2026-08-01"
NAME = "fraud-detector"


def _context(**extra) -> dict:
    return {"ti": FakeTI(), "ds": DAY, "params": {}, "triggering_asset_events": {},
            "outlet_events": defaultdict(SimpleNamespace), **extra}


def _run(op, context: dict | None = None):
    """What the task runner does around ``execute``: render the templated fields, then execute."""
    context = context if context is not None else _context()
    op.render_template_fields(context)
    return op.execute(context)


def _json(value):
    return json.loads(json.dumps(value))


def _alerts(kind: str) -> list[dict]:
    with warehouse.engine().connect() as conn:
        rows = conn.execute(warehouse.alerts.select().where(warehouse.alerts.c.kind == kind)).mappings().all()
    return [dict(r) for r in rows]


# --- GXCheckpointOperator -----------------------------------------------------------------------


@pytest.fixture
def landing(data_root) -> Path:
    """One simulated day of landing files (about 400 transactions)."""
    cfg = SimulatorConfig(n_customers=200, n_terminals=400, n_days=2, start_date=dt.date.fromisoformat(DAY), seed=3)
    write_landing_files(simulate(cfg).transactions, data_root)
    return data_root


def test_gx_operator_passes_a_good_day_and_links_its_data_docs_page(landing):
    op = GXCheckpointOperator(task_id="validate_transactions", dataset="raw_transactions", overrides={"min_rows": "1"})
    context = _context()
    result = _run(op, context)

    assert result == _json(result)
    (partition,) = result["partitions"]
    assert partition["ds"] == DAY and partition["rows"] > 100 and len(partition["sha256"]) == 64
    docs = context["ti"].xcoms["data_docs"]
    page = Path(docs["pages"][DAY])
    assert page.exists() and page.is_relative_to(Path(docs["site"])) and docs["failed"] == []
    assert DataDocsLink().url(docs) == page.as_uri()


def test_gx_operator_fails_bad_data_without_retry_and_links_the_failed_page(landing):
    path = landing_file("transactions", DAY, landing)
    frame = pd.read_parquet(path)
    write_parquet_atomic(frame.assign(tx_amount=frame["tx_amount"].where(frame.index != 0, -5.0)), path)
    op = GXCheckpointOperator(task_id="validate_transactions", dataset="raw_transactions")
    context = _context()

    with pytest.raises(AirflowFailException, match=f"(?s)raw_transactions ds={DAY}.*column tx_amount: expect_column_values_to_be_between"):
        _run(op, context)
    docs = context["ti"].xcoms["data_docs"]
    assert docs["failed"] == [DAY] and Path(docs["pages"][DAY]).exists()
    assert DataDocsLink().url(docs) == Path(docs["pages"][DAY]).as_uri()
    assert (landing / "quarantine" / "landing" / "transactions" / f"ds={DAY}" / "failure.json").exists()


def test_gx_operator_retries_a_missing_file_and_refuses_bad_parameters(data_root):
    with pytest.raises(AirflowException) as missing:
        _run(GXCheckpointOperator(task_id="v", dataset="raw_transactions"), _context())
    assert not isinstance(missing.value, AirflowFailException)  # the upstream may be late: retried
    assert "no file at" in str(missing.value)
    with pytest.raises(AirflowFailException, match="no checks defined for dataset 'nope'"):
        _run(GXCheckpointOperator(task_id="v", dataset="nope"), _context())
    with pytest.raises(AirflowFailException, match="not a day"):
        _run(GXCheckpointOperator(task_id="v", dataset="raw_transactions", partitions="yesterday"), _context())


def test_gx_operator_renders_its_templates():
    op = GXCheckpointOperator(task_id="v", dataset="predictions", partitions="{{ ds }}",
                              staging="/staging/{{ ds }}", overrides={"min_rows": "{{ ds_nodash }}"})
    op.render_template_fields({"ds": DAY, "ds_nodash": DAY.replace("-", "")})
    assert (op.partitions, op.staging, op.overrides) == (DAY, f"/staging/{DAY}", {"min_rows": "20260801"})


# --- DriftCheckOperator -------------------------------------------------------------------------


def _features(n: int, seed: int, amount_factor: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {"tx_amount": rng.lognormal(3.5, 0.8, n) * amount_factor,
            "tx_during_weekend": rng.integers(0, 2, n), "tx_during_night": (rng.random(n) < 0.2).astype(int)}
    for w in (1, 7, 30):
        cols[f"customer_nb_tx_{w}d"] = rng.gamma(2.0, w, n)
        cols[f"customer_avg_amount_{w}d"] = rng.lognormal(3.5, 0.5, n) * amount_factor
        cols[f"terminal_nb_tx_{w}d"] = rng.gamma(3.0, w, n)
        cols[f"terminal_risk_{w}d"] = rng.beta(1, 30, n)
    for c in MODEL_INPUTS:  # the feature groups beyond the baseline: ratios, counts and hours around 1
        cols.setdefault(c, rng.gamma(4.0, 0.25, n))
    return pd.DataFrame(cols)[MODEL_INPUTS]


@pytest.fixture
def drift_lake(data_root, monkeypatch):
    """A reference fitted here, and two scored days: the first like it, the second with amounts x3."""
    from include.drift import monitor
    from include.drift.reference import fit_distribution, fit_references

    reference_frame = _features(5000, seed=0)
    scores = np.random.default_rng(1).beta(1, 20, 5000)
    reference = {"features": fit_references(reference_frame, MODEL_INPUTS), "score": fit_distribution(scores).as_dict()}
    monkeypatch.setattr(monitor, "load_reference", lambda run_id: reference)  # stands in for the MLflow artifact
    days = ["2026-08-01", "2026-08-02"]
    for i, (day, factor) in enumerate(zip(days, (1.0, 3.0), strict=True)):
        feats = _features(4000, seed=10 + i, amount_factor=factor)
        write_parquet_atomic(feats, partition_file("features", "baseline", day, data_root))
        preds = pd.DataFrame({"transaction_id": np.arange(len(feats)),
                              "score": np.random.default_rng(20 + i).beta(1, 20, len(feats)) * (1 + i),
                              "model_version": "1", "run_id": "run-abc"})
        write_parquet_atomic(preds, partition_file("predictions", "fraud", day, data_root))
    return data_root, days


def test_drift_operator_monitors_the_runs_days_and_links_the_alerting_report(drift_lake):
    root, days = drift_lake
    context = _context(params={"start": days[0], "end": days[1]})
    results = _run(DriftCheckOperator(task_id="check_drift"), context)

    assert results == _json(results)
    quiet, drifted = results
    assert (quiet["ds"], quiet["alerts"], quiet["triggers_training"]) == (days[0], [], False)
    assert drifted["triggers_training"] and "tx_amount" in drifted["drifted"]
    reports = context["ti"].xcoms["drift_reports"]
    assert reports["alerting"] == [days[1]]
    report = root / "reports" / "drift" / f"ds={days[1]}" / "report.html"
    assert report.exists() and DriftReportLink().url(reports) == report.as_uri()
    assert [a["kind"] for a in warehouse.alerts_between(*map(dt.date.fromisoformat, days))] == ["drift"]

    # the same days again from the Asset events of the predictions: replaced, and deduplicated
    events = {"predictions_fraud": [SimpleNamespace(extra={"start": days[0], "end": days[1]})]}
    again = _run(DriftCheckOperator(task_id="check_drift"), _context(triggering_asset_events=events))
    assert [r["ds"] for r in again] == days and again[1]["alerts"] == drifted["alerts"]


def test_drift_operator_renders_days_and_fails_or_retries_by_policy(drift_lake):
    root, days = drift_lake
    op = DriftCheckOperator(task_id="check_drift", days="{{ ds }}")
    op.render_template_fields({"ds": days[0]})
    assert op.days == days[0]
    assert [r["ds"] for r in _run(op, _context())] == [days[0]]

    with pytest.raises(AirflowFailException, match="no days to monitor"):
        _run(DriftCheckOperator(task_id="check_drift"), _context())
    with pytest.raises(AirflowFailException, match="ends before it starts"):
        _run(DriftCheckOperator(task_id="check_drift"), _context(params={"start": days[1], "end": days[0]}))
    with pytest.raises(AirflowException, match="no partition") as late:
        _run(DriftCheckOperator(task_id="check_drift", days=["2026-08-09"]), _context())
    assert not isinstance(late.value, AirflowFailException)  # scoring may be late: retried

    mixed = partition_file("predictions", "fraud", days[0], root)
    preds = pd.read_parquet(mixed)
    write_parquet_atomic(preds.assign(model_version=np.where(preds.index % 2 == 0, "1", "2")), mixed)
    with pytest.raises(AirflowFailException, match="mix model versions"):
        _run(DriftCheckOperator(task_id="check_drift", days=days[0]), _context())


# --- ModelPromotionOperator ---------------------------------------------------------------------


@pytest.fixture
def accepted(data_root) -> dict:
    """A registered version 1 with an accepted gate decision, in a real MLflow sqlite registry."""
    from include import registry
    from include.training import tracking

    c = tracking.client()
    run = c.create_run(tracking.ensure_experiment("fraud-training"))
    c.set_terminated(run.info.run_id)
    registry.ensure_registered_model(NAME)
    c.create_model_version(NAME, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                           tags={"threshold": "0.5"})
    decision = {"promote": True, "promoted": False, "reason": "first champion", "version": "1",
                "champion_version": None, "as_of": DAY, "model": "logistic", "run_id": run.info.run_id,
                "registered_model": NAME}
    warehouse.record_decision({"model_name": NAME, "as_of": dt.date.fromisoformat(DAY), "challenger_version": "1",
                               "challenger_run_id": run.info.run_id, "decision": "promote", "promoted": False,
                               "reason": "first champion", "primary_metric": "average_precision"})
    return decision


def test_promotion_operator_moves_the_champion_and_links_the_version(accepted):
    from include import registry
    from include.assets import CHAMPION_MODEL

    op = ModelPromotionOperator(task_id="promote", decision=accepted, outlets=[CHAMPION_MODEL])
    context = _context()
    result = _run(op, context)

    assert result == _json(result) and result["champion"] == "1" and result["promoted"]
    assert str(registry.alias_version(NAME, registry.CHAMPION).version) == "1"
    assert warehouse.decision_for(NAME, dt.date.fromisoformat(DAY))["promoted"]
    assert context["outlet_events"][CHAMPION_MODEL].extra == {"version": "1", "as_of": DAY}
    assert MLflowLink().url(context["ti"].xcoms["mlflow"]) == "http://localhost:5000/#/models/fraud-detector/versions/1"
    # a rerun replays nothing: the decision is history, the task skips with the reason
    with pytest.raises(AirflowSkipException, match="was carried out at"):
        _run(op, _context())


def test_promotion_operator_skips_a_rejection_and_fails_a_malformed_decision(accepted):
    from include import registry

    rejected = {**accepted, "promote": False, "reason": "average_precision gain 0.001 < 0.005"}
    with pytest.raises(AirflowSkipException, match="not accepted by the gate: average_precision gain"):
        _run(ModelPromotionOperator(task_id="promote", decision=rejected), _context())
    assert registry.alias_version(NAME, registry.CHAMPION) is None
    with pytest.raises(AirflowFailException, match=r"decision lacks \['run_id'\]"):
        _run(ModelPromotionOperator(task_id="promote", decision={k: v for k, v in accepted.items() if k != "run_id"}))
    with pytest.raises(AirflowFailException, match="the training configuration registers 'fraud-detector'"):
        _run(ModelPromotionOperator(task_id="promote", decision={**accepted, "registered_model": "other"}), _context())


def test_promotion_operator_renders_a_json_decision(accepted):
    template = json.dumps({**accepted, "as_of": "{{ ds }}"})
    op = ModelPromotionOperator(task_id="promote", decision=template)
    op.render_template_fields({"ds": DAY})
    assert json.loads(op.decision)["as_of"] == DAY
    assert _run(op, _context())["champion"] == "1"


# --- BatchScoringOperator -----------------------------------------------------------------------


@pytest.fixture
def submitted(monkeypatch) -> list[list[str]]:
    """spark-submit command lines instead of running them (the real job runs in the scoring DAG test)."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    commands: list[list[str]] = []
    monkeypatch.setattr(SparkSubmitHook, "submit",
                        lambda self, application="", **kw: commands.append(self._build_spark_submit_command(application)))
    return commands


def _plans(path: Path, days: list[str]) -> Path:
    plans = [{"ds": d, "features": f"/lake/features/baseline/ds={d}/data.parquet",
              "model": {"name": NAME, "version": str(i + 1), "run_id": f"run-{i}", "threshold": 0.4,
                        "source": "promotions", "uri": f"models:/{NAME}/{i + 1}"}} for i, d in enumerate(days)]
    path.write_text(json.dumps(plans))
    return path


def test_scoring_operator_submits_the_job_with_the_projects_defaults(tmp_path, submitted):
    plans = _plans(tmp_path / "plans.json", ["2026-08-01", "2026-08-02"])
    op = BatchScoringOperator(task_id="score", plans=str(plans), staging=str(tmp_path / "staging"))
    assert (op.pool, op._conn_id, op.name) == ("spark", "spark_default", "score")
    assert op.application.endswith("include/jobs/score.py")
    context = _context()
    result = _run(op, context)

    assert result == _json(result)
    assert result == {"days": ["2026-08-01", "2026-08-02"], "models": {"2026-08-01": "1", "2026-08-02": "2"},
                      "staging": str(tmp_path / "staging")}
    (command,) = submitted
    assert command[-5:] == [op.application, "--plans", str(plans), "--output", str(tmp_path / "staging")]
    assert context["ti"].xcoms["mlflow"] == {"model": NAME, "version": "2", "run_id": "run-1"}  # the newest day's


def test_scoring_operator_fails_an_unusable_plan_without_retry(tmp_path, submitted):
    with pytest.raises(AirflowFailException, match="is unusable"):
        _run(BatchScoringOperator(task_id="score", plans=str(tmp_path / "gone.json"), staging="x"), _context())
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(AirflowFailException, match="has no day"):
        _run(BatchScoringOperator(task_id="score", plans=str(tmp_path / "empty.json"), staging="x"), _context())
    assert submitted == []


def test_scoring_operator_renders_its_templates():
    op = BatchScoringOperator(task_id="score", plans="/staging/{{ ds }}/plans.json", staging="/staging/{{ ds }}")
    op.render_template_fields({"ds": DAY})
    assert (op.plans, op.staging) == (f"/staging/{DAY}/plans.json", f"/staging/{DAY}")


# --- extra links --------------------------------------------------------------------------------


@pytest.fixture
def xcoms(monkeypatch) -> dict:
    """``XCom.get_value`` as a task's process sees it, over a dict of key -> value."""
    from airflow.sdk.execution_time.xcom import XCom

    store: dict = {}
    monkeypatch.setattr(links, "_in_task_process", lambda: True)
    monkeypatch.setattr(XCom, "get_value", classmethod(lambda cls, *, ti_key, key: store.get(key)))
    return store


KEY = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=1)


def test_links_build_their_urls_from_the_operators_xcom(xcoms, tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "AIRFLOW_VAR_BATCHML_MLFLOW_UI_URL", "AIRFLOW_VAR_BATCHML_DATA_DOCS_URL",
                 "AIRFLOW_VAR_BATCHML_DRIFT_REPORT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert MLflowLink().get_link(None, ti_key=KEY) == ""  # nothing pushed: no link
    xcoms["mlflow"] = {"model": "fraud detector", "version": "7", "run_id": "abc"}
    assert MLflowLink().get_link(None, ti_key=KEY) == "http://localhost:5000/#/models/fraud%20detector/versions/7"
    xcoms["mlflow"] = {"run_id": "abc", "experiment_id": "3"}
    assert MLflowLink().get_link(None, ti_key=KEY) == "http://localhost:5000/#/experiments/3/runs/abc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000/")
    assert MLflowLink().get_link(None, ti_key=KEY).startswith("http://mlflow.internal:5000/#/experiments/3")
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_MLFLOW_UI_URL", "https://mlflow.example.com/")
    assert MLflowLink().get_link(None, ti_key=KEY) == "https://mlflow.example.com/#/experiments/3/runs/abc"

    site = tmp_path / "local_site"
    page = site / "validations" / "raw_labels" / "__none__" / "20260801T000000.000000Z" / "batchml-raw_labels.html"
    other = page.with_name("other.html")
    xcoms["data_docs"] = {"site": str(site), "pages": {"2026-08-01": str(page), "2026-08-02": str(other)},
                          "failed": []}
    assert DataDocsLink().get_link(None, ti_key=KEY) == (site / "index.html").as_uri()  # several days: the index
    xcoms["data_docs"]["failed"] = ["2026-08-02"]
    assert DataDocsLink().get_link(None, ti_key=KEY) == other.as_uri()  # the failed one first
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_DATA_DOCS_URL", "http://docs.example.com/gx/")
    assert DataDocsLink().get_link(None, ti_key=KEY) == (
        "http://docs.example.com/gx/validations/raw_labels/__none__/20260801T000000.000000Z/other.html")

    xcoms["drift_reports"] = {"reports": {"2026-08-01": "/lake/a.html", "2026-08-02": "/lake/b.html"}, "alerting": []}
    assert DriftReportLink().get_link(None, ti_key=KEY) == "file:///lake/b.html"  # no alert: the last day
    xcoms["drift_reports"]["alerting"] = ["2026-08-01"]
    assert DriftReportLink().get_link(None, ti_key=KEY) == "file:///lake/a.html"
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_DRIFT_REPORT_URL", "http://airflow:8080/ml-monitor/drift/{ds}")
    assert DriftReportLink().get_link(None, ti_key=KEY) == "http://airflow:8080/ml-monitor/drift/2026-08-01"

    xcoms["drift_reports"] = {"unexpected": 1}
    assert DriftReportLink().get_link(None, ti_key=KEY) == ""  # a malformed XCom never breaks the task


def test_the_plugin_registers_the_links_on_the_operators():
    from airflow import plugins_manager

    registered = {link.name: link for link in plugins_manager.get_operator_extra_links()}
    assert {"MLflow", "Data Docs", "Drift report"} <= set(registered)
    assert {op.__name__ for op in registered["MLflow"].operators} == {"ModelPromotionOperator", "BatchScoringOperator"}
    assert registered["Data Docs"].operators == [GXCheckpointOperator]
    assert registered["Drift report"].operators == [DriftCheckOperator]
    for op in (GXCheckpointOperator, DriftCheckOperator, ModelPromotionOperator, BatchScoringOperator):
        assert op.operator_extra_links and all(type(link) in map(type, registered.values())
                                               for link in op.operator_extra_links)


# --- failure and deadline notifiers -------------------------------------------------------------


def test_task_failure_notifier_records_an_alert(data_root):
    ti = SimpleNamespace(dag_id="scoring", task_id="score", run_id="manual__1", map_index=-1, try_number=2)
    TaskFailureNotifier()({"ti": ti, "ds": DAY, "exception": RuntimeError("spark-submit exited with 1")})
    (row,) = _alerts("task_failure")
    assert (row["ds"], row["model_name"], row["triggered_training"]) == (dt.date.fromisoformat(DAY), "scoring", False)
    assert row["message"] == (f"scoring.score failed (run manual__1, ds {DAY}, try 2): RuntimeError: spark-submit "
                              "exited with 1")


def test_deadline_callback_runs_as_the_executor_runs_it(data_root):
    """Through Airflow's own callback runner, with the context the scheduler builds for a missed deadline."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    context = {"dag_run": {"dag_id": "scoring", "dag_run_id": "asset_triggered__2026-08-02", "logical_date": None,
                           "run_after": "2026-08-02T01:00:00Z", "queued_at": "2026-08-02T01:00:00Z",
                           "start_date": None, "state": "queued", "conf": {}},
               "deadline": {"id": "x", "deadline_time": "2026-08-02T03:00:00Z"}}
    ok, error = execute_callback("batchml.notifiers.deadline_missed",
                                 {"dag_id": "scoring", "minutes": 120, "context": context}, "scoring.py", None,
                                 structlog.get_logger())
    assert (ok, error) == (True, None)
    (row,) = _alerts("deadline_missed")
    assert row["ds"] == dt.date(2026, 8, 2) and row["model_name"] == "scoring"
    assert "has not finished by its deadline 2026-08-02T03:00:00Z (120 min after it was queued)" in row["message"]
    assert "(run date 2026-08-02)" in row["message"]  # an Asset-triggered run: its data days are not known here
    deadline_missed(context={"dag_run": {"dag_id": "scoring", "conf": {"start": DAY}}})
    assert sorted(r["ds"].isoformat() for r in _alerts("deadline_missed")) == [DAY, "2026-08-02"]
    assert any(f"(ds {DAY})" in r["message"] for r in _alerts("deadline_missed"))


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.mark.slow
def test_a_failed_task_in_a_real_run_records_its_alert_and_its_link(dags, landing):
    """ingest with a bad transactions file, through dag.test(): the callback runs in the task's process."""
    path = landing_file("transactions", DAY, landing)
    frame = pd.read_parquet(path)
    write_parquet_atomic(frame.assign(tx_amount=frame["tx_amount"].where(frame.index != 0, -5.0)), path)
    run = dags.get_dag("ingest").test(logical_date=dt.datetime.fromisoformat(f"{DAY}T00:00:00+00:00"))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["validate_transactions"] == "failed" and states["publish_labels"] == "success", states

    (row,) = _alerts("task_failure")
    assert row["model_name"] == "ingest" and row["ds"] == dt.date.fromisoformat(DAY)
    assert f"ingest.validate_transactions failed (run {run.run_id}, ds {DAY}, try 1): AirflowFailException: " \
           f"raw_transactions ds={DAY}" in row["message"]

    # the worker stored the link at the end of the try; the API server's side reads that one back
    failed = run.get_task_instance("validate_transactions")
    link = DataDocsLink().get_link(None, ti_key=failed.key)
    assert link.startswith("file://") and "/validations/raw_transactions/" in link
    assert Path(link.removeprefix("file://")).exists()
    passed = run.get_task_instance("validate_labels")
    assert "/validations/raw_labels/" in DataDocsLink().get_link(None, ti_key=passed.key)


@pytest.mark.slow
def test_bad_parameters_fail_the_drift_operator_in_a_real_run_without_retry(dags, data_root):
    run = dags.get_dag("monitoring").test(run_conf={"start": "2026-08-02", "end": "2026-08-01"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states["check_drift"] == "failed" and run.get_task_instance("check_drift").try_number == 1, states
    (row,) = _alerts("task_failure")
    assert row["model_name"] == "monitoring" and "ends before it starts" in row["message"]


def test_a_dag_with_a_deadline_can_finish_under_dag_test(dags):
    """Airflow 3.3.2: on success, dag.test() looks up the encoded alert as if it were an id."""
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.serialization.definitions.deadline import SerializedReferenceModels
    from airflow.serialization.serialized_objects import DagSerialization
    from batchml.batchml_plugin import accept_encoded_deadline_alerts

    assert accept_encoded_deadline_alerts() and accept_encoded_deadline_alerts()  # idempotent
    (encoded,) = DagSerialization.to_dict(dags.get_dag("scoring"))["dag"]["deadline"]
    alert = DeadlineAlertModel.get_by_id(encoded)
    assert alert.reference_class in SerializedReferenceModels.TYPES.DAGRUN
    with pytest.raises(Exception, match="No DeadlineAlert found"):  # ids still go to the database
        DeadlineAlertModel.get_by_id("00000000-0000-7000-8000-000000000000")

"""Bad registry states and bad published feature partitions at scoring (section "bad input").

Each case spoils one thing of a world that scores fine (tests/scoring_registry.py: raw and feature
partitions of a few days, a champion version of the real pyfunc in the real MLflow registry, the
predictions of the last day already published), runs the step that must stop it, and checks:
- it fails **without retry** (AirflowFailException; for the Spark job, an exit code the operator
  maps to one), with a message that names the culprit: the version and the tag, or the partition,
  the column and the count;
- nothing downstream moved: prediction partitions, the warehouse's predictions rows, the aliases,
  and no scoring plan was written.

Most cases stop at the scoring DAG's ``plan`` task (its callable, called as the DAG calls it); the
corrupted model file passes ``plan`` (its MLmodel is intact) and is stopped by the Spark job, through
``dag.test()``. Also here: the registry command line on an unknown model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from include import registry
from include.storage import partition_file, write_parquet_atomic
from tests.conftest import REPO
from tests.integration.test_bad_input import _assert_names, _failure_message, _first_lines
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    World,
    add_version,
    downstream,
    model_files,
    promote,
    publish_scored,
    scoring_world,
    scoring_world_template,
)

DAY = DAYS[-1]  # the day scored; its predictions were published before (by version 1)


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def world(scoring_world, monkeypatch) -> World:  # noqa: F811 (the imported fixture)
    """The world, the predictions of DAY published by its champion (version 1)."""
    # the plan task checks the connection exists; outside a DAG run Airflow reads it from the environment
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[*]"}')
    publish_scored(scoring_world.root, DAY, scoring_world.features[DAY], "1", scoring_world.summary["run_id"])
    return scoring_world


def _plan(dags, day: dt.date = DAY) -> dict:
    """The scoring DAG's plan task, called as the DAG calls it for a manual run of ``day``."""
    plan = dags.get_dag("scoring").get_task("plan").python_callable
    return plan(params={"start": str(day), "end": str(day)}, triggering_asset_events=None, run_id="rescore")


def test_the_unspoilt_world_is_planned(dags, world):
    """The control: every case below fails for its spoil alone."""
    planned = _plan(dags)
    assert planned["days"] == [str(DAY)] and planned["models"] == {str(DAY): "1"}


# --- registry states: stopped at plan (scoring) ----------------------------------------------------

def _promoted(world: World, version: str) -> None:
    promote(version, DAY - dt.timedelta(days=1), world.summary["run_id"])


def _client():
    from include.training import tracking

    return tracking.client()


def _deleted_champion(world: World) -> tuple[str, ...]:
    version = add_version(world.summary)
    _promoted(world, version)
    _client().delete_model_version(NAME, version)  # MLflow drops the champion alias with it
    return (f"version {version} of registered model {NAME!r}", "does not exist", f"champion of ds={DAY}",
            "promotions table", "known versions: ['1']")


def _tag(tag: str, value: str | None) -> Callable[[World], tuple[str, ...]]:
    def spoil(world: World) -> tuple[str, ...]:
        version = add_version(world.summary)
        if value is None:
            _client().delete_model_version_tag(NAME, version, tag)
        else:
            _client().set_model_version_tag(NAME, version, tag, value)
        _promoted(world, version)
        names = (f"tag {tag} = {value!r}",) if value is not None else (f"lacks the tag(s) [{tag!r}]",)
        return (f"version {version} of registered model {NAME!r}", *names)
    return spoil


def _other_pipelines_run(world: World) -> tuple[str, ...]:
    churn = world.other_runs["churn"]
    version = add_version(churn, source=churn["model_uri"])
    _promoted(world, version)
    return (f"version {version} of registered model {NAME!r}", "experiment 'churn-training'",
            "not of this pipeline's 'fraud-training'", churn["run_id"])


def _deleted_run(world: World) -> tuple[str, ...]:
    version = add_version(world.summary)
    _promoted(world, version)
    _client().delete_run(world.summary["run_id"])  # a soft delete: MLflow still returns the run
    return (f"version {version} of registered model {NAME!r}", f"its run {world.summary['run_id']} was deleted",
            "mlflow runs restore")


def _promotion_naming(version: str) -> Callable[[World], tuple[str, ...]]:
    """A promotions row written by hand (a manual promotion) naming ``version``, which MLflow refuses
    as a version number: it used to be MLflow's INVALID_PARAMETER_VALUE, retried, naming no row."""
    def spoil(world: World) -> tuple[str, ...]:
        from include import warehouse

        warehouse.record_decision({
            "model_name": NAME, "as_of": DAY - dt.timedelta(days=1), "challenger_version": version,
            "challenger_run_id": world.summary["run_id"], "champion_version": "1", "decision": "promote",
            "promoted": True, "reason": "manual", "primary_metric": "", "promoted_at": dt.datetime.now(dt.UTC)})
        return (f"version {version} of registered model {NAME!r}", f"champion of ds={DAY}", "promotions table",
                "is not a version number", "known versions: ['1']")
    return spoil


def _signature_lacking(world: World) -> tuple[str, ...]:
    narrow = world.other_runs["narrow"]
    version = add_version(narrow, source=narrow["model_uri"])
    _promoted(world, version)
    return (f"version {version} of registered model {NAME!r}", "signature lacks the model input(s) "
            "['terminal_risk_30d']")


def _garbage_mlmodel(world: World) -> tuple[str, ...]:
    files = model_files("1", world.tmp / "spoilt-model")
    (files / "MLmodel").write_text("flavors: [python_function\n")
    version = add_version(world.summary, source=str(files))
    _promoted(world, version)
    return (f"version {version} of registered model {NAME!r}", "model files", "cannot be read", "ParserError",
            str(files / "MLmodel"))


REGISTRY_CASES: dict[str, Callable[[World], tuple[str, ...]]] = {
    "the promoted champion version deleted (the promotions table still names it)": _deleted_champion,
    "a non-numeric threshold tag on the champion (threshold: high)": _tag("threshold", "high"),
    "a threshold tag outside [0, 1] (threshold: 1.5)": _tag("threshold", "1.5"),
    "the champion version lacks its metrics tag": _tag("metrics", None),
    "the champion version lacks its as_of tag": _tag("as_of", None),
    "a metrics tag that is not JSON": _tag("metrics", "average_precision=0.9"),
    "a champion version made from another pipeline's run (experiment churn-training)": _other_pipelines_run,
    "a champion version whose signature lacks a model input (terminal_risk_30d)": _signature_lacking,
    "a champion version whose MLmodel file is garbage": _garbage_mlmodel,
    "the champion version's run deleted in MLflow (mlflow runs delete)": _deleted_run,
    "a promotions row naming version 'v2' (written by hand)": _promotion_naming("v2"),
    "a promotions row naming version '' (written by hand)": _promotion_naming(""),
}
EXPECT_PLAN = ("plan (scoring) fails without retry naming the version and the tag; no plan written, no "
               "prediction partition or warehouse row changed, aliases unchanged")


@pytest.mark.parametrize("what", sorted(REGISTRY_CASES))
def test_a_bad_registry_state_stops_scoring_at_plan(dags, world, reliability, what):
    case = reliability.case("bad input", f"model registry: {what}", expected=EXPECT_PLAN)
    names = REGISTRY_CASES[what](world)
    before = downstream(world.root)
    with pytest.raises(AirflowFailException) as stopped:
        _plan(dags)
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, *names)
    assert downstream(world.root) == before


def test_a_deleted_champion_without_promotion_history_stops_scoring_at_plan(dags, world, reliability):
    case = reliability.case("bad input", "model registry: the champion version deleted, no promotion history "
                                         "(MLflow drops its alias)",
                            expected="plan (scoring) fails without retry naming the model and the missing "
                                     "champion alias; nothing downstream changed")
    from sqlalchemy import delete

    from include import warehouse

    with warehouse.engine().begin() as conn:  # a registry used before the promotions table existed
        conn.execute(delete(warehouse.promotions))
    _client().delete_model_version(NAME, "1")
    before = downstream(world.root)
    with pytest.raises(AirflowFailException) as stopped:
        _plan(dags)
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"ds={DAY}", f"registered model {NAME!r} has no champion alias")
    assert downstream(world.root) == before


# --- published feature partitions: stopped at plan (scoring) ------------------------------------------

def _nan_as_spark_writes_it(frame: pd.DataFrame, column: str, rows: int) -> pa.Table:
    """``frame`` with ``rows`` NaN in ``column``, as floating-point NaN (what Spark writes), not null."""
    values = frame[column].to_numpy(copy=True)
    values[:rows] = np.nan
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, from_pandas=False))


def _spoil(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path, pd.DataFrame], None]:
    def spoil(path: Path, frame: pd.DataFrame) -> None:
        write_parquet_atomic(change(frame), path)
    return spoil


def _write_nan(path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(_nan_as_spark_writes_it(frame, "customer_avg_amount_7d", 3), path, coerce_timestamps="us")


def _write_table(change: Callable[[pa.Table], pa.Table]) -> Callable[[Path, pd.DataFrame], None]:
    """A spoiler that writes the partition as an Arrow table changed by ``change`` (what pandas cannot
    write: a struct of the right name, a column name twice)."""
    def spoil(path: Path, frame: pd.DataFrame) -> None:
        pq.write_table(change(pa.Table.from_pandas(frame, preserve_index=False)), path, coerce_timestamps="us")
    return spoil


def _truncate(path: Path, frame: pd.DataFrame) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set(column: str, rows: int, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype("float64")
        frame.loc[frame.index[:rows], column] = value
        return frame
    return change


PARTITION_CASES: dict[str, tuple[Callable[[Path, pd.DataFrame], None], tuple[str, ...]]] = {
    "3 NaN in customer_avg_amount_7d (floating-point NaN, as Spark writes it)": (
        _write_nan, ("column customer_avg_amount_7d has 3 NaN",)),
    "2 nulls in terminal_risk_1d": (_spoil(_set("terminal_risk_1d", 2, np.nan)), ("column terminal_risk_1d has 2 null",)),
    "+inf in customer_avg_amount_30d": (_spoil(_set("customer_avg_amount_30d", 1, np.inf)),
                                        ("column customer_avg_amount_30d has 1 infinite",)),
    "an empty partition (0 rows)": (_spoil(lambda f: f.iloc[:0]), ("0 rows", "raw/transactions ds=")),
    "a missing column (terminal_risk_30d)": (_spoil(lambda f: f.drop(columns="terminal_risk_30d")),
                                             ("missing column(s) ['terminal_risk_30d']",)),
    "an extra column (card_pin)": (_spoil(lambda f: f.assign(card_pin=1234)), ("unexpected column(s) ['card_pin']",)),
    "fewer rows than the day's raw transactions (one dropped)": (
        _spoil(lambda f: f.iloc[1:]), ("rows, but raw/transactions ds=", "(one feature row per transaction)")),
    "a truncated parquet file": (_truncate, ("not a readable parquet file",)),
    "tx_amount of the right name written as text ('12.5')": (
        _spoil(lambda f: f.assign(tx_amount=f["tx_amount"].map(str))),
        ("column tx_amount is ", "string, not a number (integer, float or bool)")),  # large_string from pandas
    "terminal_risk_7d of the right name as a struct {value: double}": (
        _write_table(lambda t: t.set_column(t.schema.get_field_index("terminal_risk_7d"), "terminal_risk_7d",
                                            pa.StructArray.from_arrays([t["terminal_risk_7d"].combine_chunks()],
                                                                       ["value"]))),
        ("column terminal_risk_7d is struct<value: double>, not a number",)),
    "transaction_id as text and tx_datetime as ISO strings": (
        _spoil(lambda f: f.assign(transaction_id=f["transaction_id"].map(str),
                                  tx_datetime=f["tx_datetime"].map(lambda t: t.isoformat()))),
        ("column transaction_id is ", "string, not an integer", "column tx_datetime is ", "string, not a timestamp")),
    "tx_amount written twice (same name)": (
        _write_table(lambda t: t.append_column("tx_amount", t["tx_amount"])),
        ("column(s) written more than once ['tx_amount']",)),
}
EXPECT_PARTITION = ("plan (scoring) fails without retry naming the partition, the file, the column and the "
                    "count; no plan written, no prediction partition or warehouse row changed, aliases unchanged")


@pytest.mark.parametrize("what", sorted(PARTITION_CASES))
def test_a_bad_feature_partition_stops_scoring_at_plan(dags, world, reliability, what):
    spoil, names = PARTITION_CASES[what]
    case = reliability.case("bad input", f"published features: {what}", expected=EXPECT_PARTITION)
    path = partition_file("features", "baseline", DAY, world.root)
    spoil(path, world.features[DAY])
    before = downstream(world.root)
    with pytest.raises(AirflowFailException) as stopped:
        _plan(dags)
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, f"features/baseline ds={DAY} ({path})", *names)
    assert downstream(world.root) == before


def test_a_missing_feature_partition_is_retried(dags, world, reliability):
    case = reliability.case("bad input", "published features: the day's partition is not there (yet)",
                            expected="plan (scoring) fails with a retryable error naming the partition; nothing "
                                     "downstream changed")
    partition_file("features", "baseline", DAY, world.root).unlink()
    before = downstream(world.root)
    with pytest.raises(FileNotFoundError) as stopped:  # MissingInputError: not an AirflowFailException, retried
        _plan(dags)
    assert not isinstance(stopped.value, AirflowFailException)
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"features/baseline ds={DAY}", "no partition at")
    assert downstream(world.root) == before


def test_staged_predictions_gone_before_publish_fail_it_without_retry(dags, world, reliability):
    case = reliability.case("faults", "scoring: the staged predictions of a planned day gone before publish",
                            expected="publish (scoring) fails without retry naming the day and the staging "
                                     "folder; no prediction partition or warehouse row changed")
    planned = _plan(dags)  # the plan is written, the score job never staged anything
    before = downstream(world.root)
    publish = dags.get_dag("scoring").get_task("publish").python_callable
    with pytest.raises(AirflowFailException) as stopped:
        publish(plan=planned, outlet_events=None)
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"no staged predictions for ds={DAY}", planned["staging"], "clear the run from plan")
    assert downstream(world.root) == before


# --- the registry command line --------------------------------------------------------------------------

def test_the_registry_command_on_an_unknown_model_is_one_line(world, capsys, reliability):
    case = reliability.case("bad input", "registry command line: show --model no-such-model",
                            expected="exit code 2 and one line on stderr naming the model and the known ones; no "
                                     "traceback; nothing changed")
    before = downstream(world.root)
    assert registry.main(["show", "--model", "no-such-model"]) == 2
    assert registry.main(["rollback", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    case.observed = f"exit 2: {lines[0]}"
    assert len(lines) == 2 and "Traceback" not in err, err
    _assert_names(lines[0], "error: no registered model 'no-such-model'", f"known: ['{NAME}']")
    assert downstream(world.root) == before
    assert registry.main(["show"]) == 0  # the known one still shows


def _promotion_rows() -> list[dict]:
    from sqlalchemy import select

    from include import warehouse

    with warehouse.engine().connect() as conn:
        return [dict(r) for r in conn.execute(select(warehouse.promotions)).mappings().all()]


def test_a_rollback_to_the_champion_itself_or_a_second_rollback_is_refused(world, capsys, reliability):
    """previous_champion set by hand on the champion's own version: the rollback used to 'succeed', tag
    the champion rolled_back (withdrawn) and record a rollback 2 -> 2 while it went on scoring. A second
    rollback in a row finds no previous_champion (the first one consumed it)."""
    case = reliability.case("bad input", "registry command line: rollback with previous_champion on the champion's "
                                         "own version, then two rollbacks in a row",
                            expected="exit 1, one line naming the version and why nothing can be rolled back; no "
                                     "alias, tag or promotions row changed; the second of two rollbacks likewise")
    version = add_version(world.summary)
    _promoted(world, version)  # champion 2, previous_champion 1
    _client().set_registered_model_alias(NAME, registry.PREVIOUS, version)
    before, rows = downstream(world.root), _promotion_rows()
    assert registry.main(["rollback"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    _assert_names(err, f"previous_champion is the champion itself (version {version})")
    assert downstream(world.root) == before and _promotion_rows() == rows
    assert "rolled_back" not in _client().get_model_version(NAME, version).tags

    _client().set_registered_model_alias(NAME, registry.PREVIOUS, "1")
    assert registry.main(["rollback"]) == 0  # champion 1 again, 2 withdrawn
    capsys.readouterr()
    before, rows = downstream(world.root), _promotion_rows()
    assert registry.main(["rollback"]) == 1
    second = capsys.readouterr().err.strip()
    _assert_names(second, "nothing to roll back to (champion 1, previous_champion None)")
    assert downstream(world.root) == before and _promotion_rows() == rows
    case.observed = f"exit 1: {err} / second rollback: exit 1: {second}"


def test_a_rollback_with_a_blank_model_name_rolls_nothing_back(world, capsys, reliability):
    """``rollback --model "$MODEL"`` with MODEL unset: the blank name used to mean the training
    configuration's model, which was rolled back."""
    case = reliability.case("bad input", "registry command line: rollback --model '' (a script's unset variable)",
                            expected="exit 2, one line saying the name is blank; no alias, tag or promotions row "
                                     "changed")
    _promoted(world, add_version(world.summary))  # champion 2, previous_champion 1: a rollback would move
    before, rows = downstream(world.root), _promotion_rows()
    assert registry.main(["rollback", "--model", ""]) == 2
    err = capsys.readouterr().err.strip()
    case.observed = f"exit 2: {err}"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    _assert_names(err, "--model '' is blank")
    assert downstream(world.root) == before and _promotion_rows() == rows


def test_the_registry_command_with_the_registry_unreachable_is_one_line(data_root, capsys, monkeypatch, reliability):
    from tests.fault_tools import closed_port

    case = reliability.case("unreachable services", "registry command line: show with MLFLOW_TRACKING_URI on a "
                                                    "closed port",
                            expected="exit code 1 and one line on stderr saying the registry failed, naming where "
                                     "it was looked for; no traceback")
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    assert registry.main(["show"]) == 1
    err = capsys.readouterr().err
    case.observed = f"exit 1: {err.strip()[:250]}"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    _assert_names(err, "error: the model registry failed", uri.removeprefix("http://"))


# --- the Spark job: corrupted model files ---------------------------------

def _fast_retries(dag):
    for task in dag.tasks:
        task.retry_delay = task.max_retry_delay = dt.timedelta(seconds=1)
    return dag


@pytest.mark.spark
@pytest.mark.slow
def test_a_corrupted_model_file_stops_the_score_job_without_retry(dags, world, reliability):
    case = reliability.case("bad input", "model registry: the champion's python_model.pkl truncated in the "
                                         "artifact store (scoring DAG, dag.test)",
                            expected="plan passes (the MLmodel file is intact); the score job prints one "
                                     "BATCHML-ERROR line naming the version and exits 78; score fails without "
                                     "retry; validate_predictions and publish upstream_failed; nothing downstream "
                                     "changed")
    files = model_files("1", world.tmp / "truncated-model")
    pickle = files / "python_model.pkl"
    pickle.write_bytes(pickle.read_bytes()[:64])
    version = add_version(world.summary, source=str(files))
    _promoted(world, version)
    before = downstream(world.root)
    dag = _fast_retries(dags.get_dag("scoring"))
    run = dag.test(run_conf={"start": str(DAY), "end": str(DAY)})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    states = {t: str(ti.state) for t, ti in tis.items()}
    message = _failure_message(run, "score")
    case.observed = (f"{', '.join(f'{t} {s}' for t, s in sorted(states.items()))}; score tried "
                     f"{tis['score'].try_number} time(s); {message[message.index('AirflowFailException'):][:300]}")
    assert states["plan"] == "success" and states["score"] == "failed", states
    assert tis["score"].try_number == 1, "retried"
    assert states["validate_predictions"] == states["publish"] == "upstream_failed"
    _assert_names(message, "AirflowFailException", "bad registry state", f"version {version} of registered model "
                  f"{NAME!r}", f"models:/{NAME}/{version}", "does not load", "spark-submit exit code 78")
    after = downstream(world.root)
    assert after.pop("scoring plans") and before.pop("scoring plans") == []  # plan ran: its plan is staged
    assert after == before


def test_the_shipped_training_config_names_the_registered_model():
    """The names tests/scoring_registry.py assumes."""
    from include.training.config import DEFAULT_PATH

    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    assert (raw["registered_model"], raw["experiment"]) == (NAME, "fraud-training")

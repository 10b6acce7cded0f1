"""A corpus of bad input: raw transactions, labels, features, configuration, Airflow Variables and
connections. Each case is stopped by the first step that can see it, with a message naming what
(column, expectation, key) and where (partition, file, Variable, connection); nothing downstream runs,
nothing is published, nothing is lost (the rejected file is kept in quarantine with failure.json,
earlier partitions stay as they were). Every case records itself in docs/reliability.md.

Most cases call the real step (the operator or task callable, Great Expectations, the config loaders)
directly; a few run the DAG with ``dag.test()`` where "nothing downstream runs" must be read from the
real task states. The features cases spoil one day of features computed by the pandas oracle
(tests/reference_features.py): no Spark runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions
from include.storage import landing_file, partition_file, write_parquet_atomic
from tests.conftest import REPO, SMALL
from tests.task_context import FakeTI

DAY = SMALL.start_date + dt.timedelta(days=10)  # ten days ingested before; its labels are those of DAY - 7
FEATURE_DAY = SMALL.start_date + dt.timedelta(days=40)
EXPECT_INGEST = "validate_{source} (ingest) fails without retry; no raw partition; file quarantined with failure.json"


# --- shared helpers -----------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(root: Path, zone: str) -> dict[str, str]:
    """Checksum of every published partition of a zone: "nothing lost" means this does not change."""
    return {str(p.relative_to(root)): _sha(p) for p in sorted((root / zone).glob("*/ds=*/data.parquet"))}


def _first_lines(message: str, n: int = 3) -> str:
    return " / ".join(line.strip() for line in str(message).splitlines()[:n])[:600]


def _assert_names(message: str, *fragments: str) -> None:
    missing = [f for f in fragments if f not in message]
    assert not missing, f"the message does not name {missing}:\n{message}"


def _change(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    """A spoiler that rewrites a parquet file through a DataFrame change."""
    def spoil(path: Path) -> None:
        write_parquet_atomic(change(pd.read_parquet(path)), path)
    return spoil


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _csv_as_parquet(path: Path) -> None:
    frame = pd.read_parquet(path)
    path.write_text(frame.to_csv(index=False))


def _at(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    """``frame`` with one cell replaced (the column's dtype widened when the value needs it)."""
    frame = frame.copy()
    if isinstance(value, float) and frame[column].dtype.kind in "iu":
        frame[column] = frame[column].astype("float64")
    frame.loc[frame.index[row], column] = value
    return frame


def _validate(dataset: str, days, **kwargs) -> None:
    """The real checkpoint operator of the step (what validate_<source> / validate_features run)."""
    from batchml.operators import GXCheckpointOperator

    GXCheckpointOperator(task_id=f"check_{dataset}", dataset=dataset, partitions=[str(d) for d in days],
                         **kwargs).execute(context={"ti": FakeTI()})


# --- raw landing files (ingest: validate_transactions / validate_labels) -----------------------------

@dataclass(frozen=True)
class BadFile:
    source: str  # transactions | labels
    what: str  # the case, as the report shows it
    spoil: Callable[[Path], None]  # rewrites the landing file of DAY in place
    names: tuple[str, ...]  # what the message must name besides the partition and the file


def _future(frame: pd.DataFrame) -> pd.DataFrame:
    stamp = pd.Timestamp("2099-01-01 12:00", tz="UTC")
    return frame.assign(tx_datetime=frame["tx_datetime"].where(frame.index != 0, stamp))


BAD_FILES = [
    BadFile("transactions", "a renamed column (tx_amount -> amount)",
            _change(lambda f: f.rename(columns={"tx_amount": "amount"})),
            ("expect_table_columns_to_match_set", "missing columns ['tx_amount']", "unexpected columns ['amount']")),
    BadFile("transactions", "an extra column (card_pin)", _change(lambda f: f.assign(card_pin=1234)),
            ("expect_table_columns_to_match_set", "unexpected columns ['card_pin']")),
    BadFile("transactions", "tx_amount as text", _change(lambda f: f.assign(tx_amount=f["tx_amount"].astype(str))),
            ("column tx_amount: expect_column_values_to_be_in_type_list",)),
    BadFile("transactions", "customer_id as float (a schema change of a key)",
            _change(lambda f: f.assign(customer_id=f["customer_id"].astype("float64"))),
            ("column customer_id: expect_column_values_to_be_in_type_list", "float64")),
    BadFile("transactions", "a null customer_id", _change(lambda f: _at(f, "customer_id", 3, np.nan)),
            ("column customer_id: expect_column_values_to_not_be_null",)),
    BadFile("transactions", "duplicate transaction ids",
            _change(lambda f: _at(f, "transaction_id", 5, int(f["transaction_id"].iloc[4]))),
            ("column transaction_id: expect_column_values_to_be_unique",)),
    BadFile("transactions", "a negative amount", _change(lambda f: _at(f, "tx_amount", 2, -12.5)),
            ("column tx_amount: expect_column_values_to_be_between", "-12.5")),
    BadFile("transactions", "a huge outlier amount (1e12)", _change(lambda f: _at(f, "tx_amount", 2, 1e12)),
            ("column tx_amount: expect_column_values_to_be_between", "1 unexpected values")),
    BadFile("transactions", "a timestamp on the day before",
            _change(lambda f: f.assign(tx_datetime=f["tx_datetime"].where(
                f.index != 0, f["tx_datetime"].iloc[0] - pd.Timedelta("1D")))),
            ("column tx_datetime: expect_column_values_to_be_between",)),
    BadFile("transactions", "a timestamp in the future (2099)", _change(_future),
            ("column tx_datetime: expect_column_values_to_be_between", "2099-01-01")),
    BadFile("transactions", "an empty day (0 rows)", _change(lambda f: f.iloc[:0]),
            ("table: expect_table_row_count_to_be_between", "observed 0")),
    BadFile("transactions", "two thirds of the day missing", _change(lambda f: f.iloc[: len(f) // 3]),
            ("table: expect_table_row_count_to_be_between",)),
    BadFile("transactions", "a truncated parquet file", _truncate, ("table: file_is_readable_parquet",)),
    BadFile("transactions", "a CSV file saved as .parquet", _csv_as_parquet, ("table: file_is_readable_parquet",)),
    BadFile("labels", "a label value 2", _change(lambda f: _at(f, "tx_fraud", 1, 2)),
            ("column tx_fraud: expect_column_values_to_be_in_set",)),
    BadFile("labels", "labels for unknown transactions",
            _change(lambda f: f.assign(transaction_id=f["transaction_id"] + 10**9)),
            ("column transaction_id: expect_column_values_to_be_between",)),
    BadFile("labels", "a duplicated label row", _change(lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True)),
            ("column transaction_id: expect_column_values_to_be_unique", "table: expect_table_row_count_to_be_between")),
    BadFile("labels", "a null label", _change(lambda f: _at(f, "tx_fraud", 0, np.nan)),
            ("column tx_fraud: expect_column_values_to_not_be_null",)),
]


@pytest.fixture
def landed(data_root, small_sim) -> Path:
    """Landing files up to DAY; raw transactions and labels of the days before, as ingest left them."""
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= DAY], data_root)
    write_raw_partitions(tx[tx["ds"] < DAY], data_root)
    return data_root


def test_the_unspoilt_landing_files_pass(landed):
    for source in ("transactions", "labels"):  # the control: each case below fails for its spoil alone
        _validate(f"raw_{source}", [DAY])


@pytest.mark.parametrize("bad", BAD_FILES, ids=lambda b: f"{b.source}-{b.what}")
def test_a_bad_landing_file_is_stopped_by_its_validation(landed, reliability, bad):
    case = reliability.case("bad input", f"raw {bad.source}: {bad.what}", expected=EXPECT_INGEST.format(source=bad.source))
    landing, before = landing_file(bad.source, DAY, landed), _snapshot(landed, "raw")
    bad.spoil(landing)
    delivered = _sha(landing)

    with pytest.raises(AirflowFailException) as stopped:  # fails without retry: a retry cannot fix the data
        _validate(f"raw_{bad.source}", [DAY])
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, f"raw_{bad.source} ds={DAY}", str(landing), *bad.names)

    assert not partition_file("raw", bad.source, DAY, landed).exists()  # nothing published
    kept = landed / "quarantine" / "landing" / bad.source / f"ds={DAY}"
    assert _sha(kept / landing.name) == delivered  # the file as delivered, for inspection
    failure = json.loads((kept / "failure.json").read_text())
    assert failure["success"] is False and failure["ds"] == str(DAY) and failure["failures"]
    assert _sha(landing) == delivered  # the delivery itself stays in landing/ too
    assert _snapshot(landed, "raw") == before  # earlier partitions untouched


def test_a_missing_labels_file_is_retried_naming_the_file(landed, reliability):
    case = reliability.case("bad input", "raw labels: the day's labels file is missing",
                            expected="validate_labels (ingest) fails and is retried (the upstream may be late); "
                                     "no raw partition")
    landing = landing_file("labels", DAY, landed)
    landing.unlink()
    with pytest.raises(AirflowException) as stopped:
        _validate("raw_labels", [DAY])
    assert not isinstance(stopped.value, AirflowFailException)  # retried with backoff
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"raw_labels ds={DAY}", "no file at", str(landing))
    assert not partition_file("raw", "labels", DAY, landed).exists()
    assert not (landed / "quarantine").exists()  # nothing to keep: nothing arrived


# --- Airflow Variables of the ingest row-count bounds ------------------------------------------------

def test_a_minimum_above_the_maximum_variable_is_a_configuration_error(landed, reliability):
    case = reliability.case("bad input", "Airflow Variable: batchml_min_daily_transactions above "
                                         "batchml_max_daily_transactions",
                            expected="validate_transactions (ingest) fails without retry naming both Variables; "
                                     "the landing file is not judged nor quarantined")
    landing = landing_file("transactions", DAY, landed)
    delivered = _sha(landing)
    with pytest.raises(AirflowFailException) as stopped:
        _validate("raw_transactions", [DAY], overrides={"min_rows": "5000", "max_rows": "100"})
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"raw_transactions ds={DAY}", "batchml_min_daily_transactions = 5000",
                  "batchml_max_daily_transactions = 100")
    assert not partition_file("raw", "transactions", DAY, landed).exists()
    assert not (landed / "quarantine").exists() and _sha(landing) == delivered


# --- features checkpoint (features: validate_features) ------------------------------------------------

FEATURE_CASES = {
    "NaN in customer_avg_amount_7d": (lambda f: _at(f, "customer_avg_amount_7d", 0, np.nan),
                                      ("column customer_avg_amount_7d: expect_column_values_to_not_be_null",)),
    "+inf in customer_avg_amount_30d": (lambda f: _at(f, "customer_avg_amount_30d", 0, np.inf),
                                        ("column customer_avg_amount_30d: expect_column_values_to_be_between",)),
    "terminal_risk_7d above 1": (lambda f: _at(f, "terminal_risk_7d", 0, 1.5),
                                 ("column terminal_risk_7d: expect_column_values_to_be_between",)),
    "a feature row missing (fewer rows than raw transactions)": (
        lambda f: f.iloc[1:], ("table: expect_table_row_count_to_be_between",)),
    "a duplicated feature row": (lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True),
                                 ("column transaction_id: expect_column_values_to_be_unique",)),
}


@pytest.fixture(scope="module")
def good_features(small_sim) -> pd.DataFrame:
    """A correct feature partition of FEATURE_DAY from the brute-force pandas oracle: no Spark needed
    to have something to spoil."""
    from include.pipelines.fraud.features.baseline import KEY_COLUMNS, OUTPUT_COLUMNS
    from tests.reference_features import reference_features

    tx = small_sim.transactions[small_sim.transactions["ds"] <= FEATURE_DAY]
    known = tx[tx["ds"] <= FEATURE_DAY - dt.timedelta(days=7)]  # labels arrive 7 days late
    features = reference_features(tx, known, [FEATURE_DAY]).merge(tx[KEY_COLUMNS], on="transaction_id")
    return features[OUTPUT_COLUMNS]


@pytest.fixture
def feature_day(data_root, small_sim, good_features) -> Path:
    """The raw transactions of FEATURE_DAY and its good, published feature partition."""
    tx = small_sim.transactions
    write_raw_partitions(tx[tx["ds"] == FEATURE_DAY], data_root)
    write_parquet_atomic(good_features, partition_file("features", "baseline", FEATURE_DAY, data_root))
    return data_root


def _stage(root: Path, frame: pd.DataFrame) -> tuple[Path, Path]:
    """``frame`` as the staged output of a rerun of FEATURE_DAY: (staging folder, staged file)."""
    staging = root / "_staging" / "rerun" / "features"
    staged = staging / f"ds={FEATURE_DAY}" / "part-00000.parquet"
    write_parquet_atomic(frame, staged)
    return staging, staged


def test_the_unspoilt_features_pass_the_checkpoint(feature_day, good_features):
    staging, _ = _stage(feature_day, good_features)  # the control: each case below fails for its spoil alone
    _validate("features_baseline", [FEATURE_DAY], staging=str(staging))


@pytest.mark.parametrize("what", sorted(FEATURE_CASES))
def test_bad_staged_features_are_stopped_by_the_features_checkpoint(feature_day, good_features, reliability, what):
    change, names = FEATURE_CASES[what]
    case = reliability.case("bad input", f"features: {what}",
                            expected="validate_features (features) fails without retry; the published partition "
                                     "of the day stays as it was; staged file quarantined with failure.json")
    before = _snapshot(feature_day, "features")
    staging, staged = _stage(feature_day, change(good_features))  # a rerun of the day whose job went wrong

    with pytest.raises(AirflowFailException) as stopped:
        _validate("features_baseline", [FEATURE_DAY], staging=str(staging))
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, f"features_baseline ds={FEATURE_DAY}", str(staged), *names)

    assert _snapshot(feature_day, "features") == before  # nothing published over the good partition
    kept = feature_day / "quarantine" / "features" / "baseline" / f"ds={FEATURE_DAY}"
    assert (kept / staged.name).exists() and json.loads((kept / "failure.json").read_text())["success"] is False


# --- configuration files (training.yaml, monitoring.yaml) ----------------------------------------------

def _training_yaml(tmp_path: Path, edit: Callable[[dict], None] | str) -> Path:
    """The shipped training.yaml with one edit (or a text that replaces it)."""
    from include.training.config import DEFAULT_PATH

    path = tmp_path / "training.yaml"
    if isinstance(edit, str):
        path.write_text(edit)
        return path
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


def _rename(raw: dict, old: str, new: str) -> None:
    raw[new] = raw.pop(old)


def _set(*path_and_value) -> Callable[[dict], None]:
    *path, key, value = path_and_value

    def edit(raw: dict) -> None:
        node = raw
        for part in path:
            node = node[part]
        node[key] = value
    return edit


TRAINING_CASES = {
    "a misspelt section (windows: instead of window:)": (lambda r: _rename(r, "window", "windows"),
                                                         ("unknown top-level key(s) ['windows']",)),
    "an unknown key in a section (gate.min_improvment)": (lambda r: _rename(r["gate"], "min_improvement",
                                                                            "min_improvment"),
                                                          ("unknown key(s) ['min_improvment'] in 'gate'",)),
    "a number written as text (window.train_days: fourteen)": (
        lambda r: r["window"].update(train_days="fourteen"), ("'window.train_days' must be an int", "'fourteen'")),
    "an impossible window (window.test_days: 0)": (lambda r: r["window"].update(test_days=0),
                                                   ("window needs train_days, test_days and folds >= 1",)),
    "an unknown model family (models[1].family: xgb)": (lambda r: r["models"][1].update(family="xgb"),
                                                        ("models[1]", "unknown family 'xgb'")),
    "not valid YAML": ("window:\n  train_days: [14\n", ("not valid YAML",)),
    # what: (edit of the shipped file, what the message must name besides the file)
    "a negative timeout (tuning.safety_timeout_seconds: -5)": (
        _set("tuning", "safety_timeout_seconds", -5), ("'tuning.safety_timeout_seconds' must be > 0, got -5",)),
    "no trials (tuning.trials: 0)": (_set("tuning", "trials", 0), ("'tuning.trials' must be >= 1, got 0",)),
    "a negative trial count for one model (models[3].trials: -1)": (
        _set("models", 3, "trials", -1), ("'models[3].trials' must be >= 1, got -1",)),
    "a NaN margin (gate.min_improvement: .nan)": (
        _set("gate", "min_improvement", float("nan")), ("'gate.min_improvement' must be a finite number, got nan",)),
    "a misspelt metric in the floor (gate.floor.average_precison)": (
        _set("gate", "floor", {"average_precison": 0.3}),
        ("'gate.floor.average_precison' names an unknown metric 'average_precison'; known: ['average_precision'",)),
    "a training window of ten million days (window.train_days: 10000000; OverflowError, retried)": (
        _set("window", "train_days", 10_000_000), ("'window.train_days' must be <= 3660, got 10000000",)),
    "a million tuning folds (window.folds: 1000000)": (
        _set("window", "folds", 1_000_000), ("'window.folds' must be <= 52, got 1000000",)),
    "an empty search range (models[1].search.max_depth: low 8, high 3)": (
        _set("models", 1, "search", "max_depth", {"low": 8, "high": 3, "int": True}),
        ("'models[1].search.max_depth' needs low <= high, got {'low': 8.0, 'high': 3.0, 'int': True}",)),
}


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.mark.parametrize("what", sorted(TRAINING_CASES))
def test_a_bad_training_config_stops_training_at_prepare(dags, data_root, tmp_path, monkeypatch, reliability, what):
    edit, names = TRAINING_CASES[what]
    case = reliability.case("bad input", f"training.yaml: {what}",
                            expected="prepare (training) fails without retry naming the file, the key, the value "
                                     "and the rule; no training set, no MLflow run")
    path = _training_yaml(tmp_path, edit)
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    prepare = dags.get_dag("training").get_task("prepare").python_callable
    with pytest.raises(AirflowFailException) as stopped:
        prepare(params={"as_of": str(SMALL.end_date)}, triggering_asset_events=None, logical_date=None)
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), str(path), *names)
    assert list(data_root.iterdir()) == []  # it stopped before reading or writing anything


MONITORING_CASES = {
    "psi_alert below psi_warn": ({"psi_alert": 0.05}, ("'psi_alert' must be >= psi_warn (0.1)", "0.05")),
    "a p-value threshold of 5": ({"ks_p_value": 5}, ("'ks_p_value' must lie in (0, 1)",)),
    "a threshold written as text (psi_alert: high)": ({"psi_alert": "high"}, ("'psi_alert' must be a float",)),
    "an unknown key (psi_alrt)": ({"psi_alrt": 0.2}, ("unknown key(s) ['psi_alrt']",)),
    "exclude_columns as a string, not a list (exclude_columns: tx_during_weekend)": (
        {"exclude_columns": "tx_during_weekend"}, ("'exclude_columns' must be a list, got 'tx_during_weekend'",)),
    "a misspelt excluded column (exclude_columns: [tx_during_wekend])": (
        {"exclude_columns": ["tx_during_wekend"]},
        ("'exclude_columns[0]' names an unknown column 'tx_during_wekend'; known: ['tx_amount', 'tx_during_weekend'",)),
    "more drifted columns required than are monitored (min_drifted_columns: 40)": (
        {"min_drifted_columns": 40}, (f"'min_drifted_columns' must be <= {len(MODEL_INPUTS)} (the monitored "
                                      f"columns: {len(MODEL_INPUTS)} model inputs less 1 excluded, plus the score), "
                                      "got 40",)),
}


@pytest.mark.parametrize("what", sorted(MONITORING_CASES))
def test_a_bad_monitoring_config_stops_check_drift(data_root, tmp_path, reliability, what):
    from batchml.operators import DriftCheckOperator

    from include.drift.config import DEFAULT_PATH

    changes, names = MONITORING_CASES[what]
    case = reliability.case("bad input", f"monitoring.yaml: {what}",
                            expected="check_drift (monitoring) fails without retry naming the file, the key, the "
                                     "value and the rule; no drift row, no report, no alert")
    path = tmp_path / "monitoring.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(DEFAULT_PATH.read_text()), **changes}))
    operator = DriftCheckOperator(task_id="check_drift", days=str(FEATURE_DAY), config_path=str(path))
    with pytest.raises(AirflowFailException) as stopped:
        operator.execute(context={"ti": FakeTI()})
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), str(path), *names)
    assert list(data_root.iterdir()) == []  # no report, no warehouse row


# --- whole DAG runs: the failed step and the states of everything after it --------------------------------

def _run(dag, **kwargs) -> tuple[object, dict[str, str]]:
    run = dag.test(**kwargs)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _events_of(run, asset: str) -> list:
    """The Asset events ``run`` emitted for ``asset`` (other tests share the metadata database)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(
            AssetModel.name == asset, AssetEvent.source_run_id == run.run_id)).all()


def _failure_message(run, task_id: str) -> str:
    """The error of a failed task, as its failure notifier recorded it in the warehouse alerts table."""
    from include import warehouse

    head = f"{run.dag_id}.{task_id} failed (run {run.run_id}"
    found = [a["message"] for a in warehouse.alerts_between(dt.date(2000, 1, 1), dt.date(2100, 1, 1))
             if a["message"].startswith(head)]
    assert found, f"no task_failure alert for {head}"
    return found[-1]


def _states(run, states: dict[str, str]) -> str:
    return f"run {run.state}; " + ", ".join(f"{t} {s}" for t, s in sorted(states.items()))


@pytest.mark.slow
def test_a_non_numeric_row_count_variable_stops_ingest(dags, landed, monkeypatch, reliability):
    case = reliability.case("bad input", "Airflow Variable: batchml_min_daily_transactions = 'abc'",
                            expected="validate_transactions (ingest) fails without retry naming the Variable; "
                                     "publish_transactions upstream_failed; no raw partition, no raw_transactions "
                                     "event; the landing file is not judged nor quarantined")
    monkeypatch.setenv("AIRFLOW_VAR_BATCHML_MIN_DAILY_TRANSACTIONS", "abc")
    landing, before = landing_file("transactions", DAY, landed), _snapshot(landed, "raw")
    delivered = _sha(landing)

    run, states = _run(dags.get_dag("ingest"), logical_date=dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC))
    message = _failure_message(run, "validate_transactions")
    case.observed = f"{_states(run, states)}; {message[message.index('AirflowFailException'):][:300]}"
    _assert_names(message, "AirflowFailException", f"raw_transactions ds={DAY}",
                  "Airflow Variable batchml_min_daily_transactions = 'abc'")
    assert str(run.state) == "failed"
    assert states["validate_transactions"] == "failed" and states["publish_transactions"] == "upstream_failed"
    assert states["validate_labels"] == states["publish_labels"] == "success"  # the labels do not depend on it
    assert _events_of(run, "raw_transactions") == [] and len(_events_of(run, "raw_labels")) == 1
    assert not partition_file("raw", "transactions", DAY, landed).exists()
    assert not (landed / "quarantine").exists() and _sha(landing) == delivered
    changed = {k: v for k, v in _snapshot(landed, "raw").items() if before.get(k) != v}
    assert list(changed) == [f"raw/labels/ds={DAY}/data.parquet"]  # only the good labels of the day were added


@pytest.mark.slow
def test_training_with_a_bad_config_runs_nothing_after_prepare(dags, data_root, tmp_path, monkeypatch, reliability):
    case = reliability.case("bad input", "training.yaml: a negative gap (window.gap_days: -1), whole DAG",
                            expected="prepare fails without retry; every task after it upstream_failed; no model "
                                     "version, no champion_model event")
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(_training_yaml(tmp_path, lambda r: r["window"].update(
        gap_days=-1))))
    run, states = _run(dags.get_dag("training"), run_conf={"as_of": str(SMALL.end_date)})
    message = _failure_message(run, "prepare")
    case.observed = f"{_states(run, states)}; {message[message.index('AirflowFailException'):][:300]}"
    _assert_names(message, "AirflowFailException", str(tmp_path / "training.yaml"), "gap_days >= 0")
    assert str(run.state) == "failed" and states.pop("prepare") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states
    assert _events_of(run, "champion_model") == []
    assert not (data_root / "training").exists() and not (data_root / "mlflow").exists()


@pytest.mark.slow
def test_a_champion_alias_pointing_at_nothing_stops_scoring_at_plan(dags, data_root, reliability):
    from include import registry

    case = reliability.case("bad input", "model registry: the champion alias points at no version",
                            expected="plan (scoring) fails without retry naming the model and the alias; score, "
                                     "validate_predictions, publish upstream_failed; no predictions")
    write_parquet_atomic(pd.DataFrame({"transaction_id": [1]}), partition_file("features", "baseline", FEATURE_DAY))
    registry.ensure_registered_model("fraud-detector")  # registered, but no version carries the alias
    run, states = _run(dags.get_dag("scoring"), run_conf={"start": str(FEATURE_DAY), "end": str(FEATURE_DAY)})
    message = _failure_message(run, "plan")
    case.observed = f"{_states(run, states)}; {message[message.index('AirflowFailException'):][:300]}"
    assert str(run.state) == "failed" and states.pop("plan") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states
    _assert_names(message, "AirflowFailException", "'fraud-detector' has no champion alias", f"ds={FEATURE_DAY}")
    assert _events_of(run, "predictions_fraud") == []
    assert not (data_root / "predictions").exists()


FEATURES_WITHOUT_SPARK_CONNECTION = """
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
run = bag.get_dag("features").test(run_conf={"start": sys.argv[2], "end": sys.argv[2]})
print("STATES=" + json.dumps({ti.task_id: str(ti.state) for ti in run.get_task_instances()}))
print("RUN=" + str(run.state))
"""


@pytest.mark.slow
def test_a_missing_spark_connection_stops_features_at_plan(landed, tmp_path, reliability):
    """The connection is removed from a copy of the metadata database, in a process of its own: the
    tests share the real one, and other tests need spark_default."""
    from airflow.configuration import conf

    case = reliability.case("bad input", "Airflow connection: spark_default missing",
                            expected="plan (features) fails without retry naming the connection; build_features, "
                                     "validate_features, publish upstream_failed; no features partition")
    url = conf.get("database", "sql_alchemy_conn")
    if not url.startswith("sqlite:///"):
        pytest.skip(f"copies a SQLite metadata database; this session uses {url.split(':')[0]}")
    copy = tmp_path / "airflow.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("DELETE FROM connection WHERE conn_id = 'spark_default'")
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_SPARK_DEFAULT"}
    env.update(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{copy}", BATCHML_DATA_ROOT=str(landed))
    day = str(DAY - dt.timedelta(days=1))
    done = subprocess.run([sys.executable, "-c", FEATURES_WITHOUT_SPARK_CONNECTION, str(REPO / "dags"), day],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    states = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("STATES="))[7:])
    case.observed = f"{', '.join(f'{t} {s}' for t, s in sorted(states.items()))}"
    assert states.pop("plan") == "failed" and set(states.values()) == {"upstream_failed"}, output[-3000:]
    _assert_names(output, "Airflow connection 'spark_default' is not defined", "AirflowFailException")
    case.observed += "; Airflow connection 'spark_default' is not defined; build_features (spark-submit) needs it"
    assert not (landed / "features").exists() and not (landed / "_staging").exists()


@pytest.mark.slow
@pytest.mark.spark
def test_a_published_raw_partition_spark_cannot_read_stops_build_features_without_retry(dags, landed, reliability):
    """A raw partition published with another column type (written by hand, or before ingest cast to
    the canonical schema): Spark's own read error is reported as one BATCHML-ERROR line naming the file
    and the column, and build_features fails without retry instead of retrying a JVM stack trace."""
    spoilt = DAY - dt.timedelta(days=3)
    case = reliability.case("bad input", "published raw partition: tx_amount stored as text (Spark cannot read it)",
                            expected="build_features (features) fails without retry, naming the partition file, "
                                     "the column and Spark's error class; validate_features and publish "
                                     "upstream_failed; no features partition, no features_baseline event")
    path = partition_file("raw", "transactions", spoilt, landed)
    frame = pd.read_parquet(path)
    write_parquet_atomic(frame.assign(tx_amount=frame["tx_amount"].astype(str)), path)
    day = str(DAY - dt.timedelta(days=1))

    run, states = _run(dags.get_dag("features"), run_conf={"start": day, "end": day})
    message = _failure_message(run, "build_features")
    case.observed = f"{_states(run, states)}; {_first_lines(message[message.index('AirflowFailException'):], 1)}"
    assert states.pop("plan") == "success" and states.pop("build_features") == "failed", case.observed
    assert set(states.values()) == {"upstream_failed"}, case.observed
    _assert_names(message, "AirflowFailException", "build_features: bad data: Spark FAILED_READ_FILE",
                  f"raw/transactions/ds={spoilt}/data.parquet", "[tx_amount]", "not retried")
    assert not (landed / "features").exists() and _events_of(run, "features_baseline") == []

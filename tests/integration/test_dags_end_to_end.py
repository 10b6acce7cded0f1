"""ingest and features through ``dag.test()`` with real Great Expectations, Spark (spark-submit
through the spark_default connection) and the Airflow metadata database of `make airflow-home`."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.pipelines.fraud.simulator import SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions
from include.storage import day_range, landing_file, partition_file, write_parquet_atomic
from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CFG = SimulatorConfig(n_customers=150, n_terminals=300, n_days=12, start_date=dt.date(2026, 6, 1), seed=21)
RUN_DAYS = day_range(dt.date(2026, 6, 9), dt.date(2026, 6, 11))  # days 9-11: labels arrive too


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def _run(dag, **kwargs):
    run = dag.test(**kwargs)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@pytest.fixture
def lake(data_root):
    tx = simulate(CFG).transactions
    write_landing_files(tx, data_root)
    write_raw_partitions(tx[tx["ds"] < RUN_DAYS[0]], data_root)  # earlier days were ingested before
    return data_root, tx


def test_ingest_then_features_end_to_end(dags, lake):
    root, tx = lake
    for day in RUN_DAYS:
        run, states = _run(dags.get_dag("ingest"), logical_date=_midnight(day))
        assert str(run.state) == "success", states
        assert set(states.values()) == {"success"}
        for source in ("transactions", "labels"):
            assert partition_file("raw", source, day, root).exists()

    # rerun one day: the partition is replaced, not appended to
    _run(dags.get_dag("ingest"), logical_date=_midnight(RUN_DAYS[1]))
    raw = pd.read_parquet(partition_file("raw", "transactions", RUN_DAYS[1], root))
    assert len(raw) == (tx["ds"] == RUN_DAYS[1]).sum() and raw["transaction_id"].is_unique

    conf = {"start": str(RUN_DAYS[0]), "end": str(RUN_DAYS[-1])}
    run, states = _run(dags.get_dag("features"), run_conf=conf)
    assert str(run.state) == "success", states
    for day in RUN_DAYS:
        feats = pd.read_parquet(partition_file("features", "baseline", day, root))
        assert len(feats) == (tx["ds"] == day).sum()
    assert not any((root / "_staging").glob("*/features")), "staging is cleaned after publishing"

    # a second backfill of the same range replaces the partitions
    run, _ = _run(dags.get_dag("features"), run_conf=conf)
    assert str(run.state) == "success"
    feats = pd.read_parquet(partition_file("features", "baseline", RUN_DAYS[0], root))
    assert len(feats) == (tx["ds"] == RUN_DAYS[0]).sum() and feats["transaction_id"].is_unique


def test_bad_day_stops_ingest_and_publishes_nothing(dags, lake):
    root, _ = lake
    day = RUN_DAYS[0]
    path = landing_file("transactions", day, root)
    frame = pd.read_parquet(path)
    write_parquet_atomic(frame.assign(tx_amount=frame["tx_amount"].where(frame.index != 0, -1.0)), path)

    run, states = _run(dags.get_dag("ingest"), logical_date=_midnight(day))
    assert str(run.state) == "failed"
    assert states["validate_transactions"] == "failed"
    assert states["publish_transactions"] in ("upstream_failed", "None")
    assert states["validate_labels"] == states["publish_labels"] == "success"  # the other source is unaffected
    assert not partition_file("raw", "transactions", day, root).exists()
    assert (root / "quarantine" / "landing" / "transactions" / f"ds={day}" / "failure.json").exists()


def test_a_range_run_loads_a_history_and_emits_one_event_per_source(dags, lake):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    root, tx = lake
    began = dt.datetime.now(dt.UTC)
    conf = {"start": str(RUN_DAYS[0]), "end": str(RUN_DAYS[-1])}
    run, states = _run(dags.get_dag("ingest"), logical_date=_midnight(RUN_DAYS[-1]), run_conf=conf)
    assert str(run.state) == "success" and set(states.values()) == {"success"}, states
    for day in RUN_DAYS:
        raw = pd.read_parquet(partition_file("raw", "transactions", day, root))
        assert len(raw) == (tx["ds"] == day).sum() and raw["transaction_id"].is_unique
        assert partition_file("raw", "labels", day, root).exists()
    with create_session() as session:
        for name in ("raw_transactions", "raw_labels"):
            asset = session.scalar(select(AssetModel).where(AssetModel.name == name))
            events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id,
                                                              AssetEvent.timestamp >= began)).all()
            assert [(e.extra["start"], e.extra["end"]) for e in events] == [(conf["start"], conf["end"])]

    # the features run those events trigger computes the range in one application
    from include.run_days import event_days

    assert event_days({"raw_transactions": events}) == RUN_DAYS

    bad = {"start": str(RUN_DAYS[-1]), "end": str(RUN_DAYS[0])}
    run, states = _run(dags.get_dag("ingest"), logical_date=_midnight(RUN_DAYS[0]), run_conf=bad)
    assert states["days"] == "failed" and "success" not in {states["publish_transactions"], states["publish_labels"]}

"""The shadow challenger's nightly scoring (dags/shadow_scoring.py, docs/shadow.md) through
``dag.test()``: the real Spark job, the real predictions checkpoint, the real MLflow registry and the
warehouse, on the scoring world of tests/scoring_registry.py (the champion, version 1, has published
the day's predictions).

- no ``shadow`` alias: the run is skipped (green), nothing written;
- the ``estimate`` task writes the shadow's estimate half of its ``performance_days`` row;
- a second registered version behind ``shadow``: its scores land in predictions/fraud_shadow and the
  warehouse's ``shadow_predictions``, and the champion's predictions are untouched;
- a second publish of the day replaces it (no duplicates);
- a shadow whose model files do not load fails the shadow DAG's ``score`` only: the champion's
  published predictions stay as they are (its scoring DAG runs before, and apart from, the shadow's).

Slow (three shadow runs through spark-submit): 65 to 111 s on the loaded 2-core machine.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include import registry, warehouse
from include.scoring import PREDICTIONS, SHADOW_PREDICTIONS, SHADOW_TARGET, publish_predictions
from include.storage import partition_file, staging_dir, write_parquet_atomic
from tests.conftest import REPO
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    add_version,
    downstream,
    log_model,
    model_files,
    publish_scored,
    scoring_world,
    scoring_world_template,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAY = DAYS[-1]
CONF = {"start": str(DAY), "end": str(DAY)}


def _run(dag) -> dict[str, str]:
    for task in dag.tasks:  # a failure is not retried for minutes
        task.retry_delay = task.max_retry_delay = dt.timedelta(seconds=1)
    run = dag.test(run_conf=CONF)
    return {"run": str(run.state), **{ti.task_id: str(ti.state) for ti in run.get_task_instances()}}


def _champion_side(root) -> dict:
    """include.tests.scoring_registry.downstream without the shadow's partitions."""
    out = downstream(root)
    out["prediction partitions"] = {k: v for k, v in out["prediction partitions"].items() if "fraud_shadow" not in k}
    return out


def _shadow_rows() -> pd.DataFrame:
    with warehouse.engine().connect() as conn:
        return pd.read_sql(warehouse.shadow_predictions.select(), conn)


def test_the_shadow_scores_beside_the_champion_and_never_stops_it(scoring_world, small_sim, monkeypatch):  # noqa: F811
    from airflow.dag_processing.dagbag import DagBag

    world = scoring_world
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[*]"}')
    publish_scored(world.root, DAY, world.features[DAY], "1", world.summary["run_id"])
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    shadow = bag.get_dag("shadow_scoring")

    # no shadow alias: skipped, green, nothing written
    states = _run(shadow)
    assert states["run"] == "success" and states["plan"] == "skipped", states
    assert not partition_file(*SHADOW_PREDICTIONS, DAY, world.root).exists() and _shadow_rows().empty

    # a second version (trained on the first day only) behind the shadow alias
    first = world.features[DAYS[0]]
    labels = first[["transaction_id"]].merge(small_sim.transactions[["transaction_id", "tx_fraud"]])["tx_fraud"]
    summary = log_model(first, labels, DAYS[0])
    version = add_version(summary)
    registry.set_alias(NAME, registry.SHADOW, version)
    before = _champion_side(world.root)  # the champion's partitions and warehouse rows, the aliases

    states = _run(shadow)
    assert states["run"] == "success" and states["estimate"] == "success", states
    # the estimate task: the shadow's estimate half of DAY + 7 (none yet: no labelled day of the version)
    [row] = warehouse.performance_between(DAY, DAY, NAME)
    assert (row["role"], row["model_version"], row["estimated"]) == ("shadow", version, True)
    assert row["estimate_note"].startswith(f"0 labelled frauds of version {version}"), row["estimate_note"]
    preds = pd.read_parquet(partition_file(*SHADOW_PREDICTIONS, DAY, world.root))
    features = world.features[DAY]
    for rerun in (False, True):
        assert sorted(preds["transaction_id"]) == sorted(features["transaction_id"])
        assert (preds["model_version"] == version).all() and preds["score"].between(0, 1).all()
        rows = _shadow_rows()
        assert len(rows) == rows["transaction_id"].nunique() == len(features)
        assert set(rows["model_version"]) == {version} and set(rows["ds"]) == {DAY}
        assert sorted(rows.columns) == sorted(c.name for c in warehouse.predictions.columns)
        assert _champion_side(world.root) == before  # the champion's predictions untouched
        if rerun:
            assert (rows["scored_at"].astype(str).str[:10] == "2030-01-01").all()  # the rerun's rows, only
            break
        # publish the day again (as a rerun does, from its staging): replaced, not appended
        staging = staging_dir("shadow-rerun", "shadow_scoring", root=world.root)
        preds = preds.assign(scored_at=pd.Timestamp("2030-01-01 01:00", tz="UTC"))
        write_parquet_atomic(preds, staging / f"ds={DAY}" / "part-00000.parquet")
        publish_predictions(staging, [{"ds": DAY.isoformat(), "model": {"version": version}}], world.root,
                            SHADOW_TARGET)
    assert not partition_file("reasons", "fraud_shadow", DAY, world.root).exists()

    # the shadow's model files broken: the shadow DAG's score fails, its last partition stays, and the
    # champion's predictions are as they were
    files = model_files(version, world.tmp / "broken-shadow")
    pickle = files / "python_model.pkl"
    pickle.write_bytes(pickle.read_bytes()[:64])
    registry.set_alias(NAME, registry.SHADOW, add_version(summary, source=str(files)))
    last = pd.read_parquet(partition_file(*SHADOW_PREDICTIONS, DAY, world.root))
    states = _run(shadow)
    assert states["run"] == "failed" and states["score"] == "failed", states
    assert states["validate_predictions"] == states["publish"] == states["estimate"] == "upstream_failed"
    assert pd.read_parquet(partition_file(*SHADOW_PREDICTIONS, DAY, world.root)).equals(last)
    after = _champion_side(world.root)
    assert after.pop("aliases") != before.pop("aliases") and after == before  # only the shadow alias moved
    champion = pd.read_parquet(partition_file(*PREDICTIONS, DAY, world.root))
    assert set(champion["model_version"]) == {"1"} and len(champion) == len(world.features[DAY])

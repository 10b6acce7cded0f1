"""Odd dates (docs/operations.md, "Odd dates"): a run dated in the future, and a backfill of days
before the first champion, end as a *skip with a reason* (AirflowSkipException: the run is not red,
nothing downstream runs, nothing is retried) and write nothing; a red failure is kept for what an
operator must fix: no champion at all.

Each case calls the DAG's own task callable as the DAG calls it (no ``dag.test()``, no Spark): the
ingest ``days`` task, the scoring ``plan`` task, the training ``prepare`` task. "Future" is judged in
UTC: a day D is over from D + 1 00:00 UTC. The scoring cases use the small scoring world
(tests/scoring_registry.py: raw and feature partitions of DAYS, version 1 champion, promoted by a
training run as of the day before DAYS[0]); "nothing written" is its :func:`downstream` (prediction
partitions, warehouse predictions, aliases, scoring plans) before and after.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.storage import partition_file, write_parquet_atomic
from tests.conftest import REPO
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    World,
    downstream,
    scoring_world,
    scoring_world_template,
    stand_in_features,
    write_world,
)

FIRST_AS_OF = DAYS[0] - dt.timedelta(days=1)  # the world's first (and only) promotion: scores from DAYS[0]
BEFORE = [FIRST_AS_OF - dt.timedelta(days=i) for i in (2, 1, 0)]  # three days no model was champion of


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag


def _call(dags, dag_id: str, task_id: str, **kwargs):
    """The task's callable, called as the DAG calls it."""
    return dags.get_dag(dag_id).get_task(task_id).python_callable(**kwargs)


@pytest.fixture
def spark_conn(monkeypatch):
    # scoring's plan checks the connection exists; outside a DAG run Airflow reads it from the environment
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "local[*]"}')


# --- a run dated in the future --------------------------------------------------------------------

@pytest.mark.parametrize("run", ["today (a manual run triggered now)", "tomorrow", "a range reaching into tomorrow"])
def test_ingest_of_a_day_not_over_is_skipped(dags, data_root, run):
    today = _today()
    kwargs = {"today (a manual run triggered now)": {"params": {}, "ds": today.isoformat()},
              "tomorrow": {"params": {}, "ds": (today + dt.timedelta(days=1)).isoformat()},
              "a range reaching into tomorrow": {"params": {"start": str(today - dt.timedelta(days=2)),
                                                            "end": str(today + dt.timedelta(days=1))}, "ds": None}}[run]
    first_not_over = today if run != "tomorrow" else today + dt.timedelta(days=1)
    with pytest.raises(AirflowSkipException, match=f"nothing to ingest: ds={first_not_over}") as skipped:
        _call(dags, "ingest", "days", **kwargs)
    assert f"is not over yet (today is {today} UTC); the run is skipped, not failed" in str(skipped.value)
    assert _files(data_root) == []  # nothing validated, quarantined or published


def test_ingest_of_a_day_that_is_over_runs(dags, data_root):
    """The control: yesterday (UTC) is over, and is the day the nightly run after midnight lands."""
    yesterday = (_today() - dt.timedelta(days=1)).isoformat()
    assert _call(dags, "ingest", "days", params={}, ds=yesterday) == [yesterday]


def test_ingest_without_a_day_fails_naming_what_is_missing(dags, data_root):
    with pytest.raises(AirflowFailException, match="no day to ingest: the run has no logical date and no 'start'"):
        _call(dags, "ingest", "days", params={}, ds=None)


def test_scoring_of_a_day_not_over_is_skipped(dags, scoring_world, spark_conn):  # noqa: F811 (fixture)
    before = downstream(scoring_world.root)
    today, tomorrow = _today(), _today() + dt.timedelta(days=1)
    with pytest.raises(AirflowSkipException, match=f"nothing to score: ds={today}..{tomorrow} is not over yet"):
        _call(dags, "scoring", "plan", params={"start": str(DAYS[-1]), "end": str(tomorrow)},
              triggering_asset_events=None, run_id="future")
    assert downstream(scoring_world.root) == before  # no plan staged, no prediction, aliases unchanged


def test_training_as_of_a_day_not_over_is_skipped(dags, data_root):
    today = _today()
    for as_of in (today, today + dt.timedelta(days=7)):
        with pytest.raises(AirflowSkipException, match=f"nothing to train as of: ds={as_of} is not over yet"):
            _call(dags, "training", "prepare", params={"as_of": str(as_of)}, triggering_asset_events=None,
                  logical_date=None)
    # no training set, no MLflow run or version, no decision: nothing at all under the data root
    assert _files(data_root) == []


# --- a backfill before the first champion ---------------------------------------------------------

@pytest.fixture
def early_features(scoring_world, small_sim) -> World:  # noqa: F811 (the imported fixture)
    """The world, with feature partitions of the days BEFORE its first champion (a history load)."""
    tx = small_sim.transactions
    for day in BEFORE:
        write_parquet_atomic(stand_in_features(tx[tx["ds"] == day]),
                             partition_file("features", "baseline", day, scoring_world.root))
    return scoring_world


def test_a_backfill_before_the_first_champion_is_skipped_with_the_reason(dags, early_features, spark_conn):
    from include import registry

    # the champion alias exists (version 1): these days must still not be scored with it
    assert str(registry.alias_version(NAME, registry.CHAMPION).version) == "1"
    before = downstream(early_features.root)
    with pytest.raises(AirflowSkipException) as skipped:
        _call(dags, "scoring", "plan", params={"start": str(BEFORE[0]), "end": str(BEFORE[-1])},
              triggering_asset_events=None, run_id="before-first-champion")
    assert str(skipped.value) == (f"no model was champion on ds={BEFORE[0]}..{BEFORE[-1]}: the first promotion of "
                                  f"'fraud-detector' was as of {FIRST_AS_OF} (it scores from the day after); "
                                  "these days stay unscored")
    assert downstream(early_features.root) == before


def test_a_range_across_the_first_champion_scores_only_the_days_from_it(dags, early_features, spark_conn):
    import json

    planned = _call(dags, "scoring", "plan", params={"start": str(BEFORE[0]), "end": str(DAYS[1])},
                    triggering_asset_events=None, run_id="across-first-champion")
    assert planned["days"] == [str(DAYS[0]), str(DAYS[1])]
    assert planned["models"] == {str(DAYS[0]): "1", str(DAYS[1]): "1"}
    assert [p["ds"] for p in json.loads(Path(planned["plans"]).read_text())] == planned["days"]


def test_no_champion_at_all_is_still_a_failure(dags, data_root, small_sim, spark_conn):
    """No promotion history and no alias: not a skip, an operator must run training first."""
    from include import registry
    from include.training import tracking

    write_world(data_root, small_sim.transactions)
    tracking.client()
    registry.ensure_registered_model(NAME)
    with pytest.raises(AirflowFailException, match=f"no model to score ds={DAYS[0]}: registered model "
                                                   "'fraud-detector' has no champion alias and no promotion"):
        _call(dags, "scoring", "plan", params={"start": str(DAYS[0]), "end": str(DAYS[-1])},
              triggering_asset_events=None, run_id="no-champion")
    assert not list(data_root.glob("_staging/*/scoring/plans.json"))

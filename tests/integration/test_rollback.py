"""A rollback governs the day it is done, through the scoring DAG (``dag.test()``, real spark-submit,
MLflow registry and warehouse).

The rule (dags/scoring.py's runbook, include.warehouse.champion_timeline): a rollback takes effect at
once. The rolled-back version is withdrawn: tonight's scoring and any rescore of a day it scored use
the restored version; days before its promotion keep their historical champion; a promotion recorded
after the rollback takes over again from its own day.
"""

from __future__ import annotations

import datetime as dt

import pytest

from include import registry, warehouse
from include.scoring import model_for_day
from tests.conftest import REPO
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    add_version,
    promote,
    publish_scored,
    scoring_world,
    scoring_world_template,
    versions_by_day,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# Three versions: 1 champion from DAYS[0], 2 from DAYS[1], 3 from DAYS[2]; the rollback (3 -> 2) is
# done on DAYS[3] (TONIGHT), the morning after DAYS[2] was scored by version 3.
D1, D2, D3, TONIGHT = DAYS


@pytest.fixture
def three_champions(scoring_world):  # noqa: F811 (the imported fixture)
    """Versions 1, 2, 3 of the world's run, each promoted by a training run as of the day before the day
    it first scores; D1..D3 scored and published by their champions (as the nightly runs published them)."""
    summary = scoring_world.summary  # version 1 is the world's champion from D1
    for day in (D1, D2, D3):
        version = "1" if day == D1 else add_version(summary)
        if day != D1:
            promote(version, day - dt.timedelta(days=1), summary["run_id"])
        publish_scored(scoring_world.root, day, scoring_world.features[day], version, summary["run_id"])
    assert versions_by_day() == {str(D1): ["1"], str(D2): ["2"], str(D3): ["3"]}
    return summary


def test_a_rollback_governs_tonight_and_the_rescore_of_the_withdrawn_days(three_champions, reliability):
    from airflow.dag_processing.dagbag import DagBag

    case = reliability.case(
        "faults", "rollback (champion 3 -> 2) the morning after version 3 scored its first day, then one "
                  "scoring DAG run (dag.test) of tonight's day and a rescore of the three days before",
        expected="tonight's day and the day version 3 had scored are scored by the restored version 2; the days "
                 "before version 3's promotion keep versions 1 and 2; a promotion recorded after the rollback "
                 "takes over again from its own day")
    rolled = registry.rollback(NAME, day=TONIGHT)
    assert rolled == {"champion": "2", "rolled_back": "3", "rescore_from": str(D3)}
    assert [model_for_day(NAME, d).version for d in DAYS] == ["1", "2", "2", "2"]

    # tonight's day and the rescore of the days before, in one run (one spark-submit)
    run = DagBag(dag_folder=str(REPO / "dags")).get_dag("scoring").test(run_conf={"start": str(D1),
                                                                                  "end": str(TONIGHT)})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    observed = versions_by_day()
    case.observed = f"model versions of the warehouse predictions by day: {observed}"
    assert observed == {str(D1): ["1"], str(D2): ["2"], str(D3): ["2"], str(TONIGHT): ["2"]}

    # a rerun of the training run that promoted version 3 marks its decision promoted again: the table
    # keeps the time of the first promotion, so the replay does not count as recorded after the rollback
    warehouse.mark_promoted(NAME, D3 - dt.timedelta(days=1), "3")
    assert [warehouse.champion_version_on(NAME, d) for d in DAYS] == ["1", "2", "2", "2"]

    # the rollback stands until a training recorded after it promotes a champion through the gate: that
    # one scores from the day after its as_of; the rollback still governs the days before
    promote("3", TONIGHT, three_champions["run_id"])
    after = TONIGHT + dt.timedelta(days=1)
    assert [warehouse.champion_version_on(NAME, d) for d in (*DAYS, after)] == ["1", "2", "2", "2", "3"]
    assert str(registry.alias_version(NAME, registry.CHAMPION).version) == "3"

"""A rerun replays no side effect (docs/operations.md): a recorded decision is history, not a command.

Promotion (real MLflow file registry, SQLite warehouse: tests/scoring_registry.py's world): a rerun
or clear of ``promote`` for a decision already carried out moves no alias, emits no Asset event and
skips with the reason, also after a rollback; a decision whose version a rollback withdrew since is
refused the same way; a new decision after the rollback, and a promotion interrupted after its alias
moved, still go through.

Monitoring (a small lake of drifted days, the reference fitted here): a rerun of a day that started
a drift episode, or of an earlier day after a later one started it, triggers no second retraining,
and the day keeps the fact that it started the episode. Odd dates: days not over yet, or before the
first champion, end as a skip with a reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException
from batchml.operators import DriftCheckOperator, ModelPromotionOperator

from include import registry, warehouse
from include.storage import partition_file, write_parquet_atomic
from include.training import pipeline
from include.training.config import load_training_config
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    add_version,
    promote,
    scoring_world,
    scoring_world_template,
)
from tests.task_context import FakeTI
from tests.unit.test_operators import _features

D1, D2, D3, TONIGHT = DAYS
# docs/reliability.md's section of these cases (the promises of docs/operations.md)
SECTION = "operations"


def _context(**extra) -> dict:
    return {"ti": FakeTI(), "params": {}, "triggering_asset_events": {},
            "outlet_events": defaultdict(SimpleNamespace), **extra}


def _decision(version: str, as_of: dt.date, run_id: str) -> dict:
    return {"promote": True, "promoted": False, "reason": "test: accepted", "version": version,
            "champion_version": None, "as_of": as_of.isoformat(), "model": "logistic", "run_id": run_id,
            "registered_model": NAME}


def _promotions() -> list[dict]:
    with warehouse.engine().connect() as conn:
        return [dict(r) for r in conn.execute(warehouse.promotions.select().order_by(warehouse.promotions.c.id))
                .mappings().all()]


def _aliases() -> dict[str, str]:
    return registry.describe(NAME)["aliases"]


def _run_promote(decision: dict) -> tuple[dict, dict]:
    """The training DAG's promote task on ``decision``; its result and its outlet events."""
    from include.assets import CHAMPION_MODEL

    context = _context()
    op = ModelPromotionOperator(task_id="promote", decision=decision, outlets=[CHAMPION_MODEL])
    return op.execute(context), dict(context["outlet_events"])


@pytest.fixture
def three_champions(scoring_world):  # noqa: F811 (the imported fixture)
    """Version 1 champion from D1 (the world's), 2 promoted as of D1, 3 as of D2; the run id of all."""
    run_id = scoring_world.summary["run_id"]
    for version, as_of in ((add_version(scoring_world.summary), D1), (add_version(scoring_world.summary), D2)):
        promote(version, as_of, run_id)
    assert _aliases() == {"champion": "3", "previous_champion": "2"}
    return run_id


def test_a_promote_rerun_after_a_rollback_moves_nothing_and_skips(three_champions, reliability):
    case = reliability.case(
        SECTION, "rollback (champion 3 -> 2), then a rerun of the training run that promoted version 3 "
                      "(gate and promote) and a clear of the promote task of the run that promoted version 2",
        expected="both promote tasks skip, naming when the decision was carried out and the champion now; no "
                 "alias moves, no champion_model event, the promotions table unchanged")
    rolled = registry.rollback(NAME, day=TONIGHT)
    assert rolled["champion"] == "2"
    aliases, rows = _aliases(), _promotions()

    challenger = {"as_of": D2.isoformat(), "version": "3", "model": "logistic", "run_id": three_champions,
                  "registered_model": NAME, "metrics": {"average_precision": 0.5}}
    replayed = pipeline.run_gate(challenger, load_training_config())  # the recorded decision, not a new one
    assert replayed["promote"] and replayed["promoted"]
    with pytest.raises(AirflowSkipException, match=rf"the promotion of version 3 as of {D2} was carried out at "
                                                   r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; a rerun changes nothing "
                                                   r"\(champion is now version 2\)") as skipped:
        _run_promote(replayed)
    with pytest.raises(AirflowSkipException, match=f"the promotion of version 2 as of {D1} was carried out"):
        _run_promote(_decision("2", D1, three_champions))
    assert _aliases() == aliases == {"champion": "2"} and _promotions() == rows
    case.observed = str(skipped.value)


def test_a_decision_for_a_withdrawn_version_is_refused_and_a_new_one_goes_through(three_champions):
    registry.rollback(NAME, day=TONIGHT)
    # a decision to promote version 3 taken before the rollback, never carried out (e.g. left awaiting approval)
    warehouse.record_decision({
        "model_name": NAME, "as_of": D3, "challenger_version": "3", "challenger_run_id": three_champions,
        "decision": "promote", "promoted": False, "reason": "test: accepted", "primary_metric": "average_precision",
        "decided_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)})
    rows = _promotions()
    with pytest.raises(AirflowSkipException, match=r"version 3 was withdrawn by a rollback at .* UTC, after the "
                                                   rf"decision as of {D3} to promote it.*\(champion is now version 2\)"):
        _run_promote(_decision("3", D3, three_champions))
    assert _aliases() == {"champion": "2"} and _promotions() == rows

    # a training recorded after the rollback decides on new evidence: the rollback stands until then
    promote("3", TONIGHT, three_champions)
    assert _aliases() == {"champion": "3", "previous_champion": "2"}
    tags = registry.tracking.client().get_model_version(NAME, "3").tags
    assert tags["promoted_as_of"] == TONIGHT.isoformat() and tags["rolled_back_to"] == "2"


def test_a_promotion_interrupted_after_the_alias_moved_is_completed(scoring_world):  # noqa: F811
    run_id = scoring_world.summary["run_id"]
    version = add_version(scoring_world.summary)
    warehouse.record_decision({
        "model_name": NAME, "as_of": D1, "challenger_version": version, "challenger_run_id": run_id,
        "champion_version": "1", "decision": "promote", "promoted": False, "reason": "test: accepted",
        "primary_metric": "average_precision"})
    registry.promote(NAME, version)  # the alias moved; the process died before the tags and the row
    result, events = _run_promote(_decision(version, D1, run_id))
    assert result["champion"] == version and not result["unchanged"]
    assert warehouse.decision_for(NAME, D1)["promoted"]
    assert registry.tracking.client().get_model_version(NAME, version).tags["promoted_as_of"] == D1.isoformat()
    assert [e.extra for e in events.values()] == [{"version": version, "as_of": D1.isoformat()}]


# --- monitoring ---------------------------------------------------------------------------------

MONITORED = [dt.date(2026, 8, 1) + dt.timedelta(days=i) for i in range(6)]


@pytest.fixture
def drifted_days(data_root, monkeypatch):
    """Six scored days, every one with amounts x3 against the reference: each alerts."""
    from include.drift import monitor
    from include.drift.reference import fit_distribution, fit_references
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS

    reference = {"features": fit_references(_features(5000, seed=0), MODEL_INPUTS),
                 "score": fit_distribution(np.random.default_rng(1).beta(1, 20, 5000)).as_dict()}
    monkeypatch.setattr(monitor, "load_reference", lambda run_id: reference)
    for i, day in enumerate(MONITORED):
        feats = _features(1500, seed=10 + i, amount_factor=3.0)
        write_parquet_atomic(feats, partition_file("features", "baseline", day, data_root))
        preds = pd.DataFrame({"transaction_id": np.arange(len(feats)), "model_version": "1", "run_id": "run-abc",
                              "score": np.random.default_rng(20 + i).beta(1, 20, len(feats)) * 2})
        write_parquet_atomic(preds, partition_file("predictions", "fraud", day, data_root))
    return data_root


def _monitor(days: list[dt.date]) -> list[dict]:
    op = DriftCheckOperator(task_id="check_drift", days=[d.isoformat() for d in days])
    return op.execute(_context())


def _report(root, day: dt.date) -> dict:
    return json.loads((root / "reports" / "drift" / f"ds={day}" / "report.json").read_text())


def test_a_monitoring_rerun_of_a_day_that_triggered_training_triggers_nothing(drifted_days, reliability):
    case = reliability.case(
        SECTION, "monitoring of a drifted day that triggered training, then a clear of check_drift for it",
        expected="the rerun's result does not trigger training (no drift_alert, no retraining) and says why; the "
                 "day's alert rows and report keep that it started the episode")
    day = MONITORED[0]
    (first,) = _monitor([day])
    assert first["triggers_training"] and first["alerts"]
    (rerun,) = _monitor([day])
    case.observed = f"rerun: triggers_training={rerun['triggers_training']}, {rerun.get('deduplicated_by')}"
    assert not rerun["triggers_training"] and rerun["alerts"] == first["alerts"]
    assert rerun["deduplicated_by"] == f"training already triggered for ds={day} by an earlier run"
    assert [a["triggered_training"] for a in warehouse.alerts_between(day, day)] == [True]
    report = _report(drifted_days, day)
    assert report["started_episode"] is True and report["triggers_training"] is False


def test_rerunning_an_earlier_day_after_a_later_one_triggered_starts_no_second_episode(drifted_days, reliability):
    case = reliability.case(
        SECTION, "monitoring backfill out of order: ds=D+3 monitored first (triggers training), then D..D+2",
        expected="one episode: only D+3 triggers training; the earlier days name it")
    later = _monitor([MONITORED[3]])
    earlier = _monitor(MONITORED[:3])
    case.observed = "; ".join(f"{r['ds']}: triggers_training={r['triggers_training']}, {r.get('deduplicated_by')}"
                              for r in earlier)
    assert later[0]["triggers_training"] and not any(r["triggers_training"] for r in earlier)
    assert {r["deduplicated_by"] for r in earlier} == {f"training already triggered for ds={MONITORED[3]}"}
    assert [a["ds"] for a in warehouse.alerts_between(MONITORED[0], MONITORED[-1]) if a["triggered_training"]] \
        == [MONITORED[3]]


def test_monitoring_days_not_over_yet_is_a_skip_with_a_reason(data_root, reliability):
    case = reliability.case(SECTION, "monitoring run for today and tomorrow (UTC): days not over yet",
                            expected="check_drift is skipped naming the days and today's UTC date; nothing written")
    today = dt.datetime.now(dt.UTC).date()
    with pytest.raises(AirflowSkipException, match=f"ds={today}..{today + dt.timedelta(days=1)} is not over yet") \
            as skipped:
        _monitor([today, today + dt.timedelta(days=1)])
    case.observed = str(skipped.value)
    assert not (data_root / "reports").exists()


def test_a_monitoring_backfill_before_the_first_champion_skips_those_days(scoring_world):  # noqa: F811
    # the world's version 1 was promoted as of D1 - 1: no day up to then was scored
    early = [D1 - dt.timedelta(days=3), D1 - dt.timedelta(days=2)]
    with pytest.raises(AirflowSkipException, match=rf"nothing to monitor on 2 day\(s\) {early[0]}..{early[1]}: "
                                                   rf"they lie before the first champion of '{NAME}'"):
        _monitor(early)
    assert not (scoring_world.root / "reports").exists()

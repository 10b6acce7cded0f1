"""State survives, or its loss is loud (docs/operations.md): the warehouse is a serving copy.

The registry's model-version tags hold the champion history (include.registry.champion_history), the
lake's drift reports hold the drift episodes. With the warehouse file deleted, or replaced by an
older copy, the champion of every past day is unchanged (rebuilt, with a WARNING naming what), days
before the first champion are still refused, a rerun of a gate reuses the decision its tags record,
and an old drift episode is not triggered again. Real MLflow file registry, SQLite warehouse
(tests/scoring_registry.py's world).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil

import pytest

from include import registry, warehouse
from include.scoring import BeforeFirstChampion, model_for_day
from include.training import pipeline, tracking
from include.training.config import load_training_config
from tests.integration.test_rerun_side_effects import (  # noqa: F401 (fixtures)
    MONITORED,
    SECTION,
    _monitor,
    _report,
    drifted_days,
    three_champions,
)
from tests.scoring_registry import (  # noqa: F401 (fixtures)
    DAYS,
    NAME,
    add_version,
    promote,
    scoring_world,
    scoring_world_template,
)

D1, D2, D3, TONIGHT = DAYS
SPAN = [D1 - dt.timedelta(days=3) + dt.timedelta(days=i) for i in range(10)]  # before the first champion .. after


def _champions() -> dict[dt.date, str | None]:
    timeline = warehouse.champion_timeline(NAME)
    return {d: warehouse.champion_version_on(NAME, d, timeline) for d in SPAN}


def _lose_warehouse(root, older=None) -> None:
    """The warehouse file deleted (``older``: replaced by that copy), as the next process finds it."""
    warehouse.dispose_engines()
    (root / "warehouse.db").unlink()
    if older is not None:
        shutil.copy2(older, root / "warehouse.db")


def test_a_lost_warehouse_gives_the_same_champion_of_every_day(scoring_world, three_champions, caplog,  # noqa: F811
                                                               reliability):
    case = reliability.case(
        SECTION, "the warehouse file deleted after three promotions and a rollback, then the champion of each day "
                 "asked for (as the scoring plan asks)",
        expected="the champion of every past day unchanged, rebuilt from the registry tags with a WARNING naming "
                 "each event; days before the first champion still refused (BeforeFirstChampion), not scored with "
                 "today's alias")
    registry.rollback(NAME, day=TONIGHT)
    before = _champions()
    assert before[D1 - dt.timedelta(days=1)] is None and before[D3] == "2"

    _lose_warehouse(scoring_world.root)
    with caplog.at_level(logging.WARNING, logger="include.warehouse"):
        after = _champions()
    assert after == before
    (warning,) = [r.getMessage() for r in caplog.records if "rebuilt from the registry tags" in r.getMessage()]
    assert "promote as of" in warning and f"rollback as of {TONIGHT} (version 2, from version 3)" in warning
    case.observed = warning
    with pytest.raises(BeforeFirstChampion, match=f"the first promotion of '{NAME}' was made as of "
                                                  rf"{D1 - dt.timedelta(days=1)}"):
        model_for_day(NAME, D1 - dt.timedelta(days=1))
    caplog.clear()
    assert _champions() == before and not caplog.records  # rebuilt once, not on every read


def test_a_warehouse_restored_from_an_older_copy_gives_the_same_champion_of_every_day(scoring_world, tmp_path):  # noqa: F811
    run_id = scoring_world.summary["run_id"]
    version = add_version(scoring_world.summary)
    warehouse.record_decision({  # the copy is taken between the gate and the promotion
        "model_name": NAME, "as_of": D1, "challenger_version": version, "challenger_run_id": run_id,
        "champion_version": "1", "decision": "promote", "promoted": False, "reason": "test: accepted",
        "primary_metric": "average_precision"})
    warehouse.dispose_engines()
    older = shutil.copy2(scoring_world.root / "warehouse.db", tmp_path / "older.db")
    promote(version, D1, run_id)
    promote(add_version(scoring_world.summary), D2, run_id)
    registry.rollback(NAME, day=TONIGHT)  # 3 -> 2: version 3's days go to version 2
    before = _champions()
    assert [before[d] for d in DAYS] == ["1", "2", "2", "2"]

    _lose_warehouse(scoring_world.root, older)
    assert _champions() == before
    assert warehouse.decision_for(NAME, D1)["promoted"]  # the row the copy held, marked from the registry


def test_a_gate_rerun_after_warehouse_loss_reuses_the_decision_of_the_tags(scoring_world, three_champions):  # noqa: F811
    _lose_warehouse(scoring_world.root)
    challenger = {"as_of": D2.isoformat(), "version": "3", "model": "logistic", "run_id": three_champions,
                  "registered_model": NAME, "metrics": {"average_precision": 0.5}}
    c = tracking.client()
    for key, value in {"gate_decision": "promote", "gate_reason": "test: accepted", "gate_champion_version": "2",
                       "gate_decided_at": "2026-04-01T00:00:00+00:00"}.items():  # what run_gate records
        c.set_model_version_tag(NAME, "3", key, value)
    # no new decision: a new one would evaluate the champion on a training set this world does not have
    decision = pipeline.run_gate(challenger, load_training_config())
    assert (decision["promote"], decision["promoted"], decision["reason"]) == (True, True, "test: accepted")
    assert pipeline.promote(decision, load_training_config())["unchanged"].startswith(
        f"the promotion of version 3 as of {D2} was carried out")
    assert str(registry.alias_version(NAME, registry.CHAMPION).version) == "3"


def test_an_old_drift_episode_is_not_triggered_again_after_warehouse_loss(drifted_days, reliability):  # noqa: F811
    case = reliability.case(
        SECTION, "a drift episode triggered training, the warehouse file deleted, then the episode's days "
                 "monitored again",
        expected="no day triggers training again: the lake's reports say which day started the episode")
    first = _monitor(MONITORED[:2])
    assert [r["triggers_training"] for r in first] == [True, False]
    _lose_warehouse(drifted_days)
    again = _monitor(MONITORED[:3])
    case.observed = "; ".join(f"{r['ds']}: triggers_training={r['triggers_training']}, {r.get('deduplicated_by')}"
                              for r in again)
    assert not any(r["triggers_training"] for r in again)
    assert again[0]["deduplicated_by"] == f"training already triggered for ds={MONITORED[0]} by an earlier run"
    assert _report(drifted_days, MONITORED[0])["started_episode"] is True
    assert [a["ds"] for a in warehouse.alerts_between(MONITORED[0], MONITORED[2]) if a["triggered_training"]] \
        == [MONITORED[0]]


def _without(rows: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in rows]


def test_the_warehouse_rebuild_reloads_predictions_and_promotions(scoring_world, three_champions, capsys):  # noqa: F811
    from tests.scoring_registry import publish_scored, warehouse_predictions

    for day, version in ((D1, "1"), (D2, "2"), (D3, "3")):
        publish_scored(scoring_world.root, day, scoring_world.features[day], version, three_champions)
    registry.rollback(NAME, day=TONIGHT)
    predictions, days = warehouse_predictions(), warehouse.prediction_days_between(D1, TONIGHT)
    champions = _champions()

    _lose_warehouse(scoring_world.root)
    assert warehouse.main(["rebuild"]) == 0
    summary = capsys.readouterr().out
    assert f'"{NAME}": 4' in summary  # three promotions and the rollback
    assert warehouse_predictions().equals(predictions) and warehouse.prediction_days_between(D1, TONIGHT) == days
    assert _champions() == champions
    assert warehouse.main(["rebuild"]) == 0 and f'"{NAME}": 0' in capsys.readouterr().out  # idempotent
    assert warehouse_predictions().equals(predictions)


def test_the_warehouse_rebuild_reloads_drift_and_alerts_from_the_reports(drifted_days):  # noqa: F811
    _monitor(MONITORED[:3])
    drift = _without(warehouse.drift_between(MONITORED[0], MONITORED[-1]), "id")
    alerts = _without(warehouse.alerts_between(MONITORED[0], MONITORED[-1]), "id", "raised_at")
    assert [a["triggered_training"] for a in alerts] == [True, False, False]

    _lose_warehouse(drifted_days)
    result = warehouse.rebuild()  # this lake's predictions hold only what monitoring reads: not reloaded
    assert len(result["not_reloaded"]) == len(MONITORED)
    assert result["monitoring_days"] == [d.isoformat() for d in MONITORED[:3]]
    assert _without(warehouse.drift_between(MONITORED[0], MONITORED[-1]), "id") == drift
    assert _without(warehouse.alerts_between(MONITORED[0], MONITORED[-1]), "id", "raised_at") == alerts

"""Promotion on shadow evidence (issue 16 §3; include/training/shadow.py): a challenger that wins offline
and loses in shadow is not promoted; one that wins in shadow is promoted after ``shadow.days`` label days
and not before; ``days: 0`` keeps the immediate promotion; a rejected challenger is observed in shadow.

The world is tests/scoring_registry.py's (real MLflow registry, version 1 the champion). The offline
figures of both models and their realised shadow figures are computed by the real evaluation code
(include.training.metrics.evaluate, include.drift.monitor.performance_verdict) on labelled frames of the
simulation where one model's scores carry the labels' signal and the other's mostly noise, and the
realised rows reach the warehouse through the function monitoring writes them with.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml

from include import registry, warehouse
from include.config import ConfigError
from include.drift.config import load_monitoring_config
from include.drift.monitor import performance_verdict
from include.drift.performance import parts
from include.training import pipeline, shadow, tracking
from include.training.config import DEFAULT_PATH, load_training_config, parse_training_config
from include.training.gate import decide
from include.training.metrics import evaluate
from tests.scoring_registry import NAME, add_version, scoring_world, scoring_world_template  # noqa: F401

T = dt.date(2026, 4, 17)  # the challenger's training run
DELAY = 7
THRESHOLD = 0.5


def _config(**shadow_section):
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw["shadow"] = {"days": 3, "min_frauds": 30, "tolerance": 0.01, **shadow_section}
    return parse_training_config(raw, source="tests/integration/test_shadow_promotion.py")


def _frame(small_sim, day: dt.date):
    tx = small_sim.transactions
    return tx[tx["ds"] == day].reset_index(drop=True)


def _scores(frame, seed: int, signal: float):
    """Scores in [0, 1]: ``signal`` x the label plus uniform noise (signal 0: no information at all)."""
    noise = np.random.default_rng(seed).uniform(0, 1, len(frame))
    return (signal * frame["tx_fraud"].to_numpy() + noise) / (1 + signal)


def _challenger(world, small_sim, version: str, as_of: dt.date, better_offline: bool = True):
    """The challenger's summary and the gate's decision on offline figures of both models on a labelled frame."""
    frame = _frame(small_sim, dt.date(2026, 4, 5))
    strong, weak = (frame.assign(score=_scores(frame, s, g)) for s, g in ((1, 0.8), (2, 0.1)))
    mine, champion = (evaluate(strong, THRESHOLD), evaluate(weak, THRESHOLD))
    if not better_offline:
        mine, champion = champion, mine
    summary = {**world.summary, "version": version, "registered_model": NAME, "as_of": as_of.isoformat(),
               "metrics": mine, "best_params": {}, "train_rows": len(frame), "inputs_sha256": "0" * 64,
               "trials": 1, "tuning_seconds": 0}
    cfg = load_training_config()
    gate = cfg.gate.model_copy(update={"min_eval_frauds": 10})
    return summary, decide(mine, champion, gate, cfg.metrics.primary), champion


def _shadow_days(small_sim, version: str, champion_version: str, scored: list[dt.date], shadow_signal: float,
                 champion_signal: float) -> None:
    """Monitoring's realised rows of both models for the label days of ``scored`` (label day = scored + 7),
    each on a labelled frame of the simulation scored with the given signal."""
    mon = load_monitoring_config()
    for i, day in enumerate(scored):
        frame = _frame(small_sim, dt.date(2026, 4, 6) + dt.timedelta(days=i))
        arrival, written = day + dt.timedelta(days=DELAY), []
        for role, v, signal, seed in (("champion", champion_version, champion_signal, 10 + i),
                                      ("shadow", version, shadow_signal, 20 + i)):
            got = performance_verdict(frame.assign(score=_scores(frame, seed, signal)), {}, THRESHOLD, mon)
            written += parts(arrival, {**got, "model_version": v, "threshold": THRESHOLD}, None, DELAY, role=role)
        warehouse.replace_monitoring_day(arrival, NAME, champion_version, [], [], performance=written)


def _gate(world, small_sim, cfg, as_of=T, better_offline=True):
    version = add_version(world.summary)
    summary, decision, champion_metrics = _challenger(world, small_sim, version, as_of, better_offline)
    champion = registry.alias_version(NAME, registry.CHAMPION)
    return version, summary, pipeline.record_gate(decision, summary, champion, champion_metrics, cfg)


def _aliases() -> dict[str, str]:
    return registry.describe(NAME)["aliases"]


def test_a_challenger_that_wins_offline_and_loses_in_shadow_is_not_promoted(scoring_world, small_sim):  # noqa: F811
    cfg = _config()
    version, summary, gated = _gate(scoring_world, small_sim, cfg)
    assert not gated["promote"] and not gated["promoted"]
    assert warehouse.gate_decision_for(NAME, T)["decision"] == shadow.AWAITING
    assert _aliases() == {"champion": "1", "shadow": version}
    assert "awaiting shadow evidence" in tracking.client().get_model_version(NAME, version).description

    scored = [T + dt.timedelta(days=i) for i in (1, 2, 3)]
    _shadow_days(small_sim, version, "1", scored[:2], shadow_signal=0.05, champion_signal=0.8)
    waiting = shadow.review(cfg, scored[1] + dt.timedelta(days=DELAY))
    assert waiting["state"] == "waiting" and "2 of 3 label days" in waiting["reason"]
    assert _aliases() == {"champion": "1", "shadow": version}

    _shadow_days(small_sim, version, "1", scored, shadow_signal=0.05, champion_signal=0.8)
    day = scored[-1] + dt.timedelta(days=DELAY)
    refused = shadow.review(cfg, day)
    assert refused["state"] == "refused" and not refused["promoted"]
    assert refused["days"] == 3 and refused["shadow_mean"] < refused["champion_mean"] - cfg.shadow.tolerance
    assert f"{refused['shadow_mean']:.4f}" in refused["reason"] and f"{refused['champion_mean']:.4f}" in refused["reason"]
    assert _aliases() == {"champion": "1"}  # the champion stays, the shadow alias is gone
    row = warehouse.gate_decision_for(NAME, T)
    assert row["decision"] == shadow.REFUSED and "refused on shadow evidence" in row["reason"]
    assert [e["version"] for e in warehouse.champion_timeline(NAME)] == ["1"]

    assert shadow.review(cfg, day)["state"] == "none"  # a rerun changes nothing
    assert pipeline.run_gate(summary, cfg)["promote"] is False  # the training rerun replays the decision
    assert _aliases() == {"champion": "1"}


def test_a_challenger_that_wins_in_shadow_is_promoted_after_n_days_and_not_before(scoring_world, small_sim):  # noqa: F811
    cfg = _config()
    version, _, _ = _gate(scoring_world, small_sim, cfg)
    scored = [T + dt.timedelta(days=i) for i in (1, 2, 3)]
    _shadow_days(small_sim, version, "1", scored, shadow_signal=0.8, champion_signal=0.1)
    before = shadow.review(cfg, scored[1] + dt.timedelta(days=DELAY))
    assert before["state"] == "waiting" and _aliases()["champion"] == "1"

    day = scored[-1] + dt.timedelta(days=DELAY)
    done = shadow.review(cfg, day)
    assert done["state"] == "promoted" and done["promoted"] and done["shadow_mean"] > done["champion_mean"]
    assert _aliases() == {"champion": version, "previous_champion": "1"}
    timeline = warehouse.champion_timeline(NAME)
    assert (timeline[-1]["version"], timeline[-1]["from"]) == (version, day + dt.timedelta(days=1))
    assert warehouse.gate_decision_for(NAME, T)["decision"] == shadow.PROMOTED

    assert shadow.review(cfg, day)["state"] == "none"  # a rerun changes nothing
    # a training run as of the review day records its own decision beside the shadow promotion
    other, _, gated = _gate(scoring_world, small_sim, cfg, as_of=day, better_offline=False)
    assert gated["version"] == other and not gated["promote"]
    assert warehouse.champion_timeline(NAME) == timeline
    assert _aliases() == {"champion": version, "previous_champion": "1", "shadow": other}
    observed = shadow.review(cfg, day)
    assert observed["state"] == "observation" and not observed["promoted"]


def test_days_zero_promotes_at_once_and_a_rejected_challenger_is_observed(scoring_world, small_sim):  # noqa: F811
    cfg = _config(days=0)
    version, _, gated = _gate(scoring_world, small_sim, cfg)
    assert gated["promote"] and warehouse.gate_decision_for(NAME, T)["decision"] == "promote"
    assert "shadow" not in _aliases()
    rejected, _, gated = _gate(scoring_world, small_sim, cfg, as_of=T + dt.timedelta(days=1), better_offline=False)
    assert not gated["promote"] and _aliases()["shadow"] == rejected
    assert shadow.review(cfg, T + dt.timedelta(days=9))["state"] == "observation"


SHADOW_ERRORS = [
    ({"days": -1}, "'shadow.days' must be >= 0, got -1"),
    ({"days": 2.5}, "'shadow.days' must be an int, got 2.5"),
    ({"metric": "accuracy"}, "'shadow.metric' names an unknown shadow metric 'accuracy'; known: ['average_precision'"),
    ({"min_frauds": 0}, "'shadow.min_frauds' must be >= 1, got 0"),
    ({"tolerance": 1.5}, "'shadow.tolerance' must lie in [0, 1], got 1.5"),
    ({"dayz": 7}, "unknown key(s) ['dayz'] in 'shadow'; known: ['days', 'metric', 'min_frauds', 'tolerance']"),
]


@pytest.mark.parametrize(("section", "says"), SHADOW_ERRORS, ids=[str(s) for s, _ in SHADOW_ERRORS])
def test_a_bad_shadow_section_is_one_line_naming_the_key(tmp_path, section, says):
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw["shadow"] = {**raw["shadow"], **section}
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as refused:
        load_training_config(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{path}: {says}"), message


def test_the_shadow_metric_defaults_to_the_primary_metric():
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw["shadow"] = {"days": 7}
    raw["metrics"]["primary"] = "auc_roc"
    cfg = parse_training_config(raw)
    assert (cfg.shadow_metric, cfg.shadow.days, load_training_config().shadow.days) == ("auc_roc", 7, 0)


@pytest.mark.slow  # 6 and 11 s on a loaded machine (a child process imports MLflow)
@pytest.mark.parametrize("point", ["shadow.outcome_tagged", "shadow.champion_set"])
def test_a_review_killed_midway_is_completed_by_the_next_one(scoring_world, small_sim, tmp_path, point):  # noqa: F811
    """SIGKILL of the review in a child process at each failpoint; the next review completes it."""
    import os
    import signal
    import subprocess
    import sys

    cfg = _config()
    version, _, _ = _gate(scoring_world, small_sim, cfg)
    scored = [T + dt.timedelta(days=i) for i in (1, 2, 3)]
    _shadow_days(small_sim, version, "1", scored, shadow_signal=0.8, champion_signal=0.1)
    day = scored[-1] + dt.timedelta(days=DELAY)
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(DEFAULT_PATH.read_text()), "shadow": cfg.shadow.model_dump()}))
    killed = subprocess.run(
        [sys.executable, "-c", "import sys; from include.training.config import load_training_config; "
         "from include.training.shadow import review; review(load_training_config(), sys.argv[1])", day.isoformat()],
        env={**os.environ, "BATCHML_FAILPOINT": point, "BATCHML_TRAINING_CONFIG": str(path)}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert _aliases()["shadow"] == version  # nothing finished: the shadow still holds its alias

    done = shadow.review(cfg, day)
    assert done["state"] == "promoted" and "promoted on shadow evidence" in done["reason"]
    assert _aliases() == {"champion": version, "previous_champion": "1"}
    timeline = warehouse.champion_timeline(NAME)
    assert (timeline[-1]["version"], timeline[-1]["from"]) == (version, day + dt.timedelta(days=1))
    assert warehouse.gate_decision_for(NAME, T)["decision"] == shadow.PROMOTED
    assert shadow.review(cfg, day)["state"] == "none"

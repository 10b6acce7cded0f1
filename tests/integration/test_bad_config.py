"""Configuration files and DAG params nobody scripted: each bad one is refused by the first step that
reads it, with a message naming the file, the key, the value and the rule (or the param), and nothing
after that step runs: no training set, no MLflow run or version, no alias moved, no partition, no
warehouse row, no Asset event. Valid but unusual files and params are accepted.

The configuration cases call the real step (the training DAG's ``prepare``, the ``check_drift``
operator); the negative gate margin goes through the training DAG with ``dag.test()`` on a lake with a
champion; the params cases run each DAG with ``dag.test()``, where the task states say what ran.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from include.storage import partition_file
from tests.conftest import SMALL
from tests.integration.test_bad_input import (
    DAY,
    _assert_names,
    _events_of,
    _failure_message,
    _first_lines,
    _run,
    _snapshot,
    _states,
    dags,  # noqa: F401  (fixture)
    landed,  # noqa: F401  (fixture)
)
from tests.training_config import small_config_dict

NAME = "fraud-detector"


# --- training.yaml: refused by prepare (training), before any data is read ----------------------------

# (its cases run in test_bad_input.py's TRAINING_CASES, with the other training.yaml cases)


@pytest.mark.slow
@pytest.mark.spark
def test_a_negative_margin_is_refused_before_training_and_the_champion_stays(dags, feature_lake, tmp_path,  # noqa: F811
                                                                             monkeypatch, reliability):
    """The reported case: with ``gate.min_improvement: -1.0`` the gate promoted a clearly worse model
    ("-0.1151 >= margin -1.0000"). Now the whole training DAG stops at prepare: no challenger is
    trained, the champion alias stays on its version, no gate decision is recorded."""
    from include import warehouse
    from include.training import pipeline, tracking
    from include.training.config import parse_training_config
    from include.training.dataset import training_dir
    from include.training.train import train_family

    case = reliability.case("bad input", "training.yaml: a negative promotion margin (gate.min_improvement: -1.0), "
                                         "whole DAG with a champion in place",
                            expected="prepare fails without retry naming the file, gate.min_improvement, -1.0 and "
                                     "the rule; every task after it upstream_failed; champion and challenger "
                                     "aliases unchanged, no new version, no gate decision, no champion_model event")
    small = {**small_config_dict(), "models": [small_config_dict()["models"][0]],
             "tuning": {"trials": 1, "timeout_seconds": 60}}
    cfg = parse_training_config(small)
    earlier = (SMALL.end_date - dt.timedelta(days=1)).isoformat()
    pipeline.prepare(earlier, cfg)
    pipeline.promote(pipeline.run_gate(pipeline.select_challenger([train_family("logistic", earlier, cfg)], cfg),
                                       cfg), cfg)
    client = tracking.client()
    before = {alias: str(client.get_model_version_by_alias(NAME, alias).version)
              for alias in ("champion", "challenger")}

    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({**small, "gate": {**small["gate"], "min_improvement": -1.0}}))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    as_of = SMALL.end_date
    run, states = _run(dags.get_dag("training"), run_conf={"as_of": str(as_of)})
    message = _failure_message(run, "prepare")
    case.observed = f"{_states(run, states)}; {message[message.index('AirflowFailException'):][:300]}"
    _assert_names(message, "AirflowFailException", f"{path}: 'gate.min_improvement' must be >= 0 (a negative "
                                                   "margin promotes a challenger worse than the champion), got -1.0")
    assert str(run.state) == "failed" and states.pop("prepare") == "failed"
    assert set(states.values()) == {"upstream_failed"}, states
    assert {alias: str(client.get_model_version_by_alias(NAME, alias).version)
            for alias in ("champion", "challenger")} == before == {"champion": "1", "challenger": "1"}
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1
    assert warehouse.decision_for(NAME, as_of) is None and _events_of(run, "champion_model") == []
    assert not training_dir(as_of, feature_lake).exists()  # no training set for as_of


# --- monitoring.yaml: its cases run in test_bad_input.py's MONITORING_CASES (one test, one runner) ----


DAGS = {"ingest": ("days", "raw_transactions", "raw"), "features": ("plan", "features_baseline", "features"),
        "scoring": ("plan", "predictions_fraud", "predictions"), "monitoring": ("check_drift", "drift_alert", "reports")}
PARAM_CASES = {
    "an end without a start": ({"end": str(DAY + dt.timedelta(days=3))},
                               (f"param 'end' = '{DAY + dt.timedelta(days=3)}' was given without 'start'",)),
    "a range of 36 years (end: 2062 for 2026)": (
        {"start": str(DAY), "end": str(DAY.replace(year=2062))},
        (f"params 'start' = '{DAY}' .. 'end' = '{DAY.replace(year=2062)}' span 13150 days, more than one run "
         "takes (3660)",)),
    "an end before the start": ({"start": str(DAY), "end": str(DAY - dt.timedelta(days=2))},
                                (f"param 'end' = '{DAY - dt.timedelta(days=2)}' is before param 'start' = '{DAY}'",)),
}
PARAM_RUNS = [("ingest", "an end without a start"), ("features", "an end without a start"),
              ("scoring", "an end without a start"), ("monitoring", "an end without a start"),
              ("scoring", "a range of 36 years (end: 2062 for 2026)"), ("ingest", "an end before the start")]


@pytest.mark.slow
@pytest.mark.parametrize(("dag_id", "what"), PARAM_RUNS)
def test_bad_params_stop_the_run_at_its_first_task(dags, landed, reliability, dag_id, what):  # noqa: F811
    """An ``end`` alone used to be ignored: ingest processed the day of its logical date and was green."""
    first, asset, zone = DAGS[dag_id]
    params, names = PARAM_CASES[what]
    case = reliability.case("bad input", f"DAG params of {dag_id}: {what} {params}",
                            expected=f"{first} ({dag_id}) fails without retry naming the param and its value; every "
                                     f"task after it upstream_failed; no {zone} partition, no {asset} event")
    raw_before = _snapshot(landed, "raw")
    # ingest runs on a schedule: before the fix, an 'end' alone made it process its logical date
    when = {"logical_date": dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)} if dag_id == "ingest" else {}
    run, states = _run(dags.get_dag(dag_id), run_conf=params, **when)
    message = _failure_message(run, first)
    case.observed = f"{_states(run, states)}; {message[message.index('AirflowFailException'):][:300]}"
    _assert_names(message, "AirflowFailException", *names)
    assert str(run.state) == "failed" and states.pop(first) == "failed"  # failed: not up_for_retry
    assert set(states.values()) <= {"upstream_failed", "skipped"}, states
    assert _events_of(run, asset) == []
    assert _snapshot(landed, "raw") == raw_before and not partition_file("raw", "transactions", DAY, landed).exists()
    assert not any((landed / z).exists() for z in ("features", "predictions", "reports", "_staging"))


def test_a_malformed_date_param_is_refused_at_trigger(dags, data_root, reliability):  # noqa: F811
    from airflow.sdk.definitions.param import ParamValidationError

    case = reliability.case("bad input", "DAG params of scoring: a malformed date {'start': '2026-13-01'}",
                            expected="the trigger is refused by the params' schema naming the param and the value; "
                                     "no run, no task, no partition")
    with pytest.raises(ParamValidationError) as refused:
        dags.get_dag("scoring").test(run_conf={"start": "2026-13-01"})
    case.observed = _first_lines(str(refused.value), 1)
    _assert_names(str(refused.value), "param start", "'2026-13-01' is not a 'date'")
    assert list(data_root.iterdir()) == []


# --- unusual but valid: accepted and read as meant ---------------------------------------------------------------

def test_a_minimal_training_file_in_another_order_with_comments_is_accepted(dags, data_root, tmp_path,  # noqa: F811
                                                                            monkeypatch, reliability):
    from include.training.config import DEFAULT_PATH, load_training_config

    case = reliability.case("unusual input", "training.yaml: only the required keys, in another order, with "
                                             "comments, flow and block styles mixed",
                            expected="accepted; every other value is the documented default; the DAG's config "
                                     "task reads it")
    path = tmp_path / "training.yaml"
    path.write_text("# the smallest useful file\nmodels:   # one model, defaults for the rest\n"
                    "  - family: logistic_regression   # key order does not matter\n    name: lr\n"
                    "    params: {C: 1}\nregistered_model: fraud-detector\nexperiment: fraud-training\n"
                    "gate: {require_approval: true}   # a flow mapping\n")
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    route = dags.get_dag("training").get_task("route").python_callable  # reads the file as the DAG does
    assert route({"promote": True}) == ["approve", "promote"]
    cfg, shipped = load_training_config(), load_training_config(DEFAULT_PATH)
    assert (cfg.window, cfg.metrics, cfg.tuning) == (shipped.window, shipped.metrics, shipped.tuning)
    assert cfg.gate.min_improvement == shipped.gate.min_improvement and cfg.gate.require_approval is True
    assert cfg.models[0].params == {"C": 1} and cfg.models[0].class_weight == "sqrt" and cfg.seed == 42
    case.observed = f"accepted: {len(cfg.models)} model, window {cfg.window}, gate margin {cfg.gate.min_improvement}"


def test_a_reordered_monitoring_file_with_a_block_list_is_read_as_the_shipped_one(data_root, tmp_path, reliability):
    from include.drift.config import load_monitoring_config

    case = reliability.case("unusual input", "monitoring.yaml: keys in another order, a block-style list, "
                                             "integers for thresholds, comments everywhere",
                            expected="accepted; equal to the shipped file's thresholds (1 read as 1.0)")
    path = tmp_path / "monitoring.yaml"
    path.write_text("cooldown_days: 7   # first here\nperformance:\n  min_frauds: 10\n  average_precision_drop: 0.15\n"
                    "  auc_roc_drop: 0.05\n  false_alarm_cost: 50\n  missed_fraud_cost: 1000\n  min_precision: 0.35\n"
                    "  calibration_min_frauds: 30\n  calibration_days: 28\n"
                    "exclude_columns:\n  - tx_during_weekend   # block style\n"
                    "min_drifted_columns: 1\nks_statistic: 0.1\nks_p_value: 0.05\npsi_alert: 1\npsi_warn: 0.1\n")
    cfg = load_monitoring_config(path)
    assert cfg == load_monitoring_config().model_copy(update={"psi_alert": 1.0})
    case.observed = f"accepted: exclude_columns {cfg.exclude_columns}, psi_alert {cfg.psi_alert!r}"


@pytest.mark.parametrize("params", [{"start": str(DAY)}, {"start": str(DAY), "end": None},
                                    {"start": str(DAY), "end": str(DAY)}])
def test_a_one_day_range_written_several_ways_is_one_day(dags, reliability, params):  # noqa: F811
    case = reliability.case("unusual input", f"DAG params of ingest: one day written as {params}",
                            expected=f"accepted: the run processes {DAY} only")
    days = dags.get_dag("ingest").get_task("days").python_callable(params=params, ds=str(DAY + dt.timedelta(days=5)))
    assert days == [str(DAY)]
    case.observed = f"days {days}"


# --- training.yaml as text nobody scripted: what PyYAML would accept silently or choke on -------------------------

_BOMB = "".join(f"{n}: &{n} [{', '.join([prev] * 9)}]\n" for n, prev in
                zip("abcdefghi", ['"lol"', "*a", "*b", "*c", "*d", "*e", "*f", "*g", "*h"], strict=True))
TEXT_CASES = {
    # what: (the shipped text -> the file's bytes, what the message must name besides the file)
    "a key written twice in one section (PyYAML keeps the last silently)": (
        lambda text: text.replace("gate:\n", "gate:\n  min_improvement: 0.05\n", 1).encode(),
        ("duplicate key 'min_improvement' (first written at line", "line ")),
    "a section written twice (the second gate: would discard the first)": (
        lambda text: (text + "gate:\n  require_approval: true\n").encode(), ("duplicate key 'gate'",)),
    "a billion laughs in a model's params (nine lines, 10^9 values once aliases expand)": (
        lambda text: text.replace("params: {C: 1.0}", "params:\n      " + _BOMB.replace("\n", "\n      ")).encode(),
        ("aliases (*name) expand to 490,329,", "more than 100,000")),  # 9^9 plus the rest of the file
    "a billion laughs as the seed (its value was shown in the error: the message never ended)": (
        lambda text: text.replace("seed: 42", "seed:\n  " + _BOMB.replace("\n", "\n  ")).encode(),
        ("aliases (*name) expand to",)),
    "an alias inside its own anchor (a model whose params contain the models list)": (
        lambda text: text.replace("models:\n", "models: &models\n", 1).replace("params: {C: 1.0}", "params: {C: *models}"
                                                                                ).encode(),
        ("an alias refers to a value that contains it",)),
    "20,000 nested brackets (RecursionError before)": (
        lambda text: text.replace("seed: 42", "seed: " + "[" * 20000 + "]" * 20000).encode(),
        ("not valid YAML: nested deeper than 64 levels",)),
    "a Latin-1 file (an accented comment)": (
        lambda text: text.replace("# Weekly", "# Entraînement hebdomadaire", 1).encode("latin-1"),
        ("not UTF-8 text: byte 0xee at line 1", "save the file as UTF-8")),
}


@pytest.mark.parametrize("what", list(TEXT_CASES))
def test_a_training_file_pyyaml_would_misread_stops_training_at_prepare(dags, data_root, tmp_path, monkeypatch,  # noqa: F811
                                                                        reliability, what):
    import time

    from include.training.config import DEFAULT_PATH

    spoil, names = TEXT_CASES[what]
    case = reliability.case("bad input", f"training.yaml: {what}",
                            expected="prepare (training) fails fast without retry naming the file and what is wrong "
                                     "with it; nothing read or written")
    path = tmp_path / "training.yaml"
    path.write_bytes(spoil(DEFAULT_PATH.read_text()))
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", str(path))
    prepare = dags.get_dag("training").get_task("prepare").python_callable
    started = time.monotonic()
    with pytest.raises(AirflowFailException) as stopped:
        prepare(params={"as_of": str(SMALL.end_date)}, triggering_asset_events=None, logical_date=None)
    case.observed = f"{_first_lines(str(stopped.value))} ({time.monotonic() - started:.2f} s)"
    _assert_names(str(stopped.value), f"{path}: ", *names)
    assert len(str(stopped.value)) < 2000 and time.monotonic() - started < 10
    assert list(data_root.iterdir()) == []


@pytest.mark.parametrize("where", ["/dev/zero", "a directory", "a FIFO", "a symlink loop", "a file as a folder"])
def test_a_config_variable_naming_no_file_is_refused(dags, data_root, tmp_path, monkeypatch, reliability, where):  # noqa: F811
    import os

    case = reliability.case("bad input", f"BATCHML_TRAINING_CONFIG naming {where}",
                            expected="prepare (training) fails at once without retry naming the path and why it is "
                                     "not a configuration file (no endless read, no block)")
    path = {"/dev/zero": "/dev/zero", "a directory": str(tmp_path)}.get(where) or str(tmp_path / "fifo.yaml")
    if where == "a FIFO":
        os.mkfifo(path)
    elif where == "a symlink loop":
        (tmp_path / "other.yaml").symlink_to(path)
        os.symlink(tmp_path / "other.yaml", path)
    elif where == "a file as a folder":
        (tmp_path / "training.yaml").write_text("experiment: x\n")
        path = str(tmp_path / "training.yaml" / "training.yaml")
    monkeypatch.setenv("BATCHML_TRAINING_CONFIG", path)
    prepare = dags.get_dag("training").get_task("prepare").python_callable
    with pytest.raises(AirflowFailException) as stopped:
        prepare(params={"as_of": str(SMALL.end_date)}, triggering_asset_events=None, logical_date=None)
    case.observed = _first_lines(str(stopped.value))
    says = {"/dev/zero": "is not a regular file", "a directory": "is a directory", "a FIFO": "is not a regular file",
            "a symlink loop": "cannot be opened: Too many levels of symbolic links",
            "a file as a folder": "cannot be opened: Not a directory"}[where]
    _assert_names(str(stopped.value), f"configuration file {path} {says}")
    assert list(data_root.iterdir()) == []


def test_a_utf16_file_a_symlink_and_merge_keys_are_read_as_meant(data_root, tmp_path, reliability):
    """UTF-16 with its byte-order mark (Windows Notepad), reached through a symlink (a mounted
    configuration), a model built from another by a merge key that overrides some of its keys."""
    from include.training.config import DEFAULT_PATH, load_training_config

    case = reliability.case("unusual input", "training.yaml: UTF-16 with a BOM, behind a symlink, one model "
                                             "derived from another with a merge key (<<: *lr) and overrides",
                            expected="accepted; the merged model has the base's keys and its own overrides; the "
                                     "rest equals the shipped file")
    text = DEFAULT_PATH.read_text().replace("  - name: logistic\n", "  - &lr\n    name: logistic\n", 1)
    after_base = text.index("  - name:", text.index("  - &lr"))  # the derived model right after its base
    text = (text[:after_base] + "  - <<: *lr\n    name: logistic_plain\n    class_weight: none\n\n"
            + text[after_base:])
    real = tmp_path / "real" / "training.yaml"
    real.parent.mkdir()
    real.write_bytes(text.encode("utf-16"))
    link = tmp_path / "training.yaml"
    link.symlink_to(real)
    cfg, shipped = load_training_config(link), load_training_config(DEFAULT_PATH)
    plain = cfg.spec("logistic_plain")
    assert plain.family == "logistic_regression" and plain.class_weight == "none"
    assert plain.params == shipped.spec("logistic").params and plain.search == shipped.spec("logistic").search
    assert cfg.models[0] == shipped.models[0] and cfg.models[2:] == shipped.models[1:]
    assert (cfg.gate, cfg.tuning, cfg.window) == (shipped.gate, shipped.tuning, shipped.window)
    case.observed = f"accepted: models {[m.name for m in cfg.models]}, {plain.name} class_weight {plain.class_weight}"

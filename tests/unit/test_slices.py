"""Evaluation per slice and the gate on it: real scikit-learn models on a synthetic evaluation window,
a challenger built to be worse on night transactions only, thin bands that are reported and not gated,
and the configuration's errors."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from include.config import ConfigError
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training.config import (
    DEFAULT_PATH,
    GateConfig,
    MetricsConfig,
    SlicesConfig,
    load_training_config,
    parse_training_config,
)
from include.training.dataset import HISTORY, ID_COLUMNS, LABEL, customer_history_days
from include.training.gate import decide
from include.training.model_card import render
from include.training.slices import SliceError, assign_bands, band_frauds, evaluate_slices, mlflow_metrics

METRICS = MetricsConfig(top_k=20)
GATE = GateConfig(min_improvement=0.005, auc_roc_tolerance=0.05, card_precision_tolerance=0.2, min_eval_frauds=30)
SLICES = SlicesConfig.model_validate({
    "tolerance": 0.05, "min_positives": 40, "business_metric": "expected_cost",
    "definitions": [
        {"name": "time_of_day", "expression": "tx_datetime.dt.hour", "edges": [4], "labels": ["night", "day"]},
        # about 1 % of the rows: a band with a handful of frauds
        {"name": "amount", "column": "tx_amount", "edges": [250], "labels": ["usual", "huge"]},
    ]})
INPUTS = ["x1", "x2"]


@pytest.fixture(scope="module")
def window():
    """Two weeks of transactions: train on the first, evaluate on the second. Fraud depends on x1 and x2."""
    rng = np.random.default_rng(7)
    n = 40_000
    start = pd.Timestamp("2026-03-01")
    seconds = rng.integers(0, 14 * 86_400, n)
    frame = pd.DataFrame({
        "customer_id": rng.integers(0, 3_000, n),
        "tx_datetime": start + pd.to_timedelta(np.sort(seconds), unit="s"),
        "tx_amount": np.where(rng.random(n) < 0.01, rng.uniform(250, 400, n), rng.uniform(1, 200, n)),
        "x1": rng.normal(size=n), "x2": rng.normal(size=n),
    })
    logit = -4.0 + 1.2 * frame["x1"] + 1.8 * frame["x2"]
    frame[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["ds"] = frame["tx_datetime"].dt.date
    train = frame[frame["ds"] < dt.date(2026, 3, 8)]
    test = frame[frame["ds"] >= dt.date(2026, 3, 8)].reset_index(drop=True)
    return train, test


class ScrambledAtNight:
    """A fitted model whose scores of the transactions at hours 0-3 are shuffled among themselves:
    as good as the model by day, no better than chance at night."""

    def __init__(self, model, seed: int = 0):
        self.model, self.seed = model, seed

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        scores = self.model.predict_proba(frame[INPUTS])[:, 1]
        night = (frame["tx_datetime"].dt.hour < 4).to_numpy()
        scores[night] = np.random.default_rng(self.seed).permutation(scores[night])
        return scores


def _fit(train: pd.DataFrame, inputs: list[str]):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(train[inputs], train[LABEL])


def _measure(test: pd.DataFrame, scores: np.ndarray):
    from include.training.metrics import evaluate

    scored = test.assign(score=scores)
    threshold = float(np.quantile(scores, 0.97))
    return evaluate(scored, threshold, METRICS.top_k), evaluate_slices(scored, threshold, SLICES, METRICS, "test")


@pytest.fixture(scope="module")
def models(window):
    train, test = window
    full = _fit(train, INPUTS)
    champion = _fit(train, ["x1", "x2"])
    # the champion sees x2 with noise: worse overall, but sound at night
    noisy = test.assign(x2=test["x2"] + np.random.default_rng(3).normal(scale=1.5, size=len(test)))
    return {"champion": _measure(test, champion.predict_proba(noisy[INPUTS])[:, 1]),
            "challenger": _measure(test, ScrambledAtNight(full).score(test)),
            "clean": _measure(test, full.predict_proba(test[INPUTS])[:, 1])}


def _row(rows, slice_, band):
    return next(r for r in rows if (r["slice"], r["band"]) == (slice_, band))


def test_a_challenger_worse_at_night_only_is_refused_naming_the_slice(models):
    (champ, champ_slices), (chal, chal_slices) = models["champion"], models["challenger"]
    gain = chal["average_precision"] - champ["average_precision"]
    assert gain >= GATE.min_improvement, "the challenger must pass the overall margin for the slice gate to decide"
    assert champ["auc_roc"] - chal["auc_roc"] <= GATE.auc_roc_tolerance
    night, day = _row(chal_slices, "time_of_day", "night"), _row(chal_slices, "time_of_day", "day")
    assert night["n_frauds"] >= SLICES.min_positives
    assert _row(champ_slices, "time_of_day", "night")["average_precision"] - night["average_precision"] > 0.05
    assert day["average_precision"] > _row(champ_slices, "time_of_day", "day")["average_precision"]

    decision = decide(chal, champ, GATE, "average_precision", SLICES, chal_slices, champ_slices)

    assert not decision.promote
    assert "slice time_of_day=night" in decision.reason and "slice tolerance 0.05" in decision.reason
    assert f"({night['n_frauds']} frauds)" in decision.reason and "=day" not in decision.reason
    verdicts = {(r["slice"], r["band"]): r["verdict"] for r in decision.slices}
    assert verdicts[("time_of_day", "night")] == "refused"
    assert verdicts[("time_of_day", "day")] == "holds"
    assert verdicts[("amount", "huge")].startswith("not gated: ")  # the thin band
    assert decision.as_dict()["slices"][0]["champion_average_precision"] == pytest.approx(
        _row(champ_slices, "time_of_day", "night")["average_precision"])


def test_a_thin_band_is_reported_and_not_gated(models):
    """The huge amounts hold few frauds: the challenger worse there does not matter to the gate."""
    (champ, champ_slices), (chal, chal_slices) = models["champion"], models["clean"]
    huge = _row(chal_slices, "amount", "huge")
    assert 0 < huge["n_frauds"] < SLICES.min_positives
    worse = [{**r, "average_precision": 0.0} if (r["slice"], r["band"]) == ("amount", "huge") else r
             for r in chal_slices]

    decision = decide(chal, champ, GATE, "average_precision", SLICES, worse, champ_slices)

    assert decision.promote, decision.reason
    row = next(r for r in decision.slices if (r["slice"], r["band"]) == ("amount", "huge"))
    assert row["verdict"] == f"not gated: {huge['n_frauds']} frauds < {SLICES.min_positives}"
    assert row["drop"] > SLICES.tolerance
    assert "3 slice band(s) within 0.05 of the champion, 1 not gated" in decision.reason


def test_the_first_model_reports_its_slices_without_gating_them(models):
    chal, chal_slices = models["challenger"]
    decision = decide(chal, None, GATE, "average_precision", SLICES, chal_slices, None)
    assert decision.promote and "4 slice bands reported, not gated (no champion)" in decision.reason
    assert {r["verdict"] for r in decision.slices} == {"not gated: no champion to compare with"}


def test_the_model_card_shows_the_slice_table_and_the_verdicts(models):
    (champ, champ_slices), (chal, chal_slices) = models["champion"], models["challenger"]
    decision = decide(chal, champ, GATE, "average_precision", SLICES, chal_slices, champ_slices)
    summary = {"model": "m", "family": "logistic_regression", "run_id": "r", "as_of": "2026-03-22",
               "training_window": "a..b", "train_rows": 1, "evaluation_window": "c..d", "inputs_sha256": "0" * 64,
               "trials": 1, "tuning_seconds": 1.0, "best_params": {}, "threshold": 0.5, "metrics": chal,
               "slices": chal_slices}
    before = render(summary, "2", "fraud-detector", (1000, 50), slices=SLICES)
    assert "## By slice" in before and "| time_of_day | night |" in before and "gate" not in before.split(
        "## By slice")[1].split("##")[0].split("\n")[3]
    card = render(summary, "2", "fraud-detector", (1000, 50), decision.as_dict(), SLICES)
    night = next(line for line in card.splitlines() if line.startswith("| time_of_day | night |"))
    assert night.endswith("| refused |") and "expected_cost" in card and "at least 40 frauds" in card


def test_bands_edges_and_missing_values():
    spec = SlicesConfig.model_validate({"definitions": [{"name": "a", "column": "v", "edges": [1, 2]}]}).definitions[0]
    frame = pd.DataFrame({"v": [0.5, 1.0, 1.5, 2.0, 9.0, float("nan")]})
    assert list(assign_bands(frame, spec)) == ["lt_1", "1_2", "1_2", "ge_2", "ge_2", "missing"]


def test_slice_metrics_for_mlflow_and_empty_bands():
    cfg = SlicesConfig.model_validate({"definitions": [{"name": "hour", "expression": "tx_datetime.dt.hour",
                                                        "edges": [7, 30], "labels": ["night", "day", "never"]}]})
    scored = pd.DataFrame({"tx_datetime": pd.to_datetime(["2026-03-01 02:00", "2026-03-01 13:00"] * 4),
                           "score": [0.9, 0.1, 0.2, 0.8, 0.7, 0.3, 0.1, 0.6], LABEL: [1, 0, 0, 1, 1, 0, 0, 1],
                           "customer_id": range(8), "ds": [dt.date(2026, 3, 1)] * 8})
    rows = evaluate_slices(scored, 0.5, cfg, METRICS)
    assert [(r["band"], r["n_transactions"], r["n_frauds"]) for r in rows] == [("night", 4, 2), ("day", 4, 2),
                                                                              ("never", 0, 0)]
    assert band_frauds(scored, cfg) == {"hour=night": 2, "hour=day": 2, "hour=never": 0}
    logged = mlflow_metrics(rows)
    assert logged["slice_hour_night_ap"] == 1.0 and logged["slice_hour_day_positives"] == 2
    assert "slice_hour_never_ap" not in logged and logged["slice_hour_never_rows"] == 0  # undefined: not logged
    assert rows[2]["average_precision"] is None
    json.dumps(rows, allow_nan=False)  # the rows travel as XCom: strict JSON


def test_a_slice_over_a_column_the_frame_lacks_names_it():
    cfg = SlicesConfig.model_validate({"definitions": [
        {"name": "risk", "column": "terminal_risk_90d", "edges": [0.1]},
        {"name": "odd", "expression": "tx_amount.dt.hour", "edges": [1]}]})
    frame = pd.DataFrame({"tx_amount": [1.0], "score": [0.5], LABEL: [0], "customer_id": [1], "ds": [dt.date.today()]})
    with pytest.raises(SliceError, match=r"slice 'risk' \(training.yaml\) reads 'terminal_risk_90d', which the "
                                         r"evaluation frame lacks"):
        evaluate_slices(frame, 0.5, cfg, METRICS, "training.yaml")
    with pytest.raises(SliceError, match=r"slice 'risk' \(training.yaml\) reads 'terminal_risk_90d'"):
        band_frauds(frame, cfg, "training.yaml")  # what prepare runs before any model trains
    with pytest.raises(SliceError, match=r"slice 'odd'.*'tx_amount.dt.hour' does not give numbers"):
        assign_bands(frame, cfg.definitions[1])


def test_the_shipped_slices_read_columns_of_the_evaluation_frame():
    """Every slice of training.yaml computes on a frame with the evaluation set's columns."""
    cfg = load_training_config(DEFAULT_PATH)
    assert cfg.slices.definitions, "the shipped configuration declares slices"
    frame = pd.DataFrame({c: [1.0, 2.0] for c in ["transaction_id", "customer_id", "terminal_id", *MODEL_INPUTS,
                                                   LABEL, HISTORY]})
    frame["tx_datetime"] = pd.to_datetime(["2026-03-01 03:00", "2026-04-01 13:00"])
    assert set(ID_COLUMNS) <= set(frame.columns)
    for spec in cfg.slices.definitions:
        assert len(assign_bands(frame, spec)) == 2


def test_customer_history_counts_only_earlier_transactions():
    examples = pd.DataFrame({"customer_id": [1, 2, 1, 1], "tx_datetime": pd.to_datetime(
        ["2026-03-01 00:00", "2026-03-10 12:00", "2026-03-16 00:00", "2026-04-02 12:00"])})
    assert list(customer_history_days(examples)) == [0.0, 0.0, 15.0, 32.5]


def _raw(**slices):
    import yaml

    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw["slices"] = {**raw["slices"], **slices}
    return raw


@pytest.mark.parametrize(("slices", "message"), [
    ({"tolerance": 1.5}, "'slices.tolerance' must lie in [0, 1], got 1.5"),
    ({"min_positives": 0}, "'slices.min_positives' must be >= 1, got 0"),
    ({"business_metric": "profit"}, "'slices.business_metric' names an unknown business metric 'profit'"),
    ({"definitions": [{"name": "a", "column": "x", "expression": "y", "edges": [1]}]},
     "slice 'a' needs exactly one of column and expression"),
    ({"definitions": [{"name": "a", "edges": [1]}]}, "slice 'a' needs exactly one of column and expression"),
    ({"definitions": [{"name": "a", "column": "x", "edges": [2, 1]}]},
     "'slices.definitions[0].edges' must be strictly increasing, got [2, 1]"),
    ({"definitions": [{"name": "a", "column": "x", "edges": []}]}, "'slices.definitions[0].edges' needs at least 1"),
    ({"definitions": [{"name": "a", "column": "x", "edges": [1], "labels": ["lo", "mid", "hi"]}]},
     "slice 'a' has 1 edge(s), so 2 bands: labels needs 2 names, got ['lo', 'mid', 'hi']"),
    ({"definitions": [{"name": "a", "column": "x", "edges": [1], "labels": ["lo", "lo"]}]},
     "slice 'a' needs unique labels"),
    ({"definitions": [{"name": "Night-Time", "column": "x", "edges": [1]}]},
     "'slices.definitions[0].name' must be lower-case letters, digits and _"),
    ({"definitions": [{"name": "a", "expression": "tx_datetime.dt.hour +", "edges": [1]}]},
     "'slices.definitions[0].expression' is not an expression (invalid syntax)"),
    ({"definitions": [{"name": "a", "expression": "x > @limit", "edges": [1]}]}, "no @variables"),
    ({"definitions": [{"name": "a", "column": "x", "edges": [1]}, {"name": "a", "column": "y", "edges": [1]}]},
     "needs unique slice names, got ['a', 'a']"),
    ({"definitions": [{"name": "a", "column": "x", "edges": [1], "bands": 3}]}, "unknown key(s) ['bands']"),
])
def test_slice_configuration_errors(slices, message):
    with pytest.raises(ConfigError) as err:
        parse_training_config(_raw(**slices), source="training.yaml")
    assert str(err.value).startswith("training.yaml: ") and message in str(err.value), str(err.value)


def test_the_ml_monitor_shows_the_newest_decisions_slices(models):
    """The ML monitor's promotion history is followed by the slice table of the newest decision that has
    one (promotions.metrics_json, as run_gate writes it), values escaped."""
    from include import ml_monitor

    (champ, champ_slices), (chal, chal_slices) = models["champion"], models["challenger"]
    decision = decide(chal, champ, GATE, "average_precision", SLICES, chal_slices, champ_slices)
    rows = [{**r, "band": "<night>"} if r["band"] == "night" else r for r in decision.slices]
    when = dt.datetime(2026, 3, 23, 3, tzinfo=dt.UTC)
    promotion = {"as_of": dt.date(2026, 3, 22), "challenger_version": "2", "champion_version": "1",
                 "decision": "reject", "promoted": False, "reason": decision.reason,
                 "primary_metric": "average_precision", "challenger_value": chal["average_precision"],
                 "champion_value": champ["average_precision"], "decided_at": when, "promoted_at": None,
                 "metrics_json": json.dumps({"challenger": chal, "champion": champ, "slices": rows,
                                             "slice_tolerance": 0.05, "slice_min_positives": 40})}
    older = {**promotion, "as_of": dt.date(2026, 3, 15), "metrics_json": None}
    data = ml_monitor.MonitorData(
        model_name="fraud-detector", window=ml_monitor.Window(dt.date(2026, 3, 16), dt.date(2026, 3, 22), 7),
        generated_at=when, registry=ml_monitor.RegistryState("fraud-detector", "sqlite://"), psi_warn=0.1,
        psi_alert=0.2, promotions=[promotion, older], promotions_total=2)
    page = ml_monitor.render_html(data)
    table = page.split('<h3 id="slices">')[1].split("</table>")[0]
    assert "the decision as of 2026-03-22 on version 2" in table and "drops more than 0.05" in table
    assert "<td>time_of_day</td><td>&lt;night&gt;</td>" in table and "<b>refused</b>" in table
    assert table.count("<tr>") == 1 + len(rows) and "not gated: " in table
    data.promotions = [older]
    assert 'id="slices"' not in ml_monitor.render_html(data)  # a decision without slices: no table

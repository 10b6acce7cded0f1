"""The simulator reproduces the statistics of shared/SIMULATOR.md and is deterministic by seed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.config import LABEL_DELAY_DAYS
from include.pipelines.fraud.simulator import DriftScenario, SimulatorConfig, simulate
from include.pipelines.fraud.simulator.generator import available_terminals, customer_profiles, terminal_profiles
from include.pipelines.fraud.simulator.landing import write_landing_files
from include.storage import landing_file


@pytest.fixture(scope="module")
def default_sim():
    return simulate(SimulatorConfig())  # 5,000 customers, 10,000 terminals, 183 days


def test_default_volume_and_fraud_rate(default_sim):
    tx = default_sim.transactions
    # design: about 1.75 million transactions and a fraud rate of about 0.84 %
    assert len(tx) == pytest.approx(1_750_000, rel=0.05)
    assert tx["tx_fraud"].mean() == pytest.approx(0.0084, abs=0.0012)
    per_day = tx.groupby("ds").size()
    assert per_day.mean() == pytest.approx(9_600, rel=0.05)
    frauds_per_day = tx.groupby("ds")["tx_fraud"].sum()
    # about 80 to 85 frauds a day once the scenarios have ramped up; fewer in the first month
    assert 75 <= frauds_per_day.iloc[30:].mean() <= 95
    assert frauds_per_day.iloc[:30].mean() < frauds_per_day.iloc[30:].mean()


def test_scenario_mix(default_sim):
    tx = default_sim.transactions
    counts = tx.loc[tx["tx_fraud"] == 1, "tx_fraud_scenario"].value_counts()
    assert set(counts.index) == {1, 2, 3}
    assert counts[2] > counts[3] > counts[1]  # compromised terminals dominate, large amounts are rare
    assert (tx.loc[tx["tx_fraud"] == 0, "tx_fraud_scenario"] == 0).all()
    assert (tx.loc[tx["tx_fraud_scenario"] == 1, "tx_amount"] > 220).all()


def test_transaction_fields(default_sim):
    tx = default_sim.transactions
    assert tx["transaction_id"].is_monotonic_increasing and tx["transaction_id"].is_unique
    assert tx["tx_datetime"].is_monotonic_increasing  # ids follow time order
    assert (tx["tx_amount"] >= 0).all()
    seconds = (tx["tx_datetime"] - tx["tx_datetime"].dt.floor("D")).dt.total_seconds()
    assert ((seconds > 0) & (seconds < 86_400)).all()
    assert (tx["tx_datetime"].dt.date == tx["ds"]).all()


def test_available_terminals_about_80_for_inner_customers():
    rng = np.random.default_rng(1)
    customers, terminals = customer_profiles(2_000, rng), terminal_profiles(10_000, rng)
    indptr, _ = available_terminals(customers, terminals, radius=5)
    inner = customers["x"].between(10, 90) & customers["y"].between(10, 90)
    assert np.diff(indptr)[inner.to_numpy()].mean() == pytest.approx(np.pi * 25, rel=0.05)


def test_same_seed_same_data_other_seed_other_data():
    cfg = SimulatorConfig(n_customers=300, n_terminals=600, n_days=20, seed=11)
    a, b = simulate(cfg).transactions, simulate(cfg).transactions
    pd.testing.assert_frame_equal(a, b)
    c = simulate(SimulatorConfig(n_customers=300, n_terminals=600, n_days=20, seed=12)).transactions
    assert len(a) != len(c) or not a["tx_amount"].equals(c["tx_amount"])


SMALL = dict(n_customers=1_000, n_terminals=2_000, n_days=60, start_date=dt.date(2026, 1, 1), seed=3)
DRIFT_DAY = dt.date(2026, 2, 1)


@pytest.fixture(scope="module")
def base_small():
    return simulate(SimulatorConfig(**SMALL)).transactions


def _before_after(tx: pd.DataFrame, column: pd.Series) -> tuple[float, float]:
    after = tx["ds"] >= DRIFT_DAY
    return column[~after].mean(), column[after].mean()


def test_drift_amount_shift(base_small):
    tx = simulate(SimulatorConfig(**SMALL, drift=(DriftScenario("amount_shift", DRIFT_DAY, 1.5),))).transactions
    legit = tx["tx_fraud_scenario"] != 3
    before, after = _before_after(tx[legit], tx.loc[legit, "tx_amount"])
    base_before, base_after = _before_after(base_small[base_small["tx_fraud_scenario"] != 3],
                                            base_small.loc[base_small["tx_fraud_scenario"] != 3, "tx_amount"])
    assert before == pytest.approx(base_before, rel=0.01)
    assert after / base_after == pytest.approx(1.5, rel=0.05)


def test_drift_night_shift(base_small):
    tx = simulate(SimulatorConfig(**SMALL, drift=(DriftScenario("night_shift", DRIFT_DAY, 0.3),))).transactions
    night = tx["tx_datetime"].dt.hour <= 6
    before, after = _before_after(tx, night)
    assert after - before == pytest.approx(0.3 * (1 - before), abs=0.03)


def test_drift_terminal_wave(base_small):
    tx = simulate(SimulatorConfig(**SMALL, drift=(DriftScenario("terminal_wave", DRIFT_DAY, 8),))).transactions
    def late_s2(frame):
        return (frame.loc[frame["ds"] >= DRIFT_DAY, "tx_fraud_scenario"] == 2).sum()
    assert late_s2(tx) > 2.5 * late_s2(base_small)


def test_drift_rejects_bad_parameters():
    with pytest.raises(ValueError, match="unknown drift kind"):
        DriftScenario("bogus", DRIFT_DAY, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="share"):
        DriftScenario("night_shift", DRIFT_DAY, 1.5)


def test_landing_files_labels_arrive_seven_days_late(tmp_path):
    cfg = SimulatorConfig(n_customers=100, n_terminals=200, n_days=12, start_date=dt.date(2026, 1, 1), seed=5)
    tx = simulate(cfg).transactions
    write_landing_files(tx, tmp_path)
    for i in range(cfg.n_days):
        day = cfg.start_date + dt.timedelta(days=i)
        landed = pd.read_parquet(landing_file("transactions", day, tmp_path))
        assert "tx_fraud" not in landed.columns  # labels never travel with the transactions
        assert len(landed) == (tx["ds"] == day).sum()
        labels = pd.read_parquet(landing_file("labels", day, tmp_path))
        labelled_day = day - dt.timedelta(days=LABEL_DELAY_DAYS)
        expected = tx.loc[tx["ds"] == labelled_day, ["transaction_id", "tx_fraud"]].reset_index(drop=True)
        assert list(labels.columns) == ["transaction_id", "tx_fraud", "tx_fraud_scenario"]
        pd.testing.assert_frame_equal(labels[["transaction_id", "tx_fraud"]], expected)

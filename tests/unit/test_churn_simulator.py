"""The churn simulator (docs/churn.md): deterministic by seed, its mechanisms visible and learnable,
its labels leak-free, its landing files where the pipeline will look."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from include.pipelines.churn.diagnostics import fraction_for_recall, learnability, recall_at_top_fraction
from include.pipelines.churn.simulator import (
    COLUMNS,
    CONTRACTS,
    LABEL_HORIZON_DAYS,
    PAYMENT_FAILURE_KINDS,
    PLANS,
    SUPPORT_KINDS,
    ChurnSimulatorConfig,
    HazardModel,
    PriceIncrease,
    active_customers,
    main,
    monthly_churn_rate,
    simulate,
    snapshot_dates,
    weekly_snapshot,
    write_landing_files,
)
from include.storage import landing_file

BASE = ChurnSimulatorConfig(n_customers=3_000, n_weeks=20, seed=7)
INCREASE = PriceIncrease(dt.date(2026, 3, 2), 0.15, ("basic", "standard"))


@pytest.fixture(scope="module")
def sim():
    return simulate(BASE)


@pytest.fixture(scope="module")
def raised():
    return simulate(dataclasses.replace(BASE, price_increases=(INCREASE,)))


def _day(stamp: pd.Series) -> pd.Series:
    return stamp.dt.date


def test_same_config_and_seed_give_identical_frames_another_seed_does_not():
    cfg = ChurnSimulatorConfig(n_customers=400, n_weeks=6, seed=3)
    first, second, other = simulate(cfg), simulate(cfg), simulate(dataclasses.replace(cfg, seed=4))
    for table in COLUMNS:
        pd.testing.assert_frame_equal(first.table(table), second.table(table))
    assert not first.usage_events.equals(other.usage_events)
    assert not first.customers.equals(other.customers)


@pytest.mark.parametrize(("change", "message"), [
    ({"n_customers": 0}, "n_customers must be >= 1"),
    ({"n_weeks": 0}, "n_weeks must be >= 1"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"n_customers": 10.5}, "n_customers must be an int"),
    ({"start_date": "2026-01-05"}, "start_date must be a date"),
    ({"contract_mix": (0.5, 0.5, 0.5)}, "contract_mix must be 3 non-negative shares summing to 1"),
    ({"list_fees": (9.99, 0.0, 30.0)}, "list_fees must be 3 positive fees"),
    ({"price_increases": (PriceIncrease(dt.date(2027, 1, 4), 0.1),)}, "lies outside the simulated 2026-01-05"),
])
def test_invalid_config_is_refused_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **change)


def test_invalid_hazard_model_is_refused():
    with pytest.raises(ValueError, match=r"HazardModel: recover_per_day must be a chance in \[0, 1\], got 1.5; "
                                         r"disengage_days must be \(low, high\)"):
        HazardModel(recover_per_day=1.5, disengage_days=(30.0, 10.0))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"magnitude": 0.0}, "magnitude is a relative increase"),
    ({"plans": ("gold",)}, "plans must be a non-empty subset"),
    ({"plans": ()}, "plans must be a non-empty subset"),
])
def test_invalid_price_increase_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PriceIncrease(**{"start": dt.date(2026, 3, 2), "magnitude": 0.1, **kwargs})


def test_tables_have_their_columns_dtypes_and_values(sim):
    for table, columns in COLUMNS.items():
        frame = sim.table(table)
        assert list(frame.columns) == list(columns), table
        for column, dtype in columns.items():
            if dtype == "date":
                assert all(type(v) is dt.date for v in frame[column]), (table, column)
            elif dtype == "str":
                assert pd.api.types.is_string_dtype(frame[column]), (table, column)
            else:
                assert str(frame[column].dtype) == dtype, (table, column, frame[column].dtype)
    c = sim.customers
    assert c["customer_id"].is_unique and (c["customer_id"] == np.arange(len(c))).all()
    assert c["signup_date"].is_monotonic_increasing  # ids follow signup order
    assert set(c["plan"]) == set(PLANS) and set(c["contract_type"]) == set(CONTRACTS)
    assert (c["monthly_fee"] > 0).all()
    assert set(sim.support_contacts["kind"]) == set(SUPPORT_KINDS)
    assert set(sim.payment_failures["kind"]) == set(PAYMENT_FAILURE_KINDS)
    for table in ("usage_events", "support_contacts", "payment_failures", "cancellations"):
        assert sim.table(table)["customer_id"].isin(c["customer_id"]).all(), table
    assert sim.cancellations["customer_id"].is_unique
    usage = sim.usage_events
    assert (usage["sessions"] >= 1).all() and (usage["minutes"] > 0).all()
    assert usage["event_time"].is_monotonic_increasing
    per_day = usage.assign(day=_day(usage["event_time"]))
    assert not per_day.duplicated(["customer_id", "day"]).any()  # one usage record a day at most
    assert _day(usage["event_time"]).between(BASE.start_date, BASE.end_date).all()
    assert sim.fee_changes.empty  # no price increase configured


def test_monthly_churn_rate_is_a_few_percent_and_the_base_stays_about_stable(sim):
    assert 0.01 <= monthly_churn_rate(sim) <= 0.08
    dates = snapshot_dates(BASE)
    first, last = len(active_customers(sim, dates[0])), len(active_customers(sim, dates[-1]))
    assert first == pytest.approx(BASE.n_customers, rel=0.1)
    assert last == pytest.approx(first, rel=0.15)
    assert (sim.customers["signup_date"] >= BASE.start_date).sum() > 0.1 * BASE.n_customers  # new customers


def test_no_event_after_cancellation_nor_before_signup(sim):
    cancel = sim.cancellations.set_index("customer_id")["cancel_date"]
    signup = sim.customers.set_index("customer_id")["signup_date"]
    for table in ("usage_events", "support_contacts", "payment_failures"):
        events = sim.table(table)
        day = _day(events["event_time"])
        cancelled_on = events["customer_id"].map(cancel)
        assert (cancelled_on.isna() | (day < cancelled_on)).all(), table
        assert (day >= events["customer_id"].map(signup)).all(), table
    assert (sim.cancellations["cancel_date"] > sim.cancellations["customer_id"].map(signup)).all()


def test_churners_usage_declines_before_they_cancel(sim):
    usage = sim.usage_events.assign(day=_day(sim.usage_events["event_time"]))
    cancels = sim.cancellations[sim.cancellations["cancel_date"] >= BASE.start_date + dt.timedelta(days=56)]
    merged = usage.merge(cancels, on="customer_id")
    before = (merged["cancel_date"] - merged["day"]).map(lambda d: d.days)
    last_two_weeks = merged.loc[before <= 14, "minutes"].sum()
    two_weeks_a_month_earlier = merged.loc[(before > 42) & (before <= 56), "minutes"].sum()
    assert len(cancels) > 100
    assert last_two_weeks < 0.7 * two_weeks_a_month_earlier


def test_monthly_contracts_churn_more_than_annual_and_two_year_ones(sim):
    snaps = pd.concat([weekly_snapshot(sim, d) for d in snapshot_dates(BASE, labelled_only=True)])
    rate = snaps.groupby("contract_type")["churned_30d"].mean()
    assert rate["monthly"] > 2 * rate["annual"]
    assert rate["annual"] > 1.3 * rate["two_year"] > 0


def test_labels_are_cancellations_in_the_30_days_after_the_snapshot_only(sim):
    snapshot = snapshot_dates(BASE, labelled_only=True)[3]
    snap = weekly_snapshot(sim, snapshot)
    horizon = snapshot + dt.timedelta(days=LABEL_HORIZON_DAYS)
    cancel = snap["customer_id"].map(sim.cancellations.set_index("customer_id")["cancel_date"])
    assert (snap["signup_date"] < snapshot).all()
    assert (cancel.isna() | (cancel >= snapshot)).all()  # only customers active at the snapshot
    expected = cancel.notna() & (cancel < horizon)
    assert (snap["churned_30d"] == expected.astype(int)).all() and snap["churned_30d"].sum() > 0
    assert (snap["label_known_on"] == horizon).all()
    # what happens from the label day on cannot change the snapshot or its labels
    kept = sim.cancellations[sim.cancellations["cancel_date"] < horizon]
    cut = dataclasses.replace(sim, cancellations=kept,
                              usage_events=sim.usage_events[_day(sim.usage_events["event_time"]) < snapshot])
    pd.testing.assert_frame_equal(weekly_snapshot(cut, snapshot), snap)
    late = snapshot_dates(BASE)[-1]
    with pytest.raises(ValueError, match="label window .* is not inside the simulated history"):
        weekly_snapshot(sim, late)
    with pytest.raises(ValueError, match="is not a Monday"):
        weekly_snapshot(sim, snapshot + dt.timedelta(days=1))


def test_the_price_increase_raises_fees_and_churn_from_its_start_only(sim, raised):
    start = INCREASE.start
    # before the start the two histories are the same, draw for draw
    for table, column in (("usage_events", "event_time"), ("support_contacts", "event_time"),
                          ("cancellations", "cancel_date")):
        before = [f.table(table) for f in (sim, raised)]
        before = [f[(_day(f[column]) if column == "event_time" else f[column]) < start] for f in before]
        pd.testing.assert_frame_equal(*before)
    changes = raised.fee_changes
    assert len(changes) > 0 and (changes["change_date"] == start).all()
    assert np.allclose(changes["new_fee"], np.round(changes["old_fee"] * 1.15, 2))
    plans = changes["customer_id"].map(raised.customers.set_index("customer_id")["plan"])
    assert set(plans) == {"basic", "standard"}
    eve, after = active_customers(raised, start - dt.timedelta(days=1)), active_customers(raised, start)
    assert (eve["monthly_fee"].to_numpy() == eve["customer_id"].map(
        raised.customers.set_index("customer_id")["monthly_fee"]).to_numpy()).all()
    premium = after["plan"] == "premium"
    assert after.loc[~premium, "monthly_fee"].mean() > 1.1 * eve.loc[eve["plan"] != "premium", "monthly_fee"].mean()
    late_signups = raised.customers[(raised.customers["signup_date"] >= start) & (raised.customers["plan"] == "basic")]
    assert late_signups["monthly_fee"].max() == pytest.approx(9.99 * 1.15, abs=0.01)  # the new list fee

    def cancellations(s, lo, hi):
        return ((s.cancellations["cancel_date"] >= lo) & (s.cancellations["cancel_date"] < hi)).sum()

    after_window = (start, start + dt.timedelta(weeks=6))
    assert cancellations(raised, *after_window) > 1.3 * cancellations(sim, *after_window)
    affected = set(changes["customer_id"])
    window = raised.cancellations[raised.cancellations["cancel_date"].between(*after_window)]
    share_of_base = len(affected) / len(after)  # about 0.78: basic and standard customers
    assert window["customer_id"].isin(affected).mean() > share_of_base + 0.05  # over-represented among leavers


def test_a_simple_model_learns_the_mechanisms_on_a_later_week(sim):
    began = time.process_time()  # CPU seconds: the wall clock depends on what else the machine runs
    result = learnability(sim, train_weeks=6)
    assert time.process_time() - began < 10
    assert result["test_churners"] > 50
    assert 0.7 < result["auc"] < 0.95
    assert result["recall_at_0.1"] > 0.2  # about 2.5 times better than calling customers at random


def test_recall_at_top_fraction_and_fraction_for_recall():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 0])
    score = np.arange(10, 0, -1)  # customer 0 is the riskiest
    assert recall_at_top_fraction(y, score, 0.1) == pytest.approx(1 / 3)
    assert recall_at_top_fraction(y, score, 0.3) == pytest.approx(2 / 3)
    assert recall_at_top_fraction(y, score, 1.0) == 1.0
    assert fraction_for_recall(y, score, 0.85) == pytest.approx(0.9)
    assert fraction_for_recall(y, score, 0.5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="fraction of contactable customers"):
        recall_at_top_fraction(y, score, 0.0)


def test_landing_files_per_day_week_and_label_arrival(tmp_path):
    cfg = ChurnSimulatorConfig(n_customers=300, n_weeks=6, seed=1)
    small = simulate(cfg)
    summary = write_landing_files(small, tmp_path)
    assert (summary.days, summary.weeks, summary.label_files) == (42, 6, 2)
    assert summary.files == 4 * 42 + 6 + 2
    day = cfg.start_date + dt.timedelta(days=10)
    landed = pd.read_parquet(landing_file("churn_usage_events", day, tmp_path))
    expected = small.usage_events[_day(small.usage_events["event_time"]) == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(landed, expected, check_dtype=False)
    assert str(landed["event_time"].dtype) == "datetime64[us, UTC]"
    snapshot = snapshot_dates(cfg)[0]
    extract = pd.read_parquet(landing_file("churn_customers", snapshot, tmp_path))
    assert sorted(extract["customer_id"]) == sorted(active_customers(small, snapshot)["customer_id"])
    assert "cancel_date" not in extract.columns  # the extract does not know the future
    labels = pd.read_parquet(landing_file("churn_labels", snapshot + dt.timedelta(days=30), tmp_path))
    assert list(labels.columns) == ["snapshot_date", "customer_id", "churned_30d"]
    assert labels["churned_30d"].sum() == weekly_snapshot(small, snapshot)["churned_30d"].sum()
    empty_days = [d for d in (cfg.start_date + dt.timedelta(days=i) for i in range(42))
                  if not (small.cancellations["cancel_date"] == d).any()]
    assert pd.read_parquet(landing_file("churn_cancellations", empty_days[0], tmp_path)).empty


def test_command_line_writes_the_landing_files(tmp_path, capsys):
    summary = main(["--out", str(tmp_path), "--customers", "200", "--weeks", "5", "--seed", "2",
                    "--price-increase", "2026-01-19:0.1:basic"])
    assert summary.files == 4 * 35 + 5 + 1
    assert "simulated" in capsys.readouterr().out
    assert landing_file("churn_customers", dt.date(2026, 2, 2), tmp_path).is_file()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--price-increase", "2026-01-19:0.1:gold"])

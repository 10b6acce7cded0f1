"""Plausibility, not only syntax: the raw suites bound what a day of the feed may look like against
the days published before it (include/pipelines/fraud/plausibility.yaml): replayed content, the fraud
rate, id continuity, the busiest hour, the busiest customer and terminal, distinct customers.

- No false alarm: 60 ordinary simulated days, then each drift scenario of the demo (real changes,
  not data errors), validated through the real checkpoints, all pass.
- Bad input: each implausible day is stopped by its ingest checkpoint without retry, with a message
  naming the partition, the statistic, its value and the bound; nothing is published, earlier
  partitions are unchanged, the file is kept in quarantine with failure.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.pipelines.fraud.simulator import SimulatorConfig, simulate
from include.pipelines.fraud.simulator.generator import DriftScenario
from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions
from include.storage import day_range, landing_file, partition_file
from include.validation.datasets import DATASETS, validate_partitions
from tests.conftest import REPO, SMALL
from tests.integration.test_bad_input import (
    EXPECT_INGEST,
    _assert_names,
    _change,
    _first_lines,
    _sha,
    _snapshot,
    _validate,
)
from tools.demo import DEFAULT_MAGNITUDE

# --- no false alarm on ordinary days and on the drift scenarios ----------------------------------------

# A fraud rate of the full-scale shape (about 1 %, a handful of frauds a day in the first weeks) at a
# twentieth of its volume: one compromised terminal and one customer a day instead of 2 and 3 (the
# simulator's counts are absolute; at 200 customers and 400 terminals, SMALL's rate is about 20 %).
# 5,000 terminals: the demo's, so its terminal_wave magnitude keeps its meaning.
ORDINARY = SimulatorConfig(n_customers=500, n_terminals=5_000, n_days=60, start_date=dt.date(2026, 1, 1), seed=11,
                           compromised_terminals_per_day=1, compromised_customers_per_day=1)
DRIFT_START = ORDINARY.start_date + dt.timedelta(days=45)
LABEL_DELAY = dt.timedelta(days=7)
# what each scenario changes that a plausibility check reads: the times of day (night_shift), the
# fraud rate (amount_shift makes more amounts above the large-amount rule, terminal_wave compromises
# more terminals). amount_shift's larger amounts meet only the amount range check, which existed before.
DRIFT_CHANGES = {"amount_shift": ("labels",), "night_shift": ("transactions",), "terminal_wave": ("labels",)}


def _publish_all(root: Path, cfg: SimulatorConfig) -> pd.DataFrame:
    """Landing files of every day, and every day published (as ingest leaves them): each day is then
    validated against the days around it, as a rerun of it would be."""
    tx = simulate(cfg).transactions
    write_landing_files(tx, root)
    write_raw_partitions(tx, root)
    return tx


def _all_pass(dataset: str, days: list[dt.date]) -> None:
    reports = validate_partitions(dataset, days)  # one CheckpointRunner for the range; raises on any failure
    assert len(reports) == len(days) and all(r.success for r in reports)


@pytest.mark.slow
def test_sixty_ordinary_days_pass_every_plausibility_check(data_root):
    tx = _publish_all(data_root, ORDINARY)
    days = day_range(ORDINARY.start_date, ORDINARY.end_date)
    _all_pass("raw_transactions", days)
    _all_pass("raw_labels", days)

    # not vacuous: on the last day the bounds were learnt from the days before, and are tight
    last = days[-1]
    tx_bounds = DATASETS["raw_transactions"].parameters(last, data_root, {})
    assert tx_bounds["min_transaction_id"] == tx.loc[tx["ds"] == last - dt.timedelta(days=1), "transaction_id"].max() + 1
    assert 0.1 < tx_bounds["max_busiest_hour_share"] < 0.3 and tx_bounds["max_top_customer_share"] < 0.1
    assert tx_bounds["min_distinct_customers"] > 100
    labels = DATASETS["raw_labels"].parameters(last, data_root, {})
    labelled = tx[tx["ds"] == last - LABEL_DELAY]
    assert labels["expected_rows"] == len(labelled) and labels["max_frauds"] < 0.2 * len(labelled)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(DRIFT_CHANGES))
def test_a_drift_scenario_is_no_plausibility_failure(data_root, kind):
    """The demo's drift, from day 45 at its default magnitude: the days it changes pass."""
    cfg = SimulatorConfig(**{**ORDINARY.__dict__, "drift": (DriftScenario(kind, DRIFT_START, DEFAULT_MAGNITUDE[kind]),)})
    tx = _publish_all(data_root, cfg)
    drifted = day_range(DRIFT_START, cfg.end_date)
    if "transactions" in DRIFT_CHANGES[kind]:
        _all_pass("raw_transactions", drifted)
    if "labels" in DRIFT_CHANGES[kind]:  # the labels of the drifted days arrive a week later
        _all_pass("raw_labels", day_range(DRIFT_START + LABEL_DELAY, cfg.end_date))
    if kind == "amount_shift":  # a real change of the fraud rate, which the band must let through
        rate = tx.groupby(tx["ds"] >= DRIFT_START)["tx_fraud"].mean()
        assert rate[True] > 2.5 * rate[False]


# --- bad input: implausible days of the small simulation ------------------------------------------------

PLAUSIBLE_DAY = SMALL.start_date + dt.timedelta(days=30)  # a month of history; its labels are of day 23


@pytest.fixture
def month(data_root, small_sim) -> Path:
    """Landing files up to PLAUSIBLE_DAY; the days before published, as ingest left them."""
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= PLAUSIBLE_DAY], data_root)
    write_raw_partitions(tx[tx["ds"] < PLAUSIBLE_DAY], data_root)
    return data_root


def _replayed(f: pd.DataFrame) -> pd.DataFrame:
    """Every transaction twice: the copy under new ids, after the day's own."""
    copy = f.assign(transaction_id=f["transaction_id"] + len(f))
    return pd.concat([f, copy], ignore_index=True)


def _one_customer_half(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(customer_id=f["customer_id"].where(f.index % 2 == 1, int(f["customer_id"].iloc[0])))


def _terminal_zero_half(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(terminal_id=f["terminal_id"].where(f.index % 2 == 1, 0))


def _terminal_null_half(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(terminal_id=f["terminal_id"].astype("Int64").mask(f.index % 2 == 0))


@dataclass(frozen=True)
class Implausible:
    source: str  # transactions | labels
    what: str
    spoil: Callable[[pd.DataFrame], pd.DataFrame]
    names: tuple[str, ...]  # the column and expectation, the statistic and its observed value
    bound: str | None = None  # the suite parameter whose value the message must show


IMPLAUSIBLE = [
    Implausible("transactions", "every transaction twice under new ids (a replayed delivery)", _replayed,
                ("expect_compound_columns_to_be_unique", "rows repeating another row's content under a new id",
                 "(100.0 % of rows)"), "content_unique_mostly"),
    Implausible("transactions", "ids restarting at 0 (not after yesterday's last id)",
                lambda f: f.assign(transaction_id=np.arange(len(f))),
                ("column transaction_id: expect_column_values_to_be_between", "transaction ids (>= 0"),
                "min_transaction_id"),
    Implausible("transactions", "negative transaction ids", lambda f: f.assign(transaction_id=-f["transaction_id"]),
                ("column transaction_id: expect_column_values_to_be_between", "e.g. ['-"),
                "min_transaction_id"),
    Implausible("transactions", "ids shuffled within the day (no longer in time order)",
                lambda f: f.assign(transaction_id=np.random.default_rng(0).permutation(f["transaction_id"].to_numpy())),
                ("table: expect_share_out_of_order_to_be_between", "share of transactions earlier than the one of "
                 "the id before"), "max_out_of_order_share"),
    Implausible("transactions", "all the day's traffic in one hour (every timestamp at midnight)",
                lambda f: f.assign(tx_datetime=f["tx_datetime"].dt.floor("D")),
                ("column tx_datetime: expect_column_largest_share_to_be_between",
                 "share of the day's transactions in its busiest hour: observed 1.0"), "max_busiest_hour_share"),
    Implausible("transactions", "one customer making half the day's transactions", _one_customer_half,
                ("column customer_id: expect_column_largest_share_to_be_between",
                 "share of the day's transactions of its most active customer: observed 0.5"),
                "max_top_customer_share"),
    Implausible("transactions", "terminal_id defaulted to 0 on half the rows", _terminal_zero_half,
                ("column terminal_id: expect_column_largest_share_to_be_between",
                 "share of the day's transactions at its busiest terminal: observed 0.5"), "max_top_terminal_share"),
    Implausible("transactions", "terminal_id null on half the rows", _terminal_null_half,
                ("column terminal_id: expect_column_values_to_not_be_null", "unexpected values")),
    Implausible("transactions", "customer_id holding the transaction id (a mis-mapped column)",
                lambda f: f.assign(customer_id=f["transaction_id"]),
                ("column customer_id: expect_column_unique_value_count_to_be_between",
                 "distinct customers of the day: observed"), "max_distinct_customers"),
    Implausible("labels", "every label 1", lambda f: f.assign(tx_fraud=1),
                ("column tx_fraud: expect_column_sum_to_be_between", "frauds among the day's labels",
                 "expect_column_pair_values_to_be_in_set"), "max_frauds"),
    Implausible("labels", "every label 1, each with a fraud scenario (consistent, but implausible)",
                lambda f: f.assign(tx_fraud=1, tx_fraud_scenario=2),
                ("column tx_fraud: expect_column_sum_to_be_between", "frauds among the day's labels"), "max_frauds"),
    Implausible("labels", "every label 0 on a day of about 70 expected frauds",
                lambda f: f.assign(tx_fraud=0, tx_fraud_scenario=0),
                ("column tx_fraud: expect_column_sum_to_be_between", "frauds among the day's labels: observed 0"),
                "min_frauds"),
    Implausible("labels", "a fraud label without its scenario (tx_fraud 1, tx_fraud_scenario 0)",
                lambda f: f.assign(tx_fraud_scenario=f["tx_fraud_scenario"].where(f["tx_fraud"] == 0, 0)),
                ("expect_column_pair_values_to_be_in_set", "(tx_fraud, tx_fraud_scenario) pairs", "(1, 0)")),
]


@pytest.mark.parametrize("bad", IMPLAUSIBLE, ids=lambda b: f"{b.source}-{b.what}")
def test_an_implausible_day_is_stopped_by_its_validation(month, reliability, bad):
    case = reliability.case("bad input", f"raw {bad.source}: {bad.what}", expected=EXPECT_INGEST.format(source=bad.source))
    landing, before = landing_file(bad.source, PLAUSIBLE_DAY, month), _snapshot(month, "raw")
    bounds = DATASETS[f"raw_{bad.source}"].parameters(PLAUSIBLE_DAY, month, {})
    _change(bad.spoil)(landing)
    delivered = _sha(landing)

    with pytest.raises(AirflowFailException) as stopped:  # fails without retry: a retry cannot fix the data
        _validate(f"raw_{bad.source}", [PLAUSIBLE_DAY])
    message = str(stopped.value)
    case.observed = _first_lines(message)
    _assert_names(message, f"raw_{bad.source} ds={PLAUSIBLE_DAY}", str(landing), *bad.names)
    if bad.bound:  # the bound it broke, as learnt for that day
        value = bounds[bad.bound]
        key = "mostly" if bad.bound == "content_unique_mostly" else bad.bound.split("_", 1)[0] + "_value"
        assert f"'{key}': {value}" in message or f"'{key}': {float(value)}" in message, (key, value, message)

    assert not partition_file("raw", bad.source, PLAUSIBLE_DAY, month).exists()  # nothing published
    kept = month / "quarantine" / "landing" / bad.source / f"ds={PLAUSIBLE_DAY}"
    assert _sha(kept / landing.name) == delivered
    failure = json.loads((kept / "failure.json").read_text())
    assert failure["success"] is False and failure["ds"] == str(PLAUSIBLE_DAY) and failure["failures"]
    assert _snapshot(month, "raw") == before  # earlier partitions untouched


# Another task's process (validate_features, validate_predictions) loads the same GX project, whose
# stored suites and results hold the project's own expectation, and renders the Data Docs index.
OTHER_TASK = """
import sys
from pathlib import Path
from include.validation.checkpoints import gx_context
context = gx_context(Path(sys.argv[1]))
context.suites.get("raw_transactions")
context.build_data_docs()
print("rendered")
"""


def test_the_unspoilt_day_passes_with_bounds_learnt_from_the_month(month):
    for source in ("transactions", "labels"):  # the control: each case above fails for its spoil alone
        _validate(f"raw_{source}", [PLAUSIBLE_DAY])
    bounds = DATASETS["raw_labels"].parameters(PLAUSIBLE_DAY, month, {})
    assert 0 < bounds["min_frauds"] < bounds["max_frauds"] < bounds["expected_rows"]  # a band learnt, not [0, all]

    # a process that never built the raw suites still knows their expectations (no "... not found")
    done = subprocess.run([sys.executable, "-c", OTHER_TASK, str(month)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'plugins'}"})
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "rendered" in done.stdout, output[-3000:]
    assert "not found" not in output and "Traceback" not in output, output[-3000:]


def test_a_quiet_day_is_plausible_when_few_frauds_are_expected(data_root, small_sim, reliability):
    """Ten days into the history the recent label days hold too few frauds to learn a rate from: a
    day without fraud is accepted (two frauds a day make a quiet day likely)."""
    day = SMALL.start_date + dt.timedelta(days=10)
    case = reliability.case("unusual input", "raw labels: no fraud on a day of few expected frauds (early history)",
                            expected="validate_labels (ingest) passes: a day without fraud is plausible when "
                                     "few are expected")
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= day], data_root)
    write_raw_partitions(tx[tx["ds"] < day], data_root)
    landing = landing_file("labels", day, data_root)
    _change(lambda f: f.assign(tx_fraud=0, tx_fraud_scenario=0))(landing)
    bounds = DATASETS["raw_labels"].parameters(day, data_root, {})
    _validate("raw_labels", [day])
    case.observed = f"passed: frauds bounded by [{bounds['min_frauds']}, {bounds['max_frauds']}] of " \
                    f"{bounds['expected_rows']} labels"
    assert bounds["min_frauds"] == 0


def test_a_bad_plausibility_config_stops_ingest_validation_naming_file_and_key(month, tmp_path, monkeypatch,
                                                                               reliability):
    case = reliability.case("bad input", "plausibility.yaml: a fraud-rate maximum of 1.5 (above 1)",
                            expected="validate_labels (ingest) fails without retry naming the file, the key, the "
                                     "value and the rule; the landing file is not judged nor quarantined")
    path = tmp_path / "plausibility.yaml"
    path.write_text("labels:\n  fraud_rate: {low: 0.25, high: 6.0, max: 1.5}\n")
    monkeypatch.setenv("BATCHML_PLAUSIBILITY_CONFIG", str(path))
    landing, before = landing_file("labels", PLAUSIBLE_DAY, month), _snapshot(month, "raw")
    delivered = _sha(landing)
    with pytest.raises(AirflowFailException) as stopped:
        _validate("raw_labels", [PLAUSIBLE_DAY])
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), str(path), "'labels.fraud_rate.max' must lie in [0, 1]", "1.5")
    assert not partition_file("raw", "labels", PLAUSIBLE_DAY, month).exists() and _snapshot(month, "raw") == before
    assert not (month / "quarantine").exists() and _sha(landing) == delivered


def test_a_quiet_holiday_is_refused_with_the_band_to_widen_then_accepted_once_widened(month, tmp_path, monkeypatch,
                                                                                     reliability):
    """A public holiday with 40 % of the usual volume is a real day. It breaks the row-count band (0.5x
    the recent median); the message must say which band and where to widen it. The band used to be a
    constant of the code (and the Variables only set absolute bounds, which cannot widen it): the
    runbook's "widen that bound in plausibility.yaml" had nothing to widen."""
    case = reliability.case("unusual input", "raw transactions: a quiet public holiday (a random 40 % of the "
                                             "usual volume)",
                            expected="validate_transactions refuses it without retry naming the row count, the "
                                     "band and where to widen it (plausibility.yaml transactions.rows); with that "
                                     "band widened, the same file passes")
    landing = landing_file("transactions", PLAUSIBLE_DAY, month)
    _change(lambda f: f[np.random.default_rng(1).random(len(f)) < 0.4].reset_index(drop=True))(landing)
    with pytest.raises(AirflowFailException) as stopped:
        _validate("raw_transactions", [PLAUSIBLE_DAY])
    message = str(stopped.value)
    _assert_names(message, f"raw_transactions ds={PLAUSIBLE_DAY}", "expect_table_row_count_to_be_between",
                  "rows of the day", "transactions.rows of plausibility.yaml", "batchml_min_daily_transactions")
    assert not partition_file("raw", "transactions", PLAUSIBLE_DAY, month).exists()

    kept = month / "quarantine" / "landing" / "transactions" / f"ds={PLAUSIBLE_DAY}" / landing.name
    landing.write_bytes(kept.read_bytes())  # redelivered as it was, with the band widened for the day
    path = tmp_path / "plausibility.yaml"
    path.write_text("transactions:\n  rows: {low: 0.3, high: 2.0}\n")
    monkeypatch.setenv("BATCHML_PLAUSIBILITY_CONFIG", str(path))
    _validate("raw_transactions", [PLAUSIBLE_DAY])
    bounds = DATASETS["raw_transactions"].parameters(PLAUSIBLE_DAY, month, {})
    case.observed = f"{_first_lines(message, 2)} / widened to rows.low 0.3: passed (rows in [{bounds['min_rows']}, " \
                    f"{bounds['max_rows']}])"


def test_labels_of_a_day_whose_transactions_were_never_published_are_not_judged(month, reliability):
    """Mid-history, the transactions of the labelled day (ds - 7) were refused a week ago and never
    redelivered. The labels used to be judged against "0 expected rows" and quarantined as bad data,
    though nothing is wrong with them."""
    from airflow.exceptions import AirflowException

    labelled_day = PLAUSIBLE_DAY - LABEL_DELAY
    case = reliability.case("bad input", "raw labels: labels of a day whose transactions were never published "
                                         "(refused a week before), mid-history",
                            expected="validate_labels (ingest) fails with a retryable error naming the missing "
                                     "transactions partition and what to do; the labels file stays in landing/, "
                                     "not quarantined; nothing published")
    partition_file("raw", "transactions", labelled_day, month).unlink()
    landing, before = landing_file("labels", PLAUSIBLE_DAY, month), _snapshot(month, "raw")
    delivered = _sha(landing)
    with pytest.raises(AirflowException) as stopped:
        _validate("raw_labels", [PLAUSIBLE_DAY])
    assert not isinstance(stopped.value, AirflowFailException)  # retried: the transactions may be redelivered
    case.observed = _first_lines(str(stopped.value))
    _assert_names(str(stopped.value), f"raw_labels ds={PLAUSIBLE_DAY}", f"transactions of {labelled_day}",
                  "were not published", f"redeliver landing/transactions for {labelled_day}")
    assert _sha(landing) == delivered and not (month / "quarantine").exists()
    assert not partition_file("raw", "labels", PLAUSIBLE_DAY, month).exists() and _snapshot(month, "raw") == before

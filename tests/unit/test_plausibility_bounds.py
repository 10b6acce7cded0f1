"""The plausibility bounds: the schema of plausibility.yaml, and the arithmetic of a day's bounds
(a band around the recent reference, widened by the binomial noise of the day's count), checked
against scipy and hand-computed cases."""

from __future__ import annotations

import pytest
import yaml
from scipy.stats import binom

from include.config import ConfigError
from include.validation.plausibility import (
    DEFAULT_PATH,
    ShareBand,
    band_of,
    count_bounds,
    load_plausibility,
    median_of,
    relative_bounds,
    share_bounds,
)

RATE = ShareBand(low=0.25, high=6.0, max=0.5)


def test_the_shipped_file_loads_with_the_documented_defaults():
    cfg = load_plausibility(DEFAULT_PATH)
    assert cfg.recent_days == 7 and cfg.labels.fraud_rate == RATE and cfg.transactions.max_duplicate_share == 0.01


@pytest.mark.parametrize(("reference", "expected"), [
    (None, (0.0, 0.5)),  # no reference: the absolute bounds
    (0.01, (0.0025, 0.06)),  # the band around it
    (0.2, (0.05, 0.5)),  # the band clipped to the absolute maximum
    (0.0, (0.0, 0.0)),  # a band of nothing: no fraud expected
])
def test_the_band_around_the_reference_inside_the_absolute_bounds(reference, expected):
    assert band_of(reference, RATE) == pytest.approx(expected)


def test_a_band_outside_the_absolute_bounds_gives_way_to_them():
    assert band_of(0.9, ShareBand(low=0.8, high=2.0, max=0.5)) == (0.0, 0.5)  # 0.72 > 0.5: absolute


def test_count_bounds_are_the_binomial_quantiles_at_the_false_alarm_rate():
    n, alpha = 10_000, 1e-6
    low, high = count_bounds(n, 0.0084, RATE, alpha)
    assert low == binom.ppf(alpha, n, 0.0084 * 0.25) and high == binom.isf(alpha, n, 0.0084 * 6)
    assert binom.cdf(low - 1, n, 0.0021) < alpha <= binom.cdf(low, n, 0.0021)  # below low: rarer than alpha
    assert binom.sf(high, n, 0.0504) <= alpha


def test_no_fraud_is_plausible_on_a_small_day_and_implausible_on_a_large_one():
    assert count_bounds(250, 0.0084, RATE, 1e-6)[0] == 0  # ~2 frauds expected: a quiet day happens
    assert count_bounds(10_000, 0.0084, RATE, 1e-6)[0] > 0  # ~84 expected: none at all is an error
    assert count_bounds(10_000, 0.0084, RATE, 1e-6)[1] < 10_000 // 2  # and all-fraud far above the maximum


def test_an_empty_day_expects_no_fraud():
    assert count_bounds(0, 0.01, RATE, 1e-6) == (0, 0)


def test_share_bounds_are_the_count_bounds_over_the_rows_rounded_outwards():
    low, high = count_bounds(347, 0.09, ShareBand(high=2.5, max=0.5), 1e-6)
    assert share_bounds(347, 0.09, ShareBand(high=2.5, max=0.5), 1e-6) == (
        pytest.approx(low / 347, abs=1e-6), pytest.approx(high / 347, abs=1e-6))
    assert share_bounds(347, 0.09, ShareBand(high=2.5, max=0.5), 1e-6)[1] >= high / 347
    assert share_bounds(None, 0.09, ShareBand(high=2.5, max=0.5), 1e-6) == (0.0, 0.225)  # unknown n: the band


def test_median_and_relative_bounds_need_enough_days():
    assert median_of([3, 1], 3) is None and median_of([3, 1, 2], 3) == 2
    assert relative_bounds(None, RATE) == {"min": 0, "max": None}
    assert relative_bounds(140, load_plausibility(DEFAULT_PATH).transactions.distinct_customers) == {"min": 70, "max": 280}


def _write(tmp_path, edit) -> str:
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    edit(raw)
    path = tmp_path / "plausibility.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(("edit", "names"), [
    (lambda r: r["labels"]["fraud_rate"].update(max=1.5), ("'labels.fraud_rate.max' must lie in [0, 1]", "1.5")),
    (lambda r: r["labels"]["fraud_rate"].update(min=0.4, max=0.3), ("'min' (0.4) must be <= 'max' (0.3)",)),
    (lambda r: r["transactions"]["busiest_hour_share"].update(high=0.5), ("'high' (0.5) must be >= 1",)),
    (lambda r: r.update(min_recent_days=9), ("'min_recent_days' (9) must be <= 'recent_days' (7)",)),
    (lambda r: r["transactions"].update(max_duplicate_shar=0.1), ("unknown key(s) ['max_duplicate_shar']",)),
    (lambda r: r.update(false_alarm="small"), ("'false_alarm' must be a float", "'small'")),
    # a million days back ran dates out of range: OverflowError inside the checkpoint, retried
    (lambda r: r.update(recent_days=1_000_000), ("'recent_days' must be <= 366", "1000000")),
])
def test_a_bad_plausibility_file_is_refused_naming_file_key_value_and_rule(tmp_path, edit, names):
    path = _write(tmp_path, edit)
    with pytest.raises(ConfigError) as refused:
        load_plausibility(path)
    for name in (path, *names):
        assert name in str(refused.value), str(refused.value)


def test_a_history_without_fraud_teaches_no_rate_even_when_no_minimum_is_set(tmp_path, monkeypatch):
    """Three published label days without a fraud and ``min_reference_frauds: 0``: a learnt rate of 0
    would make any fraud implausible; the absolute bounds apply instead."""
    import datetime as dt

    import pandas as pd

    from include.storage import partition_file, write_parquet_atomic
    from include.validation.datasets import label_plausibility

    day = dt.date(2026, 3, 10)
    for back in (1, 2, 3):
        write_parquet_atomic(pd.DataFrame({"transaction_id": [1, 2], "tx_fraud": [0, 0], "tx_fraud_scenario": [0, 0]}),
                             partition_file("raw", "labels", day - dt.timedelta(days=back), tmp_path))
    config = tmp_path / "plausibility.yaml"
    config.write_text("labels: {min_reference_frauds: 0}\n")
    monkeypatch.setenv("BATCHML_PLAUSIBILITY_CONFIG", str(config))
    assert label_plausibility(day, tmp_path, 1_000) == {"min_frauds": 0,
                                                        "max_frauds": count_bounds(1_000, None, RATE, 1e-6)[1]}


def test_the_statistics_of_the_custom_expectations_on_hand_made_frames():
    import pandas as pd

    from include.validation.expectations import largest_share, share_out_of_order

    times = pd.to_datetime(["2026-03-01 10:05", "2026-03-01 10:50", "2026-03-01 09:00", "2026-03-01 23:59"])
    frame = pd.DataFrame({"transaction_id": [4, 1, 2, 3], "tx_datetime": times, "customer_id": [7, 7, 7, None]})
    # by id: 1 10:50, 2 09:00 (steps back), 3 23:59, 4 10:05 (steps back): 2 of 4 rows
    assert share_out_of_order(frame, "transaction_id", "tx_datetime") == 0.5
    assert share_out_of_order(frame.iloc[:1], "transaction_id", "tx_datetime") == 0.0
    assert largest_share(frame["tx_datetime"], per="h") == 0.5  # two of four in the 10:00 hour
    assert largest_share(frame["customer_id"]) == 1.0  # of the non-null values
    assert largest_share(frame["customer_id"].iloc[3:]) == 0.0  # nothing but nulls

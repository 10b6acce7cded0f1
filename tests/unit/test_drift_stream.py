"""Monitoring a day in bounded batches: the streamed drift counts (include.drift.stats.ColumnCounts),
the realised performance in two passes (include.drift.performance.RealisedCounts) and the day read from
its partitions (include.drift.monitor) give the whole-frame figures (scipy, scikit-learn, pandas), and
the memory of the drift pass does not grow with the day.

Real parquet files, scipy and scikit-learn; no registry (the figures are compared, not the verdicts'
registry lookups, which tests/integration/test_monitoring_stream.py covers end to end)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp

from include.config import LABEL_DELAY_DAYS
from include.drift import monitor
from include.drift.config import load_monitoring_config
from include.drift.performance import RealisedCounts
from include.drift.reference import fit_distribution, fit_references
from include.drift.stats import KS_EXACT_MAX_N, ColumnCounts, ks, psi
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.scoring import PREDICTIONS
from include.storage import partition_file
from include.training.metrics import evaluate
from tests.conftest import REPO

CFG = load_monitoring_config()
DAY = dt.date(2026, 3, 10)


def _in_batches(values, size: int):
    return [values[i:i + size] for i in range(0, len(values), size)]


@pytest.mark.parametrize(("case", "n", "size"), [
    ("normal, asymptotic KS", 3 * KS_EXACT_MAX_N, 1_000),
    ("normal, exact KS", KS_EXACT_MAX_N, 999),
    ("rounded (ties), asymptotic KS", 25_000, 4_096),
    ("rounded with NaN, exact KS", 4_000, 333),
    ("0/1 flag", 30_000, 2_500),
])
def test_column_counts_in_batches_equal_the_whole_column_and_scipy(case, n, size):
    rng = np.random.default_rng(n)
    if case == "0/1 flag":
        reference = fit_distribution(rng.integers(0, 2, 20_000))
        day = rng.integers(0, 2, n).astype(float)
    else:
        reference = fit_distribution(np.round(rng.normal(size=20_000), 1 if "ties" in case else 12))
        day = np.round(rng.normal(0.05, 1.1, n), 1 if "ties" in case or "NaN" in case else 12)
        if "NaN" in case:
            day[::17] = np.nan
    streamed = ColumnCounts(reference, ks_test=True)
    for batch in _in_batches(day, size):
        streamed.add(batch)
    assert streamed.psi(warn=CFG.psi_warn, alert=CFG.psi_alert) == psi(reference, day, warn=CFG.psi_warn,
                                                                       alert=CFG.psi_alert), case
    got = streamed.ks(p_threshold=CFG.ks_p_value, statistic_threshold=CFG.ks_statistic)
    assert got == ks(reference, day, p_threshold=CFG.ks_p_value, statistic_threshold=CFG.ks_statistic), case
    want = ks_2samp(np.asarray(reference.sample), day[~np.isnan(day)])
    assert abs(got.statistic - want.statistic) <= 1e-12, case
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300), case


def test_an_empty_column_streams_to_no_data():
    counts = ColumnCounts(fit_distribution(np.arange(100.0)))
    counts.add(np.array([np.nan, np.nan])).add(np.zeros(0))
    assert counts.psi(warn=0.1, alert=0.2).level == "no data"
    assert np.isnan(counts.ks(p_threshold=0.05, statistic_threshold=0.1).statistic)


def _labelled_day(rng, n: int, decimals: int | None = None, fraud_rate: float = 0.01):
    scores = rng.beta(0.5, 20, n)
    if decimals is not None:
        scores = np.round(scores, decimals)
    labels = (rng.random(n) < fraud_rate + scores).astype(int)
    return pd.DataFrame({"score": scores, "tx_fraud": labels, "customer_id": rng.integers(0, n // 3 + 1, n),
                         "ds": DAY})


@pytest.mark.parametrize(("case", "frame"), [
    ("continuous scores", _labelled_day(np.random.default_rng(1), 20_000)),
    ("scores with ties (3 decimals)", _labelled_day(np.random.default_rng(2), 20_000, decimals=3)),
    ("few distinct scores", _labelled_day(np.random.default_rng(3), 5_000, decimals=1)),
    ("no fraud", _labelled_day(np.random.default_rng(4), 3_000).assign(tx_fraud=0)),
    ("all fraud", _labelled_day(np.random.default_rng(5), 300).assign(tx_fraud=1)),
    ("fewer cards than k", _labelled_day(np.random.default_rng(6), 90)),
    ("empty", _labelled_day(np.random.default_rng(7), 0)),
])
@pytest.mark.parametrize("size", [97, 1_000_000])
def test_realised_counts_in_two_passes_equal_evaluate(case, frame, size):
    threshold = 0.2
    want = evaluate(frame, threshold, missed_fraud_cost=1000, false_alarm_cost=50)
    counts = RealisedCounts(threshold, missed_fraud_cost=1000, false_alarm_cost=50)
    parts = [frame.iloc[i:i + size] for i in range(0, max(len(frame), 1), size)]
    for part in parts:
        counts.add(part["score"], part["tx_fraud"], part["customer_id"])
    for part in reversed(parts):  # the second pass reads the batches in any order
        counts.add_genuine(part["score"], part["tx_fraud"])
    got = counts.figures()
    assert set(got) == set(want) - {"brier_score"}
    for key, value in got.items():
        assert value == pytest.approx(want[key], rel=1e-12, abs=1e-15, nan_ok=True), (case, key)


def test_the_second_pass_must_see_the_same_day():
    counts = RealisedCounts(0.5).add([0.1, 0.9], [0, 1], [1, 2])
    counts.add_genuine([0.1, 0.2], [0, 0])
    with pytest.raises(RuntimeError, match="second pass saw 2 genuine transactions, the first 1"):
        counts.figures()


def _write(frame: pd.DataFrame, path, row_group: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)


@pytest.fixture
def day_on_disk(tmp_path):
    """One monitored day's partitions (features, predictions, labels of the scored day arriving on the
    monitored day) in random order, some predictions without a label, and a reference fitted on a
    history whose amounts were twice the day's: 30,000 rows, the asymptotic KS regime."""
    rng = np.random.default_rng(42)
    n = 30_000
    features = pd.DataFrame({c: np.round(rng.gamma(2.0, 3.0, n), 2) for c in MODEL_INPUTS})
    for flag in ("tx_during_weekend", "tx_during_night"):
        features[flag] = rng.integers(0, 2, n)
    features.insert(0, "transaction_id", rng.permutation(n).astype("int64"))
    history = pd.DataFrame({c: np.round(rng.gamma(2.2, 3.0, 20_000), 2) for c in MODEL_INPUTS})
    history["tx_amount"] = np.round(rng.gamma(2.0, 6.0, 20_000), 2)  # the day's amounts drifted
    history["tx_during_night"] = rng.integers(0, 2, 20_000)
    history["tx_during_weekend"] = rng.integers(0, 2, 20_000)
    reference = {"features": fit_references(history, MODEL_INPUTS),
                 "score": fit_distribution(rng.beta(0.5, 20, 20_000)).as_dict()}
    scored = _labelled_day(rng, n, decimals=4)
    preds = pd.DataFrame({"transaction_id": features["transaction_id"], "customer_id": scored["customer_id"],
                          "score": scored["score"], "model_version": "3", "run_id": "r1", "threshold": 0.2})
    labels = pd.DataFrame({"transaction_id": features["transaction_id"], "tx_fraud": scored["tx_fraud"]})
    labels = labels.sample(frac=0.97, random_state=1)  # 3 % not labelled: the inner join drops them
    root = tmp_path / "lake"
    scored_day = DAY - dt.timedelta(days=LABEL_DELAY_DAYS)
    _write(features, partition_file("features", "baseline", DAY, root), row_group=n)
    _write(preds, partition_file(*PREDICTIONS, scored_day, root), row_group=n)
    _write(labels, partition_file("raw", "labels", DAY, root))
    return root, features, preds, labels, reference, scored_day


def test_a_day_streamed_from_its_partitions_gives_the_whole_frame_figures(day_on_disk):
    root, features, preds, labels, reference, scored_day = day_on_disk
    scores = preds["score"].to_numpy()
    whole = monitor.drift_of_day(features, scores, reference, CFG, MODEL_INPUTS)
    streamed = monitor.stream_drift(partition_file("features", "baseline", DAY, root), scores, reference, CFG,
                                    MODEL_INPUTS, size=1_000)
    assert [r["column_name"] for r in streamed] == [r["column_name"] for r in whole]
    assert json.dumps(streamed) == json.dumps(whole)  # the same floats, to the bit
    assert any(r["drifted"] for r in streamed) and not all(r["drifted"] for r in streamed)

    scored = monitor._scored(partition_file(*PREDICTIONS, scored_day, root), size=1_000)
    assert (scored.version, scored.threshold, scored.run_id) == ("3", 0.2, "r1")
    np.testing.assert_array_equal(scored.scores, scores)

    # the realised performance: the inner join of the old whole-frame code against the streamed one
    merged = preds.merge(labels, on="transaction_id", how="inner").assign(ds=scored_day)
    want = monitor.performance_verdict(merged, {"auc_roc": 0.9, "average_precision": 0.6}, 0.2, CFG)
    version, batches = monitor._labelled(scored_day, root, ["customer_id", "score"], PREDICTIONS, size=1_000)
    assert version == "3" and sum(len(b["score"]) for b in batches()) == len(merged)
    got = monitor.realised_verdict(*monitor.realised_of(batches, 0.2, CFG),
                                   {"auc_roc": 0.9, "average_precision": 0.6}, CFG)
    assert got.keys() == want.keys() and got["verdict"] == want["verdict"] and got["alerts"] == want["alerts"]
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert got[key] == value, key


def test_labels_given_twice_fail_naming_the_file_and_id(day_on_disk):
    root, *_ = day_on_disk
    file = partition_file("raw", "labels", DAY, root)
    labels = pd.read_parquet(file)
    _write(pd.concat([labels, labels.iloc[:1]]), file)
    with pytest.raises(ValueError, match=rf"labels {file}: transaction_id {labels['transaction_id'].iloc[0]} is "
                                         "labelled more than once"):
        monitor._labelled(DAY - dt.timedelta(days=LABEL_DELAY_DAYS), root, ["score"], PREDICTIONS)


@pytest.mark.parametrize("bad", ["0", "-5", "1e5", "many"])
def test_a_bad_batch_size_fails_naming_its_source(monkeypatch, bad):
    monkeypatch.setenv(monitor.BATCH_ROWS_ENV, bad)
    with pytest.raises(ValueError, match=rf"{monitor.BATCH_ROWS_ENV} must be a positive integer"):
        monitor.batch_rows()
    monkeypatch.setenv(monitor.BATCH_ROWS_ENV, " 2048 ")
    assert monitor.batch_rows() == 2048 and monitor.batch_rows(10) == 10


_MEASURE = textwrap.dedent("""
    import json, sys, tracemalloc
    import numpy as np, pyarrow as pa, pyarrow.compute, pyarrow.parquet, scipy.stats  # imports: not the day's
    from include.drift.config import MonitoringConfig
    from include.drift.monitor import stream_drift
    from include.drift.reference import fit_distribution
    path, size, columns = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    rng = np.random.default_rng(0)
    ref = fit_distribution(rng.normal(size=20_000)).as_dict()
    reference = {"features": {c: ref for c in columns}, "score": ref}
    cfg = MonitoringConfig(psi_warn=0.1, psi_alert=0.2, ks_p_value=0.05, ks_statistic=0.1)
    tiny = path + ".warm-up.parquet"  # a first run imports what the drift pass imports: not the day's memory
    pyarrow.parquet.write_table(pa.table({c: rng.normal(size=100) for c in columns}), tiny)
    stream_drift(tiny, np.zeros(0), reference, cfg, columns, size)
    tracemalloc.start()
    stream_drift(path, np.zeros(0), reference, cfg, columns, size)
    print(json.dumps({"numpy": tracemalloc.get_traced_memory()[1], "arrow": pa.default_memory_pool().max_memory()}))
""")


def test_peak_memory_of_the_drift_pass_is_bounded_by_the_batch_not_the_day(tmp_path):
    """Peak memory (numpy allocations traced, plus Arrow's pool) of the drift pass over a day written as
    one row group (as a Spark task writes a day), in a fresh process per size: a day 4x larger costs at
    most a tenth more, and far less than the day's columns. (Arrow's read buffers and decoded pages
    grow with the first rows and level off at a few MB per column.)"""
    columns = [f"c{i}" for i in range(4)]
    rng = np.random.default_rng(1)
    peaks = {}
    for n in (800_000, 3_200_000):
        path = tmp_path / f"day-{n}.parquet"
        pq.write_table(pa.table({c: rng.normal(size=n) for c in columns}), path, row_group_size=n)
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), "4096", ",".join(columns)], cwd=REPO,
                             capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[n] = got["numpy"] + got["arrow"]
        path.unlink()
    day_bytes = 3_200_000 * len(columns) * 8
    assert peaks[3_200_000] <= 1.1 * peaks[800_000], peaks
    assert peaks[3_200_000] < day_bytes / 4, (peaks, day_bytes)

"""Monitoring of one scored day: drift of every model feature and of the score against the
reference distributions stored with the model version that scored the day, and performance on the
labels that arrive that day (the transactions of day - 7), against the version's evaluation figures.

The verdict (alert or not, and whether it triggers training) is deduplicated per registered model:
one drift episode triggers one retraining within ``cooldown_days`` (on either side of its first day,
whatever order the days are monitored or rerun in), whichever version raised it. A
model retrained on the alert cannot have seen the drifted days yet (their labels arrive 7 days
later), so its reference is pre-drift too and it keeps alerting; deduplicating per version would
retrain every night of the episode.

A day is read in batches of ``batch_rows`` rows (:func:`batch_rows`: the ``BATCHML_MONITOR_BATCH_ROWS``
environment variable, else ``DEFAULT_BATCH_ROWS``), never as a frame: the drift counts
(include.drift.stats.ColumnCounts) and the realised performance (include.drift.performance.RealisedCounts)
add up over the batches. What is still held for a whole day, as numpy arrays: the day's scores (8 bytes
a row, for the CBPE estimate's weighted AUC), the label partition's ids and flags (9 bytes a label, to
join the predictions with their labels), and the scores and labels of the calibration days.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import LABEL_DELAY_DAYS, data_root
from include.drift.config import MonitoringConfig
from include.drift.performance import SHADOW_ROLE, RealisedCounts
from include.drift.performance import parts as perf_parts
from include.drift.reference import ReferenceDistribution
from include.drift.stats import ColumnCounts
from include.faults import failpoint
from include.scoring import PREDICTIONS, SHADOW_PREDICTIONS
from include.storage import MissingInputError, as_date, partition_dir, partition_file

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

REPORTS = ("reports", "drift")
# rows per batch read from a day's partitions (features, predictions, labels)
DEFAULT_BATCH_ROWS = 65_536
BATCH_ROWS_ENV = "BATCHML_MONITOR_BATCH_ROWS"


def batch_rows(value: int | None = None) -> int:
    """``value``, else the ``BATCHML_MONITOR_BATCH_ROWS`` environment variable, else ``DEFAULT_BATCH_ROWS``;
    ValueError naming the source unless a positive integer."""
    raw, source = (value, "batch_rows") if value is not None else (os.environ.get(BATCH_ROWS_ENV, "").strip(), BATCH_ROWS_ENV)
    if raw in ("", None):
        return DEFAULT_BATCH_ROWS
    try:
        rows = int(raw)
    except (TypeError, ValueError):
        rows = 0
    if rows < 1 or str(rows) != str(raw).strip():
        raise ValueError(f"{source} must be a positive integer (rows per batch), got {raw!r}")
    return rows


def _batches(file: Path, columns: list[str], size: int) -> Iterator[Any]:
    """The ``columns`` of a parquet file as pyarrow record batches of at most ``size`` rows."""
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20).iter_batches(batch_size=size, columns=columns)


def _column(batch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


@functools.lru_cache(maxsize=16)
def load_reference(run_id: str) -> dict:
    import mlflow

    from include.training import tracking

    tracking.client()  # the project's tracking store, whatever process this runs in
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/monitoring/reference.json")


def column_drift(name: str, reference: dict, values, cfg: MonitoringConfig) -> dict[str, Any]:
    """:func:`column_verdict` of one column given whole."""
    return column_verdict(name, ColumnCounts(ReferenceDistribution.from_dict(reference)).add(values), cfg)


def column_verdict(name: str, counts: ColumnCounts, cfg: MonitoringConfig) -> dict[str, Any]:
    """PSI, KS (numeric columns) and the drift verdict of a column from its counts over the day."""
    ref = counts.reference
    p = counts.psi(warn=cfg.psi_warn, alert=cfg.psi_alert)
    k = counts.ks(p_threshold=cfg.ks_p_value, statistic_threshold=cfg.ks_statistic) if ref.kind == "numeric" else None
    # KS on a 0/1 flag says nothing PSI does not; for numeric columns both must agree beyond a warning
    drifted = p.level == "alert" or (k is not None and k.drifted and p.level == "warn")
    return {"column_name": name, "kind": ref.kind, "psi": _finite(p.psi), "psi_level": p.level,
            "ks_statistic": None if k is None else _finite(k.statistic),
            "ks_p_value": None if k is None else _finite(k.p_value), "drifted": bool(drifted),
            "reference_proportions": p.reference_proportions, "current_proportions": p.current_proportions,
            "edges": ref.edges, "categories": ref.categories}


def _finite(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _version(name: str, version: str) -> tuple[dict[str, float], float]:
    """The version's evaluation metrics (its ``metrics`` tag) and decision threshold (registry)."""
    from include.training import tracking

    mv = tracking.client().get_model_version(name, version)
    return json.loads(mv.tags.get("metrics", "{}")), float(mv.tags["threshold"])


def _labels(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The transaction ids of a label partition, sorted, and their tx_fraud flags (9 bytes a label);
    ValueError naming the file when an id is labelled twice."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(file, columns=["transaction_id", "tx_fraud"])
    ids = table.column("transaction_id").to_numpy()
    fraud = table.column("tx_fraud").to_numpy(zero_copy_only=False)
    del table
    order = np.argsort(ids, kind="stable")
    ids, fraud = ids[order], fraud[order].astype(np.int8)
    if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
        raise ValueError(f"labels {file}: transaction_id {int(ids[1:][ids[1:] == ids[:-1]][0])} is labelled "
                         "more than once; fix or re-land the partition")
    return ids, fraud


def _labelled(scored_day: dt.date, root: Path, columns: list[str], dataset: tuple[str, str] = PREDICTIONS,
              size: int | None = None) -> tuple[str | None, Callable[[], Iterator[dict[str, np.ndarray]]]] | None:
    """The predictions of ``scored_day`` in ``dataset`` joined with their labels, which arrive
    LABEL_DELAY_DAYS later, as (version of the first prediction, batches): ``batches()`` yields, per
    batch of at most ``size`` predictions, numpy arrays of ``columns``, model_version and tx_fraud of the
    rows that have a label (an inner join), and may be called again for another pass. None when either
    partition is missing."""
    import numpy as np

    size = batch_rows(size)
    preds_file = partition_file(*dataset, scored_day, root)
    labels_file = partition_file("raw", "labels", scored_day + dt.timedelta(days=LABEL_DELAY_DAYS), root)
    if not preds_file.exists() or not labels_file.exists():
        return None
    first = next(_batches(preds_file, ["model_version"], 1), None)
    version = str(first.column("model_version")[0].as_py()) if first is not None and first.num_rows else None
    ids, fraud = _labels(labels_file)
    wanted = list(dict.fromkeys(["transaction_id", *columns, "model_version"]))

    def batches() -> Iterator[dict[str, np.ndarray]]:
        for batch in _batches(preds_file, wanted, size):
            tx = _column(batch, "transaction_id")
            at = np.minimum(np.searchsorted(ids, tx), max(ids.size - 1, 0))
            hit = ids[at] == tx if ids.size else np.zeros(tx.size, dtype=bool)
            out = {c: _column(batch, c)[hit] for c in wanted}
            out["tx_fraud"] = fraud[at[hit]]
            yield out

    return version, batches


def day_performance(day: dt.date, name: str, cfg: MonitoringConfig, root: Path,
                    dataset: tuple[str, str] = PREDICTIONS, size: int | None = None) -> dict[str, Any] | None:
    """Metrics of the labels arriving on ``day`` against the predictions made for their day (in
    ``dataset``: the champion's, or the shadow's), read in batches of ``size`` rows (two passes); None
    when none arrived, the predictions of that day are not there, or the configuration has no
    ``performance`` section."""
    if cfg.performance is None:
        return None
    labelled_day = day - dt.timedelta(days=LABEL_DELAY_DAYS)
    found = _labelled(labelled_day, root, ["customer_id", "score"], dataset, size)
    if found is None or found[0] is None:
        return None
    version, batches = found
    expected, threshold = _version(name, version)
    verdict = realised_verdict(*realised_of(batches, threshold, cfg), expected, cfg)
    return {"labelled_day": labelled_day.isoformat(), "model_version": version, "threshold": threshold, **verdict}


def realised_of(batches: Callable[[], Iterator[dict[str, np.ndarray]]], threshold: float, cfg: MonitoringConfig
                ) -> tuple[dict[str, Any], int]:
    """The realised figures (include.training.metrics.evaluate's) of the labelled ``batches``
    (:func:`_labelled`, two passes) and the number flagged at ``threshold``."""
    perf = cfg.performance
    counts = RealisedCounts(threshold, missed_fraud_cost=perf.missed_fraud_cost, false_alarm_cost=perf.false_alarm_cost)
    for b in batches():
        counts.add(b["score"], b["tx_fraud"], b["customer_id"])
    for b in batches():  # the second pass: AUC ROC and average precision against the frauds' scores
        counts.add_genuine(b["score"], b["tx_fraud"])
    return counts.figures(), counts.tp + counts.fp


def performance_verdict(rows, expected: dict[str, float], threshold: float, cfg: MonitoringConfig) -> dict[str, Any]:
    """The day's AUC ROC, AP, CP@100, precision and recall at ``threshold`` and cost (the configured
    cost model) against the model's evaluation figures (``expected``), with the performance alerts:
    AUC ROC or AP more than the configured drop below their evaluation figure, precision under
    ``min_precision``; none with fewer than ``min_frauds`` labelled frauds."""
    from include.training.metrics import evaluate

    perf = cfg.performance
    got = evaluate(rows, threshold, missed_fraud_cost=perf.missed_fraud_cost, false_alarm_cost=perf.false_alarm_cost)
    return realised_verdict(got, int((rows["score"].to_numpy(dtype=float) >= threshold).sum()), expected, cfg)


def realised_verdict(got: dict[str, Any], flagged: int, expected: dict[str, float], cfg: MonitoringConfig
                     ) -> dict[str, Any]:
    """:func:`performance_verdict` of the figures ``got`` (evaluate's, or RealisedCounts') with ``flagged``
    transactions at or above the threshold."""
    perf = cfg.performance
    out = {"n_labelled": got["n_transactions"], "n_frauds": got["n_frauds"], "auc_roc": _finite(got["auc_roc"]),
           "average_precision": _finite(got["average_precision"]), "card_precision": _finite(got["card_precision"]),
           # evaluate's 0.0 for "nothing flagged" is no precision at all
           "precision_at_threshold": got["precision_at_threshold"] if flagged else None,
           "recall_at_threshold": got["recall_at_threshold"] if got["n_frauds"] else None,
           "expected_cost": got["expected_cost"], "expected": expected, "alerts": []}
    if got["n_frauds"] < perf.min_frauds:
        out["verdict"] = f"only {got['n_frauds']} labelled frauds: no verdict"
        return out
    for metric, allowed in (("auc_roc", perf.auc_roc_drop), ("average_precision", perf.average_precision_drop)):
        if metric in expected and out[metric] is not None and expected[metric] - out[metric] > allowed:
            out["alerts"].append(f"{metric} {out[metric]:.4f} is {expected[metric] - out[metric]:.4f} below the "
                                 f"model's evaluation figure {expected[metric]:.4f} (allowed drop {allowed})")
    if out["precision_at_threshold"] is not None and out["precision_at_threshold"] < perf.min_precision:
        out["alerts"].append(f"precision at threshold {out['precision_at_threshold']:.4f} is below "
                             f"{perf.min_precision} ({flagged} flagged)")
    out["verdict"] = "; ".join(out["alerts"]) or "within tolerance"
    return out


def day_estimate(day: dt.date, name: str, version: str, scores, threshold: float | None, cfg: MonitoringConfig,
                 root: Path, dataset: tuple[str, str] = PREDICTIONS, size: int | None = None) -> dict[str, Any] | None:
    """The CBPE estimate of ``day``'s performance from its ``scores`` alone (include.drift.performance),
    the scores calibrated on the newest ``calibration_days`` labelled days that ``version`` scored; a
    dict with ``skipped`` (why) instead of figures when those hold fewer than ``calibration_min_frauds``
    frauds. ``threshold``: the one the day was flagged with (None: the version's). The registry is read
    only when there is an estimate to make. None when the configuration has no ``performance`` section.
    ``dataset``: where the version's labelled predictions are (the shadow's own partitions for the shadow).
    The calibration days are read in batches of ``size`` rows; their scores and labels are kept as arrays."""
    import numpy as np

    from include.drift import performance

    perf = cfg.performance
    if perf is None:
        return None
    newest = day - dt.timedelta(days=LABEL_DELAY_DAYS)  # labels of newer days have not arrived on ``day``
    kept_scores, kept_labels = [], []
    for i in range(perf.calibration_days):
        found = _labelled(newest - dt.timedelta(days=i), root, ["score"], dataset, size)
        for b in found[1]() if found is not None else ():
            mine = b["model_version"].astype(str) == version
            kept_scores.append(b["score"][mine])
            kept_labels.append(b["tx_fraud"][mine])
    history_scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
    history_labels = np.concatenate(kept_labels) if kept_labels else np.zeros(0, dtype=np.int8)
    del kept_scores, kept_labels
    base = {"scored_day": day.isoformat(), "model_version": version, "threshold": threshold, "n_scored": len(scores)}
    frauds = int(history_labels.sum())
    if frauds < perf.calibration_min_frauds:
        return {**base, "skipped": f"{frauds} labelled frauds of version {version} in the {perf.calibration_days} "
                                   f"days to {newest} (needs {perf.calibration_min_frauds}) to calibrate its scores"}
    expected, tagged = _version(name, version)
    base.update(expected=expected, threshold=tagged if threshold is None else threshold)
    calibration = performance.Calibration.fit(history_scores, history_labels)
    figures = performance.estimate(scores, base["threshold"], perf.missed_fraud_cost, perf.false_alarm_cost,
                                   calibration)
    return {**base, **figures, "calibration": calibration.describe()}


@dataclass(frozen=True)
class Scored:
    """One predictions partition, read in batches: its scores (the only per-row data kept), single model
    version (None without rows), the threshold it was flagged with (None: a file without that column)
    and the scoring run (the first row's)."""

    scores: np.ndarray
    version: str | None
    threshold: float | None
    run_id: str | None

    @property
    def rows(self) -> int:
        return len(self.scores)


def _scored(file: Path, size: int | None = None) -> Scored:
    """:class:`Scored` of a predictions partition; ValueError when it mixes versions."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    extra = ["threshold"] if "threshold" in pq.read_schema(file).names else []
    scores, versions, threshold, run_id = [], set(), None, None
    for batch in _batches(file, ["score", "model_version", "run_id", *extra], batch_rows(size)):
        if not batch.num_rows:
            continue
        scores.append(_column(batch, "score").astype(float))
        versions.update(pc.unique(batch.column("model_version")).to_pylist())
        if run_id is None:
            run_id = str(batch.column("run_id")[0].as_py())
            threshold = float(batch.column("threshold")[0].as_py()) if extra else None
    if len(versions) > 1:
        raise ValueError(f"predictions {file} mix model versions {sorted(versions)}; rescore the day")
    return Scored(np.concatenate(scores) if scores else np.zeros(0), str(versions.pop()) if versions else None,
                  threshold, run_id)


def estimate_of(day: dt.date, name: str, cfg: MonitoringConfig, root: Path, file: Path,
                dataset: tuple[str, str] = PREDICTIONS, size: int | None = None
                ) -> tuple[Scored, str | None, dict[str, Any] | None]:
    """The predictions of ``file`` (the day's partition of ``dataset``, :class:`Scored`), their version
    and their CBPE estimate (:func:`day_estimate`; None without rows)."""
    scored = _scored(file, size)
    estimate = day_estimate(day, name, scored.version, scored.scores, scored.threshold, cfg, root, dataset,
                            size) if scored.rows else None
    return scored, scored.version, estimate


def shadow_day(day: dt.date, name: str, cfg: MonitoringConfig, root: Path, size: int | None = None
               ) -> dict[str, Any] | None:
    """The shadow version's live performance on ``day``, computed as the champion's is (the same
    functions on the shadow's partitions, ``predictions/fraud_shadow``): ``performance``, the labels
    arriving today against its scores of ``day - LABEL_DELAY_DAYS``, and ``estimate``, the CBPE of its
    scores of ``day``. A missing shadow partition leaves its half out (logged, never an error); None
    when neither is there or the configuration has no ``performance`` section."""
    if cfg.performance is None:
        return None
    scored_day = day - dt.timedelta(days=LABEL_DELAY_DAYS)
    performance = day_performance(day, name, cfg, root, SHADOW_PREDICTIONS, size)
    if performance is None:
        log.info("monitoring ds=%s: no shadow performance (no shadow partition %s or no labels of it)", day,
                 partition_file(*SHADOW_PREDICTIONS, scored_day, root))
    file = partition_file(*SHADOW_PREDICTIONS, day, root)
    estimate = None
    if file.exists():
        estimate = estimate_of(day, name, cfg, root, file, SHADOW_PREDICTIONS, size)[2]
    else:
        log.info("monitoring ds=%s: no shadow estimate (no shadow partition %s yet)", day, file)
    if performance is None and estimate is None:
        return None
    return {"performance": performance, "estimate": estimate}


def live_parts(day: dt.date, performance: dict[str, Any] | None, estimate: dict[str, Any] | None,
               shadow: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``performance_days`` halves of a monitored day (include.drift.performance.parts): the
    champion's, then the shadow's (``role='shadow'``) of the halves it has (a shadow partition that is
    missing writes nothing, so it never clears what a run that had it wrote)."""
    out = perf_parts(day, performance, estimate, LABEL_DELAY_DAYS)
    if shadow:
        mine = perf_parts(day, shadow.get("performance"), shadow.get("estimate"), LABEL_DELAY_DAYS, role=SHADOW_ROLE)
        out += [p for p, source in zip(mine, (shadow.get("performance"), shadow.get("estimate")), strict=True)
                if source is not None]
    return out


def record_shadow_estimate(day: str | dt.date, name: str, cfg: MonitoringConfig,
                           root: Path | None = None) -> dict[str, Any] | None:
    """The shadow's CBPE estimate of ``day`` (:func:`estimate_of` on its partition of the day), written
    as the estimate half of its ``performance_days`` row (``role='shadow'``) and kept beside the day's
    drift report (include.warehouse.SHADOW_ESTIMATE_FILE, reloaded by the rebuild). Called by the shadow
    scoring DAG once it published the day: monitoring, which starts when the champion publishes, has
    usually run by then without it. The same figures monitoring writes when the partition is there.
    None (nothing written) without a ``performance`` section; MissingInputError without the partition."""
    from include import warehouse

    day, root = as_date(day), root or data_root()
    if cfg.performance is None:
        return None
    file = partition_file(*SHADOW_PREDICTIONS, day, root)
    if not file.exists():
        raise MissingInputError(f"shadow estimate ds={day}: no partition at {file}")
    estimate = estimate_of(day, name, cfg, root, file, SHADOW_PREDICTIONS)[2]
    if estimate is None:
        return None
    warehouse.replace_performance_parts(name, shadow_estimate_parts(day, estimate))
    folder = partition_dir(*REPORTS, day.isoformat(), root)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / warehouse.SHADOW_ESTIMATE_FILE
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"ds": day.isoformat(), "model_name": name, "estimate": estimate}, indent=2, default=str))
    tmp.replace(target)
    return estimate


def record_shadow_estimates(days: list[str], root: Path | None = None) -> dict[str, Any]:
    """:func:`record_shadow_estimate` of each of ``days``, with the shipped monitoring and training
    configurations (the shadow scoring DAG's last task): per day the estimated expected frauds, or why
    there is no estimate (no ``performance`` section, too few labelled frauds to calibrate)."""
    from include.drift.config import load_monitoring_config
    from include.training.config import load_training_config

    cfg, name = load_monitoring_config(), load_training_config().registered_model
    out = {}
    for day in days:
        estimate = record_shadow_estimate(day, name, cfg, root)
        out[str(day)] = ("no performance section" if estimate is None else estimate.get("skipped")
                         or f"expected frauds {estimate['expected_frauds']:.1f}")
    return out


def shadow_estimate_parts(day: dt.date, estimate: dict[str, Any]) -> list[dict[str, Any]]:
    """The estimate half of the shadow's ``performance_days`` row of ``day + LABEL_DELAY_DAYS``."""
    return [p for p in perf_parts(day, None, estimate, LABEL_DELAY_DAYS, role=SHADOW_ROLE) if p["part"] == "estimate"]


def drift_counts(reference: dict, cfg: MonitoringConfig, columns) -> dict[str, ColumnCounts]:
    """Empty counts of every monitored column of ``columns`` and of the score (last), against the
    version's ``reference`` (its reference.json)."""
    monitored = [c for c in columns if c not in cfg.exclude_columns]
    out = {c: ColumnCounts(ReferenceDistribution.from_dict(reference["features"][c])) for c in monitored}
    out["score"] = ColumnCounts(ReferenceDistribution.from_dict(reference["score"]))
    return out


def drift_results(counts: dict[str, ColumnCounts], cfg: MonitoringConfig) -> list[dict[str, Any]]:
    return [column_verdict(c, n, cfg) for c, n in counts.items()]


def drift_of_day(features, scores, reference: dict, cfg: MonitoringConfig, columns) -> list[dict[str, Any]]:
    """PSI/KS of every monitored column of ``columns`` in ``features`` and of ``scores`` (pure: no I/O;
    the whole-frame form of :func:`stream_drift`)."""
    import numpy as np

    counts = drift_counts(reference, cfg, columns)
    for c, n in counts.items():
        n.add(np.asarray(scores, dtype=float) if c == "score" else features[c].to_numpy(dtype=float))
    return drift_results(counts, cfg)


def stream_drift(features_file: Path, scores: np.ndarray, reference: dict, cfg: MonitoringConfig, columns,
                 size: int | None = None) -> list[dict[str, Any]]:
    """:func:`drift_of_day` of the features partition ``features_file``, read ``size`` rows at a time."""
    size = batch_rows(size)
    counts = drift_counts(reference, cfg, columns)
    features = [c for c in counts if c != "score"]
    for batch in _batches(features_file, features, size):
        for c in features:
            counts[c].add(_column(batch, c))
    for i in range(0, len(scores), size):
        counts["score"].add(scores[i:i + size])
    return drift_results(counts, cfg)


def drift_alerts(results: list[dict[str, Any]], cfg: MonitoringConfig) -> list[dict[str, Any]]:
    """A drift alert when at least ``min_drifted_columns`` columns drifted, naming the worst five."""
    drifted = sorted((r for r in results if r["drifted"]), key=lambda r: -(r["psi"] or 0))
    if len(drifted) < cfg.min_drifted_columns:
        return []
    return [{"kind": "drift", "message": f"{len(drifted)} drifted column(s): " + ", ".join(
        f"{r['column_name']} (PSI {r['psi']:.3f})" for r in drifted[:5])}]


def record_day(day: dt.date, name: str, version: str, results: list[dict[str, Any]], alerts: list[dict[str, Any]],
               cfg: MonitoringConfig, root: Path | None = None,
               reports: tuple[str, str] = REPORTS, performance: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Decide whether the day's alerts trigger training (once per episode, any version), then
    replace the day's drift rows and alerts (and its ``performance`` halves, include.drift.performance.parts)
    in one transaction. Returns the verdict's report fields:
    ``triggers_training`` (this run starts an episode: emit drift_alert), ``started_episode`` (the
    day started one, in this run or an earlier one: kept on rerun) and ``deduplicated_by``.

    An episode started on a day within ``cooldown_days`` on either side of ``day``, or on ``day``
    itself by an earlier run, deduplicates: a rerun of a day, or of an earlier day after a later one
    triggered, never starts a second retraining. The episodes are read from the warehouse alerts and
    from the lake's reports (:func:`episodes_started`), which survive a lost warehouse."""
    from include import warehouse

    # read even without alerts today: a rerun of a day that started an episode keeps that fact
    started = episodes_started(day, name, cfg.cooldown_days, root, reports)
    here = day in started
    others = [d for d in started if d != day]
    trigger = bool(alerts) and not started
    for a in alerts:
        a.update(model_version=version, triggered_training=trigger or here)
    warehouse.replace_monitoring_day(day, name, version, results, alerts, performance=performance)
    if here:
        by = f"training already triggered for ds={day} by an earlier run"
    elif others and alerts:
        by = f"training already triggered for ds={min(others, key=lambda d: (abs((d - day).days), d))}"
    else:
        by = None
    return {"triggers_training": trigger, "started_episode": trigger or here, "deduplicated_by": by}


def episodes_started(day: dt.date, name: str, cooldown_days: int, root: Path | None = None,
                     reports: tuple[str, str] = REPORTS) -> list[dt.date]:
    """The days within ``cooldown_days`` of ``day`` (either side, ``day`` included) on which a drift
    episode of ``name`` started: alerts rows that triggered training, or a report that says so
    (``started_episode``, or ``triggers_training`` in a report written before that field). The
    reports are the lake's record: a warehouse lost or restored from an older copy re-triggers none."""
    from include import warehouse

    first, last = day - dt.timedelta(days=cooldown_days), day + dt.timedelta(days=cooldown_days)
    found = set(warehouse.training_triggered_days(name, first, last))
    root = root or data_root()
    for d in (first + dt.timedelta(days=i) for i in range(2 * cooldown_days + 1)):
        path = partition_dir(*reports, d.isoformat(), root) / "report.json"
        if d in found or not path.exists():
            continue
        try:
            report = json.loads(path.read_text())
        except ValueError as exc:
            log.warning("drift report %s is not JSON (%s): not read for the drift episodes", path, exc)
            continue
        if report.get("model_name") == name and report.get("started_episode", report.get("triggers_training")):
            found.add(d)
    return sorted(found)


def before_first_champion(days: list[str], name: str, root: Path | None = None) -> list[str]:
    """The days of ``days`` that have no predictions because no model was champion then: before the
    first promotion's day + 1 (include.warehouse.first_promotion, rebuilt from the registry when the
    warehouse lacks it). Nothing to monitor on them: the run skips them instead of waiting for scoring."""
    from include import warehouse

    root = root or data_root()
    missing = [d for d in days if not partition_file("predictions", "fraud", d, root).exists()]
    if not missing:
        return []
    warehouse.reconcile_promotions(name)  # a lost warehouse must not turn "no champion yet" into "scoring late"
    first = warehouse.first_promotion(name)
    return [] if first is None else [d for d in missing if as_date(d) <= first]


def monitor_day(day: str | dt.date, name: str, cfg: MonitoringConfig, root: Path | None = None,
                size: int | None = None) -> dict[str, Any]:
    """Drift and performance of ``day``, its partitions read ``size`` rows at a time (:func:`batch_rows`);
    writes the warehouse rows and the JSON/HTML report."""
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS

    day, root, size = as_date(day), root or data_root(), batch_rows(size)
    preds_file = partition_file(*PREDICTIONS, day, root)
    features_file = partition_file("features", "baseline", day, root)
    for f in (preds_file, features_file):
        if not f.exists():
            raise MissingInputError(f"monitoring ds={day}: no partition at {f}")
    scored, version, estimate = estimate_of(day, name, cfg, root, preds_file, size=size)
    if version is None:
        raise ValueError(f"predictions ds={day} ({preds_file}) have no rows; rescore the day")
    results = stream_drift(features_file, scored.scores, load_reference(scored.run_id), cfg, MODEL_INPUTS, size)
    drifted = [r["column_name"] for r in results if r["drifted"]]
    performance = day_performance(day, name, cfg, root, size=size)
    alerts = drift_alerts(results, cfg)
    if performance and performance["alerts"]:
        alerts.append({"kind": "performance", "message": performance["verdict"]})
    shadow = None
    if cfg.performance is not None:
        try:  # the shadow never fails monitoring
            shadow = shadow_day(day, name, cfg, root, size)
        except (ValueError, KeyError, OSError) as exc:
            log.warning("monitoring ds=%s: the shadow's performance is left out (%s: %s)", day,
                        type(exc).__name__, exc)
    live = None if cfg.performance is None else live_parts(day, performance, estimate, shadow)
    verdict = record_day(day, name, version, results, alerts, cfg, root, performance=live)
    # the warehouse is the record (alerts, the retraining episode, the ML monitor); the report is
    # written from the same values after it, so a crash in between leaves the old report until the rerun
    failpoint("monitoring.report.pending")
    report = {"ds": day.isoformat(), "model_name": name, "model_version": version, "rows": scored.rows,
              "columns": results, "drifted": drifted, "performance": performance, "estimate": estimate,
              "shadow": shadow, "alerts": alerts, **verdict}
    paths = write_report(report, root)
    log.info("monitoring ds=%s: %d drifted column(s) %s; performance: %s; alerts: %d; triggers training: %s",
             day, len(drifted), drifted, performance and performance["verdict"], len(alerts),
             verdict["triggers_training"])
    return {"ds": day.isoformat(), "model_version": version, "drifted": drifted,
            "alerts": [a["message"] for a in alerts], "triggers_training": verdict["triggers_training"],
            "deduplicated_by": verdict["deduplicated_by"], "report": str(paths[1])}


def write_report(report: dict[str, Any], root: Path, reports: tuple[str, str] = REPORTS) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` of the report's day under ``reports``, each renamed into place."""
    folder = partition_dir(*reports, report["ds"], root)
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "report.json", folder / "report.html")
    for path, text in zip(paths, (json.dumps(report, indent=2, default=str), render_html(report)), strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def _bars(ref: list[float], cur: list[float], width: int = 260, height: int = 70) -> str:
    """Reference (grey) against current (blue) bin proportions as an inline SVG."""
    n = max(len(ref), len(cur), 1)
    top = max([*ref, *cur, 1e-9])
    slot = width / n
    bars = []
    for i in range(n):
        for j, (values, colour) in enumerate(((ref, "#9aa0a6"), (cur, "#1a73e8"))):
            v = values[i] if i < len(values) else 0.0
            h = v / top * (height - 4)
            bars.append(f'<rect x="{i * slot + j * slot / 2:.1f}" y="{height - h:.1f}" width="{slot / 2 - 1:.1f}" '
                        f'height="{h:.1f}" fill="{colour}"/>')
    return f'<svg width="{width}" height="{height}" role="img">{"".join(bars)}</svg>'


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: verdicts, then one histogram per monitored column."""
    def fmt(v):
        return "" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    rows = "".join(
        f"<tr class='{'drift' if r['drifted'] else ''}'><td>{html.escape(r['column_name'])}</td><td>{r['kind']}</td>"
        f"<td>{fmt(r['psi'])}</td><td>{r['psi_level']}</td><td>{fmt(r['ks_statistic'])}</td>"
        f"<td>{fmt(r['ks_p_value'])}</td><td>{'yes' if r['drifted'] else ''}</td>"
        f"<td>{_bars(r['reference_proportions'], r['current_proportions'])}</td></tr>" for r in report["columns"])
    perf = report.get("performance")  # None: no labels today; absent: a pipeline without label monitoring
    perf_html = ("<p>No labels of a scored day arrived today.</p>" if not perf else
                 f"<p>Labels of {perf['labelled_day']} ({perf['n_frauds']} frauds), model version "
                 f"{perf['model_version']}: AUC ROC {fmt(perf['auc_roc'])}, AP {fmt(perf['average_precision'])}, "
                 f"CP@100 {fmt(perf['card_precision'])}. {html.escape(perf['verdict'])}</p>")
    alerts = "".join(f"<li><b>{a['kind']}</b>: {html.escape(a['message'])}</li>" for a in report["alerts"]) or "<li>none</li>"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>drift {report['ds']}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;
padding:4px 8px}}tr.drift{{background:#fde7e7}}</style></head><body>
<h1>Drift report {report['ds']}: {html.escape(report['model_name'])} version {report['model_version']}</h1>
<p>{report['rows']:,} scored rows. Grey: reference bins (the model's training window); blue: this day.</p>
<h2>Alerts</h2><ul>{alerts}</ul><p>Triggers training: {'yes' if report['triggers_training'] else 'no'}
{html.escape(report['deduplicated_by'] or '')}</p>
{"<h2>Performance</h2>" + perf_html if "performance" in report else ""}
<h2>Columns</h2><table><tr><th>column</th><th>kind</th><th>PSI</th><th>level</th><th>KS statistic</th>
<th>KS p-value</th><th>drifted</th><th>histogram</th></tr>{rows}</table></body></html>"""

"""The steps of the features DAG around the Spark job: which days to compute, and publishing the
staged, validated partitions.

**Lineage.** Every published feature day carries ``features/baseline/ds=<day>/_inputs.json``: the
version (:func:`include.storage.partition_version`, size and mtime of the file; null when absent) of
every raw partition its window reads (transactions of the day and the 37 before, label arrivals of
the day and the 30 before), as they were when the run was planned, before Spark read them (so a
partition republished during the run is seen as changed by the next plan, never missed). Spark and
pyarrow skip files whose name starts with ``_``.

**Stale dependants.** A raw day published late (after the feature days that read it were computed)
makes those days stale: the plan adds every existing feature day after its range, up to the longest
lookback, whose lineage differs from the current versions of its inputs (or that has no lineage). A
late day costs the recomputation of exactly the days it affects, not the history. ``build_features``
takes one range, so the run computes ``min..max`` of the requested and the stale days (the fresh days
in between too), and its ``features_baseline`` event carries that range, so scoring and monitoring
redo those days through their own Asset schedules.

**Days without features.** A run triggered by Asset events also adds every day in ``(last, last +
DEPENDANT_DAYS]`` whose raw transactions and labels are published but that has no feature partition
(:func:`unfeatured_days`). Airflow 3.3 loses the events of a raw day published while ``features``
waits for its one run slot: the Asset queue keeps one row per raw Asset, stamped with its *first*
waiting event, and the run it starts consumes the events up to the newest stamp but deletes the
rows of the later events too (docs/operations.md, "Late and out-of-order data"). Those events were
written before that run was created, so its plan, which runs after, sees their days published and
computes them. A backfill (``start``/``end`` params) computes the range it names, nothing more.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.config import data_root
from include.faults import failpoint
from include.pipelines import get as pipeline_spec
from include.pipelines.fraud.features.baseline import (
    LABEL_LOOKBACK_DAYS,
    TRANSACTION_LOOKBACK_DAYS,
    label_days,
    transaction_days,
)
from include.storage import (
    as_date,
    day_range,
    finish_staging,
    partition_dir,
    partition_file,
    partition_version,
    publish_copy,
    published_before,
    staged_partition_file,
)

log = logging.getLogger(__name__)
# the fraud pipeline's raw datasets (include/pipelines/fraud/spec.py)
RAW_TRANSACTIONS, RAW_LABELS = (pipeline_spec("fraud").dataset(n) for n in ("raw_transactions", "raw_labels"))

FEATURE_SET = pipeline_spec("fraud").only("features").dataset  # the lake folder features/<set>/ (its spec)
INPUTS_FILE = "_inputs.json"  # beside data.parquet: a leading "_" keeps Spark and pyarrow from reading it
# The raw datasets a feature day reads, and which of their days (include.pipelines.fraud.features.baseline)
INPUT_WINDOWS: dict[str, Callable[[dt.date, dt.date], list[dt.date]]] = {
    RAW_TRANSACTIONS.dataset: transaction_days, RAW_LABELS.dataset: label_days}
# A raw day is read by the feature days up to this many days after it
DEPENDANT_DAYS = max(TRANSACTION_LOOKBACK_DAYS, LABEL_LOOKBACK_DAYS)

Lineage = dict[str, dict[str, str | None]]  # raw dataset -> {ds: version or None}


@dataclass(frozen=True)
class FeaturePlan:
    """The days a features run computes: ``first..last`` covers the requested days and the stale ones."""

    first: dt.date
    last: dt.date
    requested: tuple[dt.date, dt.date]
    stale: dict[dt.date, list[str]] = field(default_factory=dict)  # days added, and why
    left: dict[dt.date, list[str]] = field(default_factory=dict)  # days this run cannot add, and why
    unfeatured: dict[dt.date, list[str]] = field(default_factory=dict)  # published days without features, added

    def summary(self) -> dict[str, Any]:
        """The plan in JSON terms (the DAG's XCom): added and left days with their reasons."""
        return {"requested": [d.isoformat() for d in self.requested],
                "stale": {d.isoformat(): _brief(r) for d, r in self.stale.items()},
                "unfeatured": {d.isoformat(): r for d, r in self.unfeatured.items()},
                "stale_left": {d.isoformat(): _brief(r) for d, r in self.left.items()}}


def _brief(reasons: list[str], most: int = 3) -> list[str]:
    """At most ``most`` reasons and a count of the others: a day can have 69 changed inputs."""
    return reasons if len(reasons) <= most + 1 else [*reasons[:most], f"and {len(reasons) - most} more"]


class _Versions:
    """Current versions of raw partitions, one ``stat`` each per plan."""

    def __init__(self, root: Path | None):
        self.root, self.seen = root, {}

    def lineage(self, day: dt.date) -> Lineage:
        out: Lineage = {}
        for dataset, window in INPUT_WINDOWS.items():
            out[dataset] = {}
            for d in window(day, day):
                if (dataset, d) not in self.seen:
                    self.seen[dataset, d] = partition_version("raw", dataset, d, self.root)
                out[dataset][d.isoformat()] = self.seen[dataset, d]
        return out


def _requested_days(start: str | None, end: str | None, triggered_days: Iterable[str]) -> tuple[dt.date, dt.date]:
    if start:
        return as_date(start), as_date(end or start)
    days = sorted({as_date(d) for d in triggered_days})
    if not days:
        raise ValueError(
            "no feature days: the run was not triggered by a raw_transactions event carrying a ds, "
            "and no 'start' param was given (trigger with {\"start\": \"YYYY-MM-DD\", \"end\": ...})"
        )
    return days[0], days[-1]


def _not_computable(day: dt.date, root: Path | None) -> str | None:
    """Why the plan would refuse feature day ``day`` (its raw transactions, or the labels arriving
    on it while its transactions are there), or None."""
    if not partition_file("raw", RAW_TRANSACTIONS.dataset, day, root).exists():
        return f"raw transactions ds={day} are not published"
    if not partition_file("raw", RAW_LABELS.dataset, day, root).exists():
        return f"raw labels arriving on ds={day} are not published"
    return None


def plan_features(
    start: str | None, end: str | None, triggered_days: Iterable[str], root: Path | None = None
) -> FeaturePlan:
    """The range to compute: the ``start``/``end`` params of a manual or backfill run, else the days
    whose raw partitions triggered this run; fails early when a day has no raw partition. Then
    extended with the stale feature days that follow it (:func:`stale_feature_days`) and, in a run
    triggered by Asset events (no ``start``), with the published days after it that have no features
    (:func:`unfeatured_days`), as far as the plan can compute them: a day without raw partitions stops
    the extension, and the days past it are logged as left (the run of that day, once ingested, picks
    them up)."""
    first, last = _requested_days(start, end, triggered_days)
    wanted = day_range(first, last)
    missing = [d.isoformat() for d in wanted if not partition_file("raw", RAW_TRANSACTIONS.dataset, d, root).exists()]
    if missing:
        raise FileNotFoundError(f"raw transactions are not published for feature days {missing}; run ingest first")
    # ingest publishes a day's labels (possibly none) with its transactions: a lookback day with
    # transactions but no labels partition is a label delivery still on its way, and features built
    # without it would count that day's frauds as genuine
    late = [d.isoformat() for d in label_days(first, last)
            if partition_file("raw", RAW_TRANSACTIONS.dataset, d, root).exists()
            and not partition_file("raw", RAW_LABELS.dataset, d, root).exists()]
    if late:
        raise FileNotFoundError(f"raw labels are not published for arrival days {late} that the terminal risk of "
                                f"{first}..{last} reads; run (or finish) ingest of those days first")
    stale = stale_feature_days(last, root)
    unfeatured = {} if start else unfeatured_days(last, root)  # disjoint: a stale day has a partition
    pending = {**stale, **unfeatured}
    added, left, end_day = {}, {}, last
    for day in day_range(last + dt.timedelta(days=1), max(pending)) if pending else []:
        blocked = _not_computable(day, root)
        if blocked:  # one range per run: nothing past a day that cannot be computed
            left = {d: [f"cannot be recomputed in this run: {blocked}", *r] for d, r in pending.items() if d >= day}
            break
        end_day = day
        if day in pending:
            added[day] = pending[day]
    plan = FeaturePlan(first, end_day, (first, last), {d: r for d, r in added.items() if d in stale}, left,
                       {d: r for d, r in added.items() if d in unfeatured})
    for day in added:
        log.info("features ds=%s are %s by this run: %s", day, "recomputed (stale)" if day in stale else
                 "computed (none yet)", "; ".join(_brief(added[day])))
    for day, reasons in left.items():
        log.warning("features ds=%s are %s, left as they are: %s", day, "stale" if day in stale else "missing",
                    "; ".join(_brief(reasons)))
    if added:
        log.info("planned %s..%s: the requested %s..%s and %d day(s) after it, stale or without features (one "
                 "range: the days between are recomputed too)", plan.first, plan.last, first, last, len(added))
    return plan


def unfeatured_days(last: dt.date, root: Path | None = None) -> dict[dt.date, list[str]]:
    """The days in ``(last, last + DEPENDANT_DAYS]`` whose raw transactions and labels are published
    but that have no feature partition, with the reason. At most three ``stat`` calls a day: the cost
    grows with the window, not with the history."""
    missing = {}
    for day in day_range(last + dt.timedelta(days=1), last + dt.timedelta(days=DEPENDANT_DAYS)):
        if partition_file("features", FEATURE_SET, day, root).exists() or _not_computable(day, root):
            continue
        missing[day] = [f"raw transactions and labels ds={day} are published and features ds={day} are not: no "
                        "features run took its Asset events (a run that waited for its slot can consume the "
                        "events before them and drop theirs: docs/operations.md, late and out-of-order data)"]
    return missing


def plan_feature_days(
    start: str | None, end: str | None, triggered_days: Iterable[str], root: Path | None = None
) -> tuple[dt.date, dt.date]:
    """``(first, last)`` of :func:`plan_features`: the requested range, extended with its stale dependants."""
    plan = plan_features(start, end, triggered_days, root)
    return plan.first, plan.last


def inputs_file(day: str | dt.date, root: Path | None = None) -> Path:
    """The lineage of a published feature day."""
    return partition_dir("features", FEATURE_SET, day, root) / INPUTS_FILE


def _read_lineage(path: Path) -> Lineage | None:
    try:
        recorded = json.loads(path.read_text())["inputs"]
    except (OSError, ValueError, KeyError, TypeError):  # absent, or not what publish writes
        return None
    return recorded if isinstance(recorded, dict) else None


def staleness(day: dt.date, recorded: Lineage | None, current: Lineage) -> list[str]:
    """Why feature day ``day``, computed from the ``recorded`` input versions, is stale now: one
    reason per raw partition whose version changed (published, republished or removed since)."""
    if recorded is None:
        return [f"features ds={day} have no lineage ({INPUTS_FILE}): computed before lineage was recorded, "
                "or published without a plan"]
    reasons = []
    for dataset, versions in current.items():
        was = recorded.get(dataset) if isinstance(recorded.get(dataset), dict) else {}
        for ds, version in versions.items():
            if ds not in was:
                reasons.append(f"raw {dataset} ds={ds} is not in the lineage of features ds={day}")
            elif was[ds] != version:
                what = "removed" if version is None else "published" if was[ds] is None else "republished"
                reasons.append(f"raw {dataset} ds={ds} {what} after features ds={day} were computed")
    return reasons


def stale_feature_days(last: dt.date, root: Path | None = None) -> dict[dt.date, list[str]]:
    """The existing feature days in ``(last, last + DEPENDANT_DAYS]`` (those that read a raw day up
    to ``last``) whose lineage differs from the current versions of their inputs, with the reasons."""
    versions, stale = _Versions(root), {}
    for day in day_range(last + dt.timedelta(days=1), last + dt.timedelta(days=DEPENDANT_DAYS)):
        if not partition_file("features", FEATURE_SET, day, root).exists():
            continue
        reasons = staleness(day, _read_lineage(inputs_file(day, root)), versions.lineage(day))
        if reasons:
            stale[day] = reasons
    return stale


def planned_inputs_file(staging: Path) -> Path:
    """Where the plan records the input versions of the run's days: beside the staging folder (the
    Spark job overwrites the folder itself), like the publish receipt."""
    return staging.parent / f"{staging.name}.inputs.json"


def record_planned_inputs(staging: Path, first: dt.date, last: dt.date, root: Path | None = None) -> Path:
    """Record, per day of ``first..last``, the current version of every raw partition it reads
    (absent ones as null), before Spark reads them; :func:`publish_staged_features` puts each day's
    record beside its data."""
    versions = _Versions(root)
    record = {"planned_at": dt.datetime.now(dt.UTC).isoformat(),
              "days": {d.isoformat(): versions.lineage(d) for d in day_range(first, last)}}
    return _write_json_atomic(planned_inputs_file(staging), record)


def _write_json_atomic(dest: Path, content: dict[str, Any]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps(content, indent=1, sort_keys=True))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def publish_staged_features(staging: Path, start: str | dt.date, end: str | dt.date,
                            root: Path | None = None) -> dict[str, Any]:
    """Put each staged day in place as ``features/baseline/ds=<day>/data.parquet`` (one atomic rename
    each), then its lineage as ``_inputs.json`` beside it (from the plan's record, see
    :func:`record_planned_inputs`; a day without one loses any old lineage first, so it counts as
    stale), then delete the staging folder. The staged files stay until every day is in place, so a
    publish killed halfway is retried from the same staging, and the retry equals an undisturbed run.
    A publish killed between a day's data and its lineage leaves the older lineage, which can only
    make the day look stale, never fresh."""
    root = root or data_root()
    if (done := published_before(staging)) is not None:  # a retry after the task died at its very end
        log.info("feature partitions %s..%s were published by an earlier try", start, end)
        return done
    staged = {day: staged_partition_file(staging, day) for day in day_range(start, end)}
    missing = [day.isoformat() for day, file in staged.items() if not file.exists()]
    if missing:  # check every day before moving any: no partial publication
        raise RuntimeError(f"no staged feature file for {', '.join('ds=' + d for d in missing)} in {staging}")
    planned = _planned_lineage(staging)
    for day, file in staged.items():
        lineage = planned["days"].get(day.isoformat()) if planned else None
        if lineage is None:
            inputs_file(day, root).unlink(missing_ok=True)
        publish_copy(file, partition_file("features", FEATURE_SET, day, root))
        if lineage is not None:
            _write_json_atomic(inputs_file(day, root), {"feature_set": FEATURE_SET, "ds": day.isoformat(),
                                                        "planned_at": planned["planned_at"], "inputs": lineage})
        failpoint("features.publish.partition")
    failpoint("features.publish.done")
    published = [day.isoformat() for day in staged]
    result = {"feature_set": FEATURE_SET, "days": published, "count": len(published)}
    finish_staging(staging, result)
    log.info("published %d feature partitions %s..%s", len(published), published[0], published[-1])
    return result


def _planned_lineage(staging: Path) -> dict[str, Any] | None:
    path = planned_inputs_file(staging)
    if not path.exists():
        log.warning("no input versions recorded for %s (%s): the days are published without lineage and count "
                    "as stale", staging, path)
        return None
    return json.loads(path.read_text())

"""The training set of one run: feature partitions joined with the labels known on the run's day.

Labels are partitioned by arrival day (transaction day + label delay). The labels of transaction
day D are read from the arrival partition D + delay, which is never after the run's day: no label
is used before it is known. The examples of every day the plan needs are written once to
``training/ds=<as_of>/examples.parquet`` with a ``manifest.json`` (windows, sizes, a content hash of
the input partitions); the model tasks read that file, and a rerun replaces it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import LABEL_DELAY_DAYS, data_root
from include.features.pipeline import FEATURE_SET
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.storage import (
    MissingInputError,
    as_date,
    file_sha256,
    partition_dir,
    partition_file,
    publish_file,
    write_parquet_atomic,
)
from include.training.windows import Block, TrainingPlan

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

ID_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
LABEL = "tx_fraud"
# for the evaluation slices only (never a model input): days since the customer's first transaction in
# the training set, which reaches back to the plan's first day (``customer_history_days``)
HISTORY = "customer_history_days"


class TrainingDataError(ValueError):
    """The training window cannot be used (empty, no frauds, a missing column): not retryable."""


@dataclass(frozen=True)
class TrainingSet:
    examples: pd.DataFrame  # ID_COLUMNS, ds, MODEL_INPUTS, tx_fraud
    manifest: dict

    def rows(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        return self.examples[(self.examples["ds"] >= start) & (self.examples["ds"] <= end)]

    def train_rows(self, block: Block) -> pd.DataFrame:
        return self.rows(block.train_start, block.train_end)

    def test_rows(self, block: Block, label_delay: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
        return evaluation_rows(self.examples, block, label_delay)


def training_dir(as_of: str | dt.date, root: Path | None = None) -> Path:
    return partition_dir("training", FEATURE_SET, as_of, root)


def _compact(days: list[dt.date]) -> str:
    return ", ".join(d.isoformat() for d in days[:5]) + (f" and {len(days) - 5} more" if len(days) > 5 else "")


def build_training_set(plan: TrainingPlan, root: Path | None = None, label_delay: int = LABEL_DELAY_DAYS) -> dict:
    """Assemble, check and publish the examples of ``plan``; returns the manifest (small JSON)."""
    import pandas as pd

    root = root or data_root()
    days = plan.days()
    feature_files = {d: partition_file("features", FEATURE_SET, d, root) for d in days}
    label_files = {d: partition_file("raw", "labels", d + dt.timedelta(days=label_delay), root) for d in days}
    assert all(d + dt.timedelta(days=label_delay) <= plan.as_of for d in days), "label used before it is known"
    for what, files in (("features/baseline", feature_files), ("raw/labels (by arrival day)", label_files)):
        missing = [d for d, f in files.items() if not f.exists()]
        if missing:
            raise MissingInputError(
                f"training window {days[0]}..{days[-1]} for as_of={plan.as_of}: {len(missing)} {what} "
                f"partition(s) missing for transaction days {_compact(missing)} (under {root})")

    frames = []
    for day in days:
        features = pd.read_parquet(feature_files[day])
        absent = sorted(set(ID_COLUMNS + MODEL_INPUTS) - set(features.columns))
        if absent:
            raise TrainingDataError(f"features/baseline ds={day}: missing column(s) {absent} ({feature_files[day]})")
        labels = pd.read_parquet(label_files[day], columns=["transaction_id", LABEL])
        merged = features[ID_COLUMNS + MODEL_INPUTS].merge(labels, on="transaction_id", how="left")
        unlabelled = int(merged[LABEL].isna().sum())
        if unlabelled:
            raise TrainingDataError(
                f"features/baseline ds={day}: {unlabelled} of {len(merged)} transactions have no label in "
                f"{label_files[day]}")
        merged[LABEL] = merged[LABEL].astype("int8")
        merged.insert(4, "ds", day)
        frames.append(merged)
    # a fixed row order (Spark writes rows in no particular order): same inputs, same models
    examples = pd.concat(frames, ignore_index=True).sort_values("transaction_id", ignore_index=True)

    blocks = {"evaluation": plan.evaluation, **{f"fold_{i}": b for i, b in enumerate(plan.folds, 1)}}
    sizes = {}
    for name, block in blocks.items():
        train = examples[(examples["ds"] >= block.train_start) & (examples["ds"] <= block.train_end)]
        test = evaluation_rows(examples, block, label_delay)
        sizes[name] = {"train_rows": len(train), "train_frauds": int(train[LABEL].sum()),
                       "test_rows": len(test), "test_frauds": int(test[LABEL].sum())}
        if len(train) == 0 or len(test) == 0:
            raise TrainingDataError(f"{name} block {block.as_dict()}: empty {'train' if len(train) == 0 else 'test'} "
                                    "window")
        if sizes[name]["train_frauds"] == 0 or sizes[name]["test_frauds"] == 0:
            which = "train" if sizes[name]["train_frauds"] == 0 else "test"
            raise TrainingDataError(f"{name} block {block.as_dict()}: no positive labels in the {which} window")

    digest = hashlib.sha256()
    for day in days:
        for f in (feature_files[day], label_files[day]):
            digest.update(f"{f.relative_to(root)}:{file_sha256(f)}\n".encode())
    out = training_dir(plan.as_of, root)
    examples_path = write_parquet_atomic(examples, out / "examples.parquet")
    manifest = {
        "plan": plan.as_dict(),
        "examples_uri": str(examples_path),
        "examples_sha256": file_sha256(examples_path),
        "inputs_sha256": digest.hexdigest(),
        "input_partitions": len(days) * 2,
        "rows": len(examples),
        "frauds": int(examples[LABEL].sum()),
        "blocks": sizes,
    }
    tmp = out / f".manifest.json.{plan.as_of}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    publish_file(tmp, out / "manifest.json")
    log.info("training set for as_of=%s: %s rows, %s frauds, inputs %s", plan.as_of, manifest["rows"],
             manifest["frauds"], manifest["inputs_sha256"][:12])
    return manifest


def load_training_set(as_of: str | dt.date, root: Path | None = None) -> TrainingSet:
    """The published examples of ``as_of``, checked against the manifest's hash."""
    import pandas as pd

    out = training_dir(as_date(as_of), root)
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        raise MissingInputError(f"no training set for as_of={as_of}: {manifest_path} is missing")
    manifest = json.loads(manifest_path.read_text())
    path = Path(manifest["examples_uri"])
    if file_sha256(path) != manifest["examples_sha256"]:
        raise TrainingDataError(f"{path} changed after its manifest was written; rebuild the training set")
    examples = pd.read_parquet(path)
    examples["ds"] = pd.to_datetime(examples["ds"]).dt.date
    examples[HISTORY] = customer_history_days(examples)
    return TrainingSet(examples, manifest)


def customer_history_days(examples: pd.DataFrame) -> pd.Series:
    """Days from the customer's first transaction in ``examples`` to each transaction (0 on the first).

    Only earlier transactions count (the first one is never after the row), so no label and nothing of
    the future enters. The history seen is the training set's span (the plan's first day onwards): a
    customer is "established" at t when seen at or before t - 30 days; one dormant through the span's
    start reads as new. The evaluation window starts train_days + gap_days + folds x test_days after
    that day (35 with the shipped windows), so a 30-day cut is observable there."""
    first = examples.groupby("customer_id")["tx_datetime"].transform("min")
    return (examples["tx_datetime"] - first).dt.total_seconds() / 86_400.0


def evaluation_rows(examples: pd.DataFrame, block: Block, label_delay: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """The test transactions of ``block`` without the cards already known to be compromised.

    Known on test day d (the handbook's rule, shared/SIMULATOR.md): cards with a fraud in the
    block's training window, and cards with a fraud on a transaction day after it, up to
    d - delay - 1. Frauds before the block's training window do not count: ``examples`` may reach
    further back (the tuning folds' windows), and the test set must not depend on how far.
    """
    import pandas as pd

    frauds = examples[(examples[LABEL] == 1) & (examples["ds"] >= block.train_start)]
    in_train = set(frauds.loc[frauds["ds"] <= block.train_end, "customer_id"])
    first_fraud_day = frauds.groupby("customer_id")["ds"].min()
    kept = []
    for day, rows in examples[(examples["ds"] >= block.test_start) & (examples["ds"] <= block.test_end)].groupby("ds"):
        known_until = day - dt.timedelta(days=label_delay + 1)
        known = in_train | set(first_fraud_day.index[first_fraud_day <= known_until])
        kept.append(rows[~rows["customer_id"].isin(known)])
    return pd.concat(kept) if kept else examples.iloc[0:0]

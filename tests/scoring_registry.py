"""A small world for the scoring tests of registry states, rollbacks and published partitions, built
without Spark or training: the raw transactions of a few days of the small simulation, a feature
partition of each (the canonical columns and types, with stand-in values: scoring reads them as
numbers), and model versions of the real pyfunc (include.training.scorer.FraudScorer around the
project's logistic estimator, fitted in milliseconds), registered in the real MLflow registry with
the tags include.registry.register writes and promoted the way the training DAG promotes them.

What "nothing downstream moved" means for scoring: :func:`downstream` (prediction partitions, the
warehouse's predictions rows, the aliases, no scoring plan written).

The world is built once per session (``scoring_world_template``) and copied for each test
(``scoring_world``); a test module imports both fixtures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.pipelines.fraud.features.baseline import KEY_COLUMNS, MODEL_INPUTS, OUTPUT_COLUMNS
from include.pipelines.fraud.features.groups import GROUP_COLUMNS
from include.storage import partition_file, write_parquet_atomic
from tests.conftest import SMALL

NAME = "fraud-detector"  # the shipped training.yaml's registered model
EXPERIMENT = "fraud-training"  # and its experiment
DAYS = [SMALL.end_date - dt.timedelta(days=i) for i in (3, 2, 1, 0)]  # four consecutive days, features for each


def stand_in_features(tx: pd.DataFrame) -> pd.DataFrame:
    """A feature partition of ``tx`` (one day): the canonical columns and types of the features job,
    the window features replaced by same-day aggregates (cheap, plausible numbers)."""
    out = tx[KEY_COLUMNS + ["tx_amount"]].reset_index(drop=True).copy()
    stamp = out["tx_datetime"]
    out["tx_during_weekend"] = (stamp.dt.dayofweek >= 5).astype("int32")
    out["tx_during_night"] = (stamp.dt.hour <= 6).astype("int32")
    by_customer, by_terminal = out.groupby("customer_id")["tx_amount"], out.groupby("terminal_id")["tx_amount"]
    for n in (1, 7, 30):
        out[f"customer_nb_tx_{n}d"] = by_customer.transform("size").astype("int64") * n
        out[f"customer_avg_amount_{n}d"] = by_customer.transform("mean").astype("float64")
        out[f"terminal_nb_tx_{n}d"] = by_terminal.transform("size").astype("int64") * n
        out[f"terminal_risk_{n}d"] = (out["tx_amount"] % 7 / 70.0).astype("float64")
    ratio = (out["tx_amount"] / out["customer_avg_amount_30d"]).astype("float64")
    for column in GROUP_COLUMNS["amount_profile"]:  # the amount against the customer's: a ratio near 1
        out[column] = ratio if column in OUTPUT_COLUMNS else None
    return out[OUTPUT_COLUMNS]


def write_world(root: Path, transactions: pd.DataFrame) -> dict[dt.date, pd.DataFrame]:
    """Raw transactions and a feature partition for every day of DAYS; returns the features by day."""
    from include.pipelines.fraud.simulator.landing import write_raw_partitions

    tx = transactions[transactions["ds"].isin(DAYS)]
    write_raw_partitions(tx, root)
    features = {}
    for day in DAYS:
        features[day] = stand_in_features(tx[tx["ds"] == day])
        write_parquet_atomic(features[day], partition_file("features", "baseline", day, root))
    return features


def log_model(features: pd.DataFrame, labels: pd.Series, as_of: dt.date, experiment: str = EXPERIMENT,
              drop_input: str | None = None) -> dict[str, Any]:
    """Fit the logistic estimator and log it as a model run of ``experiment``; returns the summary
    include.registry.register takes. ``drop_input``: a model input the model is trained and signed
    without (a version that cannot score the pipeline's features)."""
    import mlflow
    from mlflow.models import infer_signature

    from include.training import tracking
    from include.training.models import build_estimator
    from include.training.scorer import FraudScorer

    inputs = [c for c in MODEL_INPUTS if c != drop_input]
    X, y = features[inputs], labels.to_numpy()
    estimator = build_estimator("logistic_regression", {}, seed=1).fit(X, y, np.ones(len(y)))
    experiment_id = tracking.ensure_experiment(experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"logistic {as_of}") as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=FraudScorer(estimator, inputs),
                                       signature=infer_signature(X.head(20), estimator.predict_proba(X.head(20))),
                                       pip_requirements=[])
    return {"run_id": run.info.run_id, "model_uri": info.model_uri, "as_of": as_of.isoformat(),
            "family": "logistic_regression", "model": "logistic", "threshold": 0.5, "metrics": {"average_precision": 0.5},
            "training_window": "2026-03-25..2026-03-31", "evaluation_window": "2026-04-08..2026-04-12"}


def add_version(summary: dict[str, Any], source: str | None = None) -> str:
    """A new version of NAME: the summary's run registered once more (from ``source``, a folder of
    model files, when given; else the run's own model), with the tags register() writes."""
    import json

    from include import registry
    from include.training import tracking

    registry.ensure_registered_model(NAME)
    tags = {"as_of": summary["as_of"], "family": summary["family"], "model": summary["model"],
            "threshold": str(summary["threshold"]), "training_window": summary["training_window"],
            "evaluation_window": summary["evaluation_window"], "metrics": json.dumps(summary["metrics"])}
    if source is None:
        source = registry.version_of_run(NAME, summary["run_id"])
        source = source.source if source is not None else None
    if source is None:
        return str(registry.register(NAME, summary).version)
    return str(tracking.client().create_model_version(NAME, source=source, run_id=summary["run_id"],
                                                      tags=tags).version)


def model_files(version: str, dest: Path) -> Path:
    """A copy of the model files of ``version`` in ``dest`` (to spoil, then register as a new version)."""
    import mlflow

    from include.training import tracking

    tracking.client()  # this test's registry, not the one an earlier test left as MLflow's default
    return Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=str(dest)))


def promote(version: str, as_of: dt.date, run_id: str) -> None:
    """What the training DAG does for an accepted challenger as of ``as_of``: the gate's decision
    recorded, then include.training.pipeline.promote (alias moved, decision marked promoted)."""
    from include import registry, warehouse
    from include.training import pipeline
    from include.training.config import load_training_config

    current = registry.alias_version(NAME, registry.CHAMPION)
    warehouse.record_decision({
        "model_name": NAME, "as_of": as_of, "challenger_version": version, "challenger_run_id": run_id,
        "champion_version": None if current is None else str(current.version), "decision": "promote",
        "promoted": False, "reason": "test: accepted", "primary_metric": "average_precision"})
    pipeline.promote({"promote": True, "version": version, "as_of": as_of.isoformat(), "run_id": run_id,
                      "reason": "test: accepted"}, load_training_config())


def publish_scored(root: Path, day: dt.date, features: pd.DataFrame, version: str, run_id: str) -> None:
    """Predictions of ``day`` as an earlier scoring published them (include.scoring.publish_predictions
    of a staged file): what a rescore replaces, and a failed one must leave as it was."""
    from include.scoring import PREDICTION_COLUMNS, publish_predictions
    from include.storage import staging_dir

    staging = staging_dir("earlier-scoring", "scoring", root=root)
    frame = features[["transaction_id", "tx_datetime", "customer_id", "terminal_id"]].assign(
        score=0.1, flagged=np.int8(0), model_name=NAME, model_version=version, run_id=run_id, threshold=0.5,
        scored_at=pd.Timestamp("2026-04-20 01:00"))
    write_parquet_atomic(frame[PREDICTION_COLUMNS], staging / f"ds={day}" / "part-00000.parquet")
    publish_predictions(staging, [{"ds": day.isoformat(), "model": {"version": version}}], root)


def warehouse_predictions() -> pd.DataFrame:
    """Every predictions row of the warehouse, in a stable order."""
    from sqlalchemy import select

    from include import warehouse

    with warehouse.engine().connect() as conn:
        rows = conn.execute(select(warehouse.predictions)).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(warehouse.predictions.c.keys()))
    return frame.sort_values(["ds", "transaction_id"], ignore_index=True)


def versions_by_day() -> dict[str, list[str]]:
    """The model versions of each day's warehouse predictions."""
    frame = warehouse_predictions()
    return {str(day): sorted(set(group["model_version"])) for day, group in frame.groupby("ds")}


def downstream(root: Path) -> dict[str, Any]:
    """What scoring writes, as a reader sees it: prediction partitions (checksums), the warehouse's
    predictions rows (count and a digest), the registered model's aliases, scoring plans staged."""
    from include import registry

    lake = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "predictions").glob("*/ds=*/data.parquet"))}
    rows = warehouse_predictions()
    digest = hashlib.sha256(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes()).hexdigest()
    try:
        aliases = registry.describe(NAME)["aliases"]
    except registry.UnknownModelError:
        aliases = None
    return {"prediction partitions": lake, "warehouse predictions": (len(rows), digest), "aliases": aliases,
            "scoring plans": sorted(str(p) for p in root.glob("_staging/*/scoring/plans.json"))}


# --- the world, built once per session and copied per test ------------------------------------------

@dataclass
class World:
    root: Path
    features: dict[dt.date, pd.DataFrame]
    summary: dict[str, Any]  # the champion's run (include.registry.register's summary)
    other_runs: dict[str, dict[str, Any]]  # logged, not registered: "churn" (another pipeline), "narrow"
    tmp: Path


def build_world(root: Path, transactions: pd.DataFrame) -> World:
    """Raw and feature partitions of DAYS; version 1 champion, promoted by a training run as of the day
    before DAYS[0]; two model runs logged but not registered: one in another pipeline's experiment
    (churn-training), one trained and signed without terminal_risk_30d."""
    features = write_world(root, transactions)
    frame = pd.concat(features.values(), ignore_index=True)
    labels = frame[["transaction_id"]].merge(transactions[["transaction_id", "tx_fraud"]],
                                             on="transaction_id")["tx_fraud"]
    as_of = DAYS[0] - dt.timedelta(days=1)
    summary = log_model(frame, labels, as_of)
    promote(add_version(summary), as_of, summary["run_id"])
    others = {"churn": log_model(frame, labels, as_of, experiment="churn-training"),
              "narrow": log_model(frame, labels, as_of, drop_input="terminal_risk_30d")}
    return World(root, features, summary, others, root)


@pytest.fixture(scope="session")
def scoring_world_template(tmp_path_factory, small_sim) -> World:
    """The world, built once (MLflow's first start and the model logging take seconds)."""
    from include import warehouse

    root = tmp_path_factory.mktemp("scoring-world")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_MLFLOW_ARTIFACTS",
                     "BATCHML_TRAINING_CONFIG"):
            mp.delenv(name, raising=False)
        mp.setenv("BATCHML_DATA_ROOT", str(root))
        template = build_world(root, small_sim.transactions)
    warehouse.dispose_engines()
    return template


@pytest.fixture
def scoring_world(scoring_world_template, data_root, tmp_path) -> World:
    """A copy of the world as this test's data root. The copy's registry points at the template's
    model files, which tests only read (a test that spoils model files spoils a copy of them)."""
    import shutil

    template = scoring_world_template
    for child in template.root.iterdir():
        (shutil.copytree if child.is_dir() else shutil.copy2)(child, data_root / child.name)
    return World(data_root, template.features, template.summary, template.other_runs, tmp_path)

"""spark-submit entry point: score the feature partitions of one or more days, each with its own model.

    spark-submit include/jobs/score.py --plans plans.json --output <staging folder>

``plans.json`` is the scoring plan (include.scoring.plan_scoring): per day the feature partition and
the model (registry URI, version, run id, threshold). The driver loads each model once from the
registry, before it starts Spark, and ships the fitted scorer in the scoring function's closure (PySpark
broadcasts a closure above spark.broadcast.UDFCompressionThreshold itself; a Spark Connect session,
which has no ``sparkContext.broadcast``, sends it with the plan), so executors need no registry access; each Spark task
scores its rows with ``mapInArrow``: each Arrow batch's model inputs become one float32 numpy matrix
for the estimator's numpy entry point and the keys, score and flag go back as an Arrow batch, with
no pandas frame on the way (include.scoring.score_batch), with the top 3 reasons of the flagged rows
(only those are explained); the day is written once with its reasons columns and split by the driver
into the predictions file and a reasons file (``<output>/reasons/ds=<day>``, include.scoring.split_reasons). Every day is staged as one parquet file: a
day of a few Spark partitions (a nightly day is one) is scored and written by one task; a large one
(PARALLEL_MIN_PARTITIONS input splits, counted from the file sizes: :func:`input_splits`) is scored by as many tasks as it has partitions, then gathered into one
writer (``repartition(1)``, where ``coalesce(1)`` would score it all in one task).

Model files that do not load (bad registry state: a retry cannot fix them) end the job with one
``BATCHML-ERROR`` line naming the version and a sysexits code (include.spark.JobFailure), which the
scoring operator fails without retry; anything else (an unreachable store, a lost executor) is
raised as it is, and retried. Bad feature partitions do not get here: the plan refuses them first
(include.scoring.check_features), whatever the model family (XGBoost and LightGBM would score NaN
without a word).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

from include.faults import failpoint
from include.scoring import PREDICTION_COLUMNS, REASON_FIELDS, REASONS, score_batch, split_reasons
from include.spark import JobFailure, get_session, report_failure
from include.storage import parquet_row_count

KEY_SCHEMA = {"transaction_id": "long", "tx_datetime": "timestamp", "customer_id": "long", "terminal_id": "long"}
BATCH_SCHEMA = ", ".join(f"{name} {type_}" for name, type_ in {**KEY_SCHEMA, "score": "double",
                                                                "flagged": "byte"}.items())
# ... and with the reasons of the flagged rows (score_batch with reasons)
REASONS_SCHEMA = ", ".join([BATCH_SCHEMA, *(f"{name} {type_}" for name, type_ in REASON_FIELDS.items())])
# Rows per Arrow batch handed to the scorer: fewer, larger batches amortise the per-call cost.
ARROW_BATCH_ROWS = 100_000
# Input partitions (128 MB splits) from which a day is scored by parallel tasks and gathered into one
# writer by a shuffle; below, coalesce(1) scores it in the writing task (bench/bench_scoring.py: the
# shuffle lost at 1 M rows, 2 partitions, and won at 10 M rows, 9 partitions, on 2 cores).
PARALLEL_MIN_PARTITIONS = 4
# Spark's file scan splits its input into pieces of spark.sql.files.maxPartitionBytes (default 128 MiB)
SPLIT_BYTES = 128 * 1024 * 1024


def input_splits(features: str | Path) -> int:
    """The input partitions Spark's file scan makes of a feature partition (a parquet file or a folder
    of them), from the file sizes: ``ceil(bytes / SPLIT_BYTES)``, at least 1. The same on a classic
    and a Spark Connect session (which has no ``rdd.getNumPartitions``) and with no Spark call; it is
    the count Spark plans once a day is larger than the cores times SPLIT_BYTES (below, Spark splits
    finer, but such a day stays under PARALLEL_MIN_PARTITIONS either way on the 2 cores of a node)."""
    path = Path(features)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in files)
    return max(1, -(-size // SPLIT_BYTES))


def load_scorers(plans: list[dict]) -> dict:
    """The fitted scorer of every model of the plans, by model URI, loaded once each from the registry
    (before any Spark resource is taken: broken model files fail the job at once). JobFailure (bad
    registry state) naming the version when a model's files do not load; an unreachable registry or
    artifact store raises its own error."""
    import mlflow

    from include.registry import is_broken_artifact
    from include.training import tracking

    tracking.client()  # the project's tracking store: spark-submit inherits no MLflow setting from the task
    scorers = {}
    for model in (p["model"] for p in plans):
        if model["uri"] in scorers:
            continue
        try:
            scorers[model["uri"]] = mlflow.pyfunc.load_model(model["uri"]).unwrap_python_model()
        except Exception as exc:
            if not is_broken_artifact(exc):
                raise  # the registry or the artifact store away: retried
            raise JobFailure("bad registry state", f"version {model['version']} of registered model "
                             f"{model['name']!r} ({model['uri']}) does not load: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]}") from exc
    return scorers


def run(spark, plans: list[dict], output: Path, scorers: dict | None = None, reasons: bool = True) -> dict:
    """Score and stage every day of ``plans``; ``scorers``: :func:`load_scorers` of the plans, loaded
    here when not given. With ``reasons`` (the default), the top reasons of each day's flagged rows
    are staged too, in ``<output>/reasons/ds=<day>`` (include.scoring.REASON_COLUMNS), from the same
    scoring pass and the same Spark write (include.scoring.split_reasons), unless the day's plan says
    ``"reasons": false`` (the shadow's, include.scoring.plan_scoring with an alias)."""
    from pyspark.sql import functions as F

    began = time.perf_counter()
    loaded = load_scorers(plans) if scorers is None else scorers
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    scored_at = dt.datetime.now(dt.UTC)  # aware: Spark reads a naive datetime in the JVM's local zone, not UTC
    every_day_reasons = reasons
    for plan in plans:
        model = plan["model"]
        scorer, threshold = loaded[model["uri"]], float(model["threshold"])
        reasons = every_day_reasons and plan.get("reasons", True)

        # the scorer travels in the closure: on a classic session PySpark broadcasts a large one itself
        def predict(batches, scorer=scorer, threshold=threshold, reasons=reasons):
            for batch in batches:
                yield score_batch(scorer, batch, threshold, reasons)

        lineage = {"model_name": F.lit(model["name"]), "model_version": F.lit(str(model["version"])),
                   "run_id": F.lit(model["run_id"]), "threshold": F.lit(threshold),
                   "scored_at": F.lit(scored_at).cast("timestamp")}
        features = spark.read.parquet(plan["features"])
        scored = features.select(*(F.col(c).cast(t) for c, t in KEY_SCHEMA.items()),
                                 *loaded[model["uri"]].inputs).mapInArrow(predict, REASONS_SCHEMA if reasons
                                                                          else BATCH_SCHEMA)
        # one file per day: a day of a few input partitions is scored by the writing task; a large one is
        # scored in parallel and gathered (the shuffle cost more than it saved at 1 M rows, 2 partitions)
        parallel = input_splits(plan["features"]) >= PARALLEL_MIN_PARTITIONS
        one = scored.repartition(1) if parallel else scored.coalesce(1)
        folder = output / f"ds={plan['ds']}"
        if not reasons:
            one.withColumns(lineage).select(*PREDICTION_COLUMNS).write.mode("overwrite").parquet(str(folder))
            continue
        # one write of the scored day with its reasons columns, split into the two staged files here
        wide = output / "_wide" / f"ds={plan['ds']}"
        one.withColumns(lineage).select(*PREDICTION_COLUMNS, *REASON_FIELDS).write.mode("overwrite").parquet(str(wide))
        shutil.rmtree(folder, ignore_errors=True)
        split_reasons(wide, folder, output / REASONS[0] / f"ds={plan['ds']}")
        shutil.rmtree(wide)
    if (output / "_wide").exists():
        shutil.rmtree(output / "_wide")
    failpoint("scoring.staged")
    summary = {
        "rows_per_day": {p["ds"]: sum(parquet_row_count(f) for f in (output / f"ds={p['ds']}").glob("*.parquet"))
                         for p in plans},
        "models": {p["ds"]: p["model"]["version"] for p in plans},
        "seconds": round(time.perf_counter() - began, 2),
    }
    (output / "_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--plans", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    args = p.parse_args(argv)
    plans = json.loads(args.plans.read_text())
    try:
        scorers = load_scorers(plans)
    except JobFailure as failure:
        return report_failure(failure, args.output)
    spark = get_session(f"score {plans[0]['ds']}..{plans[-1]['ds']}")
    try:
        print(json.dumps(run(spark, plans, args.output, scorers)))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""spark-submit entry point: score the feature partitions of one or more days, each with its own model.

    spark-submit include/jobs/score.py --plans plans.json --output <staging folder>

``plans.json`` is the scoring plan (include.scoring.plan_scoring): per day the feature partition and
the model (registry URI, version, run id, threshold). The driver loads each model once from the
registry and broadcasts the fitted scorer, so executors need no registry access; each Spark task
scores its rows with ``mapInPandas``. Every day is staged as one parquet file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from include.faults import failpoint
from include.scoring import PREDICTION_COLUMNS, score_batch
from include.spark import get_session
from include.storage import parquet_row_count

BATCH_SCHEMA = ("transaction_id long, tx_datetime timestamp, customer_id long, terminal_id long, score double, "
                "flagged byte")
# Rows per Arrow batch handed to the scorer: fewer, larger batches amortise the per-call cost.
ARROW_BATCH_ROWS = 100_000


def run(spark, plans: list[dict], output: Path) -> dict:
    import mlflow
    from pyspark.sql import functions as F

    from include.training import tracking

    tracking.client()  # the project's tracking store: spark-submit inherits no MLflow setting from the task
    began = time.perf_counter()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # the session time zone is UTC
    scorers = {}
    for plan in plans:
        model = plan["model"]
        if model["uri"] not in scorers:
            pyfunc = mlflow.pyfunc.load_model(model["uri"])
            scorers[model["uri"]] = spark.sparkContext.broadcast(pyfunc.unwrap_python_model())
        broadcast, threshold = scorers[model["uri"]], float(model["threshold"])

        def predict(batches, broadcast=broadcast, threshold=threshold):
            for batch in batches:
                yield score_batch(broadcast.value, batch, threshold)

        lineage = {"model_name": F.lit(model["name"]), "model_version": F.lit(str(model["version"])),
                   "run_id": F.lit(model["run_id"]), "threshold": F.lit(threshold),
                   "scored_at": F.lit(scored_at).cast("timestamp")}
        day_out = output / f"ds={plan['ds']}"
        (spark.read.parquet(plan["features"]).mapInPandas(predict, BATCH_SCHEMA)
         .withColumns(lineage).select(*PREDICTION_COLUMNS)
         .coalesce(1).write.mode("overwrite").parquet(str(day_out)))
    failpoint("scoring.staged")
    summary = {
        "rows_per_day": {p["ds"]: sum(parquet_row_count(f) for f in (output / f"ds={p['ds']}").glob("*.parquet"))
                         for p in plans},
        "models": {p["ds"]: p["model"]["version"] for p in plans},
        "seconds": round(time.perf_counter() - began, 2),
    }
    (output / "_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--plans", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    args = p.parse_args(argv)
    plans = json.loads(args.plans.read_text())
    spark = get_session(f"score {plans[0]['ds']}..{plans[-1]['ds']}")
    try:
        print(json.dumps(run(spark, plans, args.output)))
    finally:
        spark.stop()


if __name__ == "__main__":
    main()

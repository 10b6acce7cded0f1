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

from include.scoring import PREDICTION_COLUMNS, score_frame
from include.spark import get_session
from include.storage import parquet_row_count

SCHEMA = ("transaction_id long, tx_datetime timestamp, customer_id long, terminal_id long, score double, "
          "flagged byte, model_name string, model_version string, run_id string, threshold double, "
          "scored_at timestamp")


def run(spark, plans: list[dict], output: Path) -> dict:
    import mlflow

    began = time.perf_counter()
    scored_at = dt.datetime.now(dt.UTC)
    scorers = {}
    for plan in plans:
        model = plan["model"]
        if model["uri"] not in scorers:
            pyfunc = mlflow.pyfunc.load_model(model["uri"])
            scorers[model["uri"]] = spark.sparkContext.broadcast(pyfunc.unwrap_python_model())
        broadcast = scorers[model["uri"]]

        def predict(batches, broadcast=broadcast, model=model):
            for batch in batches:
                yield score_frame(broadcast.value, batch, model, scored_at)[PREDICTION_COLUMNS]

        day_out = output / f"ds={plan['ds']}"
        (spark.read.parquet(plan["features"]).mapInPandas(predict, SCHEMA)
         .coalesce(1).write.mode("overwrite").parquet(str(day_out)))
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

"""Scoring throughput of the scoring job (Spark, ``mapInArrow`` with a broadcast scorer) against the
bare model on the same rows in one process (the floor on this machine).

Set-up (not timed): the model and a parquet file of feature rows per size, in bench/results/scoring
(git-ignored, deleted afterwards):

- ``--root DIR``: the data root of a `make demo` run: its champion from the MLflow registry, and the
  newest 7 days of its feature rows tiled to each size;
- ``--synthetic``: no demo needed: random rows with the model inputs' names and types, written in
  1 million-row chunks (10 million rows never sit in memory as a frame), and a model of
  ``--family`` (a model name of training.yaml) built and fitted by the training code
  (include.training.models.build_estimator with training.yaml's params) on 50,000 of them.

Measured per size, one after the other in one run:

- bare: the fitted estimator's numpy entry point (``predict_matrix``) on the float32 matrix of the
  model inputs, in memory;
- job: ``include.jobs.score.run`` on the parquet file, exactly as the scoring DAG runs it (read,
  score, write one predictions parquet file), in a warm ``local[*]`` session; the session start-up
  is reported apart;
- with ``--before``: the job as it was before ``mapInArrow`` (``mapInPandas`` over pandas frames,
  ``coalesce(1)``), kept here only as the baseline, and whether both wrote the same scores;
- with ``--nightly ROWS``: the job on one day of ROWS rows (a night), in-job seconds.

    source scripts/airflow-env.sh && python bench/bench_scoring.py --synthetic --before --nightly 4700
    make demo && source scripts/airflow-env.sh && python bench/bench_scoring.py --root data --before
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "results" / "scoring"
CHUNK_ROWS = 1_000_000


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", type=Path, help="data root of a `make demo` run")
    source.add_argument("--synthetic", action="store_true", help="random rows and a freshly fitted model")
    p.add_argument("--family", default="mlp", help="--synthetic: the training.yaml model to fit (default mlp)")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--before", action="store_true", help="also run the mapInPandas job it replaced")
    p.add_argument("--nightly", type=int, default=0, help="also score one day of this many rows")
    args = p.parse_args()
    if args.root:
        os.environ["BATCHML_DATA_ROOT"] = str(args.root.resolve())  # MLflow and the warehouse follow it
    return args


# --- data and model -----------------------------------------------------------------------------

def synthetic_chunk(n: int, first_id: int, seed: int):
    """``n`` feature rows with the canonical columns and types: ids, a timestamp, counts and 0/1
    flags as integers, amounts and risks as floats."""
    import numpy as np
    import pandas as pd

    from include.pipelines.fraud.features.baseline import MODEL_INPUTS

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "transaction_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "tx_datetime": pd.Timestamp("2026-04-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n), "s"),
        "customer_id": rng.integers(0, 5_000, n), "terminal_id": rng.integers(0, 10_000, n)})
    for column in MODEL_INPUTS:
        if "nb_tx" in column:
            frame[column] = rng.poisson(5, n).astype(np.int64)
        elif "during" in column:
            frame[column] = rng.integers(0, 2, n).astype(np.int64)
        else:
            frame[column] = rng.gamma(2.0, 30.0 if "amount" in column else 0.05, n)
    return frame


def synthetic_label(frame):
    import numpy as np

    logit = 0.02 * (frame["tx_amount"].to_numpy() - 60) + 8 * frame.filter(like="risk").sum(axis=1).to_numpy() - 5
    return (np.random.default_rng(1).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def synthetic_model(family: str):
    """A model of training.yaml's ``family`` entry fitted on 50,000 synthetic rows, as a DemoModel."""
    from bench.demo_lake import DemoModel
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS
    from include.training.config import load_training_config
    from include.training.models import build_estimator, sample_weights
    from include.training.scorer import FraudScorer

    cfg = load_training_config()
    spec = cfg.spec(family)
    train = synthetic_chunk(50_000, 0, seed=7)
    y = synthetic_label(train)
    estimator = build_estimator(spec.family, spec.params, cfg.seed, cfg.threads)
    estimator.fit(train[MODEL_INPUTS], y, sample_weights(y, spec.class_weight))
    return DemoModel(cfg.registered_model, "synthetic", "synthetic", f"synthetic:{family}", 0.5,
                     FraudScorer(estimator, MODEL_INPUTS))


def write_rows(args, n: int, path: Path) -> None:
    """``n`` feature rows in one parquet file, written chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.demo_lake import tiled_features

    writer = None
    try:
        for first in range(0, n, CHUNK_ROWS):
            size = min(CHUNK_ROWS, n - first)
            frame = synthetic_chunk(size, first, seed=first) if args.synthetic else tiled_features(args.root, size)
            frame["transaction_id"] = range(first, first + size)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=500_000)
    finally:
        if writer is not None:
            writer.close()


def bare_seconds(scorer, path: Path) -> float:
    """Seconds of the estimator's numpy predict on the whole file's model inputs, already in memory."""
    import pyarrow.parquet as pq

    from include.scoring import feature_matrix, predict_matrix

    table = pq.read_table(path, columns=scorer.inputs).combine_chunks()
    matrix = feature_matrix(table.to_batches()[0] if table.num_rows else table, scorer.inputs)
    del table
    t0 = time.perf_counter()
    predict_matrix(scorer, matrix)
    return time.perf_counter() - t0


# --- the job it replaced (baseline only) ----------------------------------------------------------

def before_run(spark, plans: list[dict], output: Path, scorers: dict) -> None:
    """The scoring job before ``mapInArrow`` (commit 933a295): ``mapInPandas``, the scorer's pandas
    ``predict``, ``coalesce(1)``. Kept here as the benchmark's baseline, not in the product."""
    from pyspark.sql import functions as F

    from include.jobs.score import ARROW_BATCH_ROWS, BATCH_SCHEMA
    from include.scoring import PREDICTION_COLUMNS

    def score_frame(scorer, features, threshold):
        out = features[["transaction_id", "tx_datetime", "customer_id", "terminal_id"]].copy()
        out["score"] = scorer.predict(None, features[scorer.inputs]).astype("float64")
        out["flagged"] = (out["score"] >= threshold).astype("int8")
        return out

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    scored_at = dt.datetime.now(dt.UTC)
    broadcasts = {uri: spark.sparkContext.broadcast(scorer) for uri, scorer in scorers.items()}
    for plan in plans:
        model = plan["model"]
        broadcast, threshold = broadcasts[model["uri"]], float(model["threshold"])

        def predict(batches, broadcast=broadcast, threshold=threshold):
            for batch in batches:
                yield score_frame(broadcast.value, batch, threshold)

        lineage = {"model_name": F.lit(model["name"]), "model_version": F.lit(str(model["version"])),
                   "run_id": F.lit(model["run_id"]), "threshold": F.lit(threshold),
                   "scored_at": F.lit(scored_at).cast("timestamp")}
        (spark.read.parquet(plan["features"]).mapInPandas(predict, BATCH_SCHEMA)
         .withColumns(lineage).select(*PREDICTION_COLUMNS)
         .coalesce(1).write.mode("overwrite").parquet(str(output / f"ds={plan['ds']}")))


def same_scores(a: Path, b: Path) -> float:
    """The largest score difference of one transaction between two staged outputs."""
    import numpy as np
    import pyarrow.parquet as pq

    def scores(folder):
        t = pq.read_table(folder, columns=["transaction_id", "score"]).sort_by("transaction_id")
        return t.column("transaction_id").to_numpy(), t.column("score").to_numpy()

    (ia, sa), (ib, sb) = scores(a), scores(b)
    assert np.array_equal(ia, ib), "the two jobs scored different transactions"
    return float(np.max(np.abs(sa - sb))) if len(sa) else 0.0


# --- the run --------------------------------------------------------------------------------------

def main() -> int:
    args = arguments()

    from bench.demo_lake import demo_model
    from include.jobs.score import run as score_job
    from include.spark import get_session

    model = synthetic_model(args.family) if args.synthetic else demo_model(args.root)
    scorers = {model.uri: model.scorer}
    family = type(model.scorer.estimator).__name__
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    t0 = time.perf_counter()
    spark = get_session("bench-scoring")
    startup = time.perf_counter() - t0
    day = dt.date(2026, 4, 1).isoformat()
    results, nightly = [], None
    try:
        if args.nightly:
            path = WORK / "nightly.parquet"
            write_rows(args, args.nightly, path)
            plan = [{"ds": day, "features": str(path), "model": model.as_dict()}]
            # the first in a fresh session (Python workers started, the model's libraries imported), as a
            # night's spark-submit runs it; then two more in the warm session
            nightly = [score_job(spark, plan, WORK / f"night-{i}", scorers)["seconds"] for i in range(3)]
            if args.before:
                t0 = time.perf_counter()
                before_run(spark, plan, WORK / "night-before", scorers)
                nightly.append(round(time.perf_counter() - t0, 2))
        for n in args.rows:
            path = WORK / f"features-{n}.parquet"
            write_rows(args, n, path)
            bare = bare_seconds(model.scorer, path)
            plan = [{"ds": day, "features": str(path), "model": model.as_dict()}]
            if n == args.rows[0]:  # untimed: every core's Python worker started, the model's libraries imported
                score_job(spark, plan, WORK / "warm-up", scorers)
            t0 = time.perf_counter()
            summary = score_job(spark, plan, WORK / f"out-{n}", scorers)
            job = time.perf_counter() - t0
            assert sum(summary["rows_per_day"].values()) == n
            before = diff = None
            if args.before:
                t0 = time.perf_counter()
                before_run(spark, plan, WORK / f"before-{n}", scorers)
                before = time.perf_counter() - t0
                diff = same_scores(WORK / f"out-{n}", WORK / f"before-{n}")
                shutil.rmtree(WORK / f"before-{n}")
            results.append((n, bare, job, before, diff))
            shutil.rmtree(WORK / f"out-{n}")
            path.unlink()
    finally:
        spark.stop()
        shutil.rmtree(WORK, ignore_errors=True)

    print(f"\nmodel {model.name} v{model.version} ({family}), {os.cpu_count()} cores; Spark session start-up "
          f"{startup:.1f} s (not included below)\n")
    print("| rows | bare predict s | bare rows/s | job s | job rows/s | job / bare |"
          + (" before (mapInPandas) s | before / bare | max score difference |" if args.before else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|" if args.before else ""))
    for n, bare, job, before, diff in results:
        line = f"| {n:,} | {bare:.2f} | {n / bare:,.0f} | {job:.1f} | {n / job:,.0f} | {bare / job:.2f} |"
        if before is not None:
            line += f" {before:.1f} | {bare / before:.2f} | {diff:.1e} |"
        print(line)
    if nightly:
        print(f"\nnightly day of {args.nightly:,} rows, seconds inside the job: {nightly[0]} in a fresh session, "
              f"{', '.join(map(str, nightly[1:3]))} warm"
              + (f"; before (mapInPandas): {nightly[3]}" if args.before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

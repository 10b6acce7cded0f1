"""Scoring throughput of the scoring job (Spark, mapInPandas with a broadcast scorer) against the
bare model's own batch predict on the same rows in one process (the floor on this machine).

Set-up (not timed): the data root of a `make demo` run (its features and its MLflow champion). The
day's feature rows are tiled to 1 and 10 million rows and written as parquet in a temporary folder.

- bare: the champion's fitted scorer (``FraudScorer.predict``) on the whole frame, already in memory;
- spark: ``include.jobs.score.run`` on the parquet file, exactly as the scoring DAG runs it (read,
  score, write the predictions parquet), in a warm ``local[*]`` session; the session start-up is
  reported apart.

    make demo && source scripts/airflow-env.sh && python bench/bench_scoring.py --root data
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_lake import arguments  # noqa: E402  (after the path is set)


def main() -> int:
    args = arguments(__doc__)

    from bench.demo_lake import demo_model, tiled_features
    from include.features.baseline import MODEL_INPUTS
    from include.jobs.score import run as score_job
    from include.spark import get_session

    model = demo_model(args.root)
    scorer, family = model.scorer, type(model.scorer.estimator).__name__
    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    t0 = time.perf_counter()
    spark = get_session("bench-scoring")
    startup = time.perf_counter() - t0
    results = []
    try:
        for n in args.rows:
            frame = tiled_features(args.root, n)
            path = work / f"features-{n}.parquet"
            frame.to_parquet(path, row_group_size=500_000)
            t0 = time.perf_counter()
            scorer.predict(None, frame[MODEL_INPUTS])
            bare = time.perf_counter() - t0
            plan = [{"ds": dt.date.today().isoformat(), "features": str(path), "model": model.as_dict()}]
            out = work / f"out-{n}"
            t0 = time.perf_counter()
            summary = score_job(spark, plan, out)
            job = time.perf_counter() - t0
            assert sum(summary["rows_per_day"].values()) == n
            results.append((n, bare, job))
            shutil.rmtree(out)
            path.unlink()
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmodel {model.name} v{model.version} ({family}), {os.cpu_count()} cores; Spark session start-up "
          f"{startup:.1f} s (not included below)\n")
    print("| rows | bare predict s | bare rows/s | scoring job s | job rows/s | job / bare throughput |")
    print("|---|---|---|---|---|---|")
    for n, bare, job in results:
        print(f"| {n:,} | {bare:.1f} | {n / bare:,.0f} | {job:.1f} | {n / job:,.0f} | {bare / job:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

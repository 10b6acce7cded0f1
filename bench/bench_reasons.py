"""What the reasons of the flagged rows cost the scoring job: ``include.jobs.score.run`` on the same
day with ``reasons=False`` (predictions only) and ``reasons=True`` (predictions plus the top 3 reasons
of each flagged row, include.training.explain), side by side in one warm ``local[*]`` session,
alternating, best of ``--repeat``, for each model of training.yaml named in ``--families``.

The rows and the models are bench_scoring's ``--synthetic`` ones (random rows with the model inputs'
names and types; each family fitted by the training code on 50,000 of them); the threshold is set
per model so that ``--flagged`` of the day's rows are flagged (the score quantile), since the cost of
explaining grows with the flagged rows, not the day.

    source scripts/airflow-env.sh && python bench/bench_reasons.py --rows 4700 200000 --flagged 0.02
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

from bench.bench_scoring import synthetic_model, write_rows  # noqa: E402

WORK = Path(__file__).resolve().parent / "results" / "reasons"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["logistic", "xgboost", "lightgbm", "mlp", "ensemble"])
    p.add_argument("--rows", type=int, nargs="+", default=[4_700, 200_000], help="rows of the day (4,700: a night)")
    p.add_argument("--flagged", type=float, default=0.02, help="share of the day's rows flagged")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    import numpy as np
    import pyarrow.parquet as pq

    from include.jobs.score import run as score_job
    from include.scoring import feature_matrix, predict_matrix
    from include.spark import get_session

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    spark = get_session("bench-reasons")
    day, results = dt.date(2026, 4, 1).isoformat(), []
    models = {family: synthetic_model(family) for family in args.families}  # fitted once each
    try:
        for n in args.rows:
            path = WORK / f"features-{n}.parquet"
            write_rows(argparse.Namespace(synthetic=True), n, path)
            for family in args.families:
                model = models[family]
                scores = predict_matrix(model.scorer, feature_matrix(
                    pq.read_table(path, columns=model.scorer.inputs).combine_chunks().to_batches()[0],
                    model.scorer.inputs))
                threshold = float(np.quantile(scores, 1 - args.flagged))
                plan = [{"ds": day, "features": str(path), "model": {**model.as_dict(), "threshold": threshold}}]
                scorers = {model.uri: model.scorer}
                score_job(spark, plan, WORK / "warm-up", scorers, reasons=True)  # untimed: workers, imports
                timings = {False: [], True: []}
                for i in range(args.repeat):
                    for reasons in (False, True):
                        t0 = time.perf_counter()
                        score_job(spark, plan, WORK / f"out-{reasons}-{i}", scorers, reasons=reasons)
                        timings[reasons].append(time.perf_counter() - t0)
                flagged = pq.read_metadata(next((WORK / "out-True-0" / "reasons" / f"ds={day}").glob("*.parquet")))
                results.append((n, family, type(model.scorer.estimator).__name__, flagged.num_rows // 3,
                                min(timings[False]), min(timings[True])))
                for folder in WORK.glob("out-*"):
                    shutil.rmtree(folder)
            path.unlink()
    finally:
        spark.stop()
        shutil.rmtree(WORK, ignore_errors=True)

    print(f"\n{os.cpu_count()} cores; best of {args.repeat}, alternating; seconds inside the job (read, score, "
          "write), warm session\n")
    print("| rows | model | family | flagged rows explained | without reasons s | with reasons s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, family, kind, flagged, without, with_ in results:
        print(f"| {n:,} | {family} | {kind} | {flagged:,} | {without:.2f} | {with_:.2f} | {with_ / without:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

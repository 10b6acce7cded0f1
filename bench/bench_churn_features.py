"""Cost and usefulness of the churn feature job (include/pipelines/churn/features.py).

Set-up (not timed): simulate the default churn history (5,000 customers, 26 weeks, seed 0) and write
it as raw partitions of a temporary data root (tests/churn_reference.py ``land``, the layout ingest
publishes). Then, in one local Spark session:

- the job for one snapshot, cold (the session's first job) and warm, and for ``--snapshots`` (10)
  weekly snapshots in one run;
- a logistic regression (standardised ``MODEL_INPUTS``) trained on the labelled snapshots that end at
  least 35 days before the last one, scored on the last: AUC, average precision, recall in the top decile.

    source scripts/airflow-env.sh && python bench/bench_churn_features.py     # ~3 min on an idle 2-core machine
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

from include.pipelines.churn import features as cf
from include.pipelines.churn.diagnostics import recall_at_top_fraction
from include.pipelines.churn.simulator import ChurnSimulatorConfig, simulate
from include.spark import get_session
from include.storage import remove_tree
from tests.churn_reference import land


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--snapshots", type=int, default=10)
    p.add_argument("--first-week", type=int, default=12, help="the first snapshot with a full 84-day lookback")
    args = p.parse_args(argv)
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cfg = ChurnSimulatorConfig()
    root = Path(tempfile.mkdtemp(prefix="bench-churn-"))
    try:
        sim = simulate(cfg)
        land(sim, root, [cfg.start_date + dt.timedelta(days=i) for i in range(cfg.n_days)])
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        spark = get_session("bench_churn_features", master="local[2]")
        snaps = [cfg.start_date + dt.timedelta(weeks=w) for w in range(args.first_week, args.first_week + args.snapshots)]

        def timed(label: str, start: dt.date, end: dt.date, name: str) -> Path:
            began = time.perf_counter()
            cf.run(spark, start, end, root / name, root)
            print(f"{label}: {time.perf_counter() - began:.1f} s")
            return root / name

        timed("one snapshot, cold", snaps[0], snaps[0], "cold")
        timed("one snapshot, warm", snaps[-1], snaps[-1], "warm")
        output = timed(f"{len(snaps)} snapshots in one run", snaps[0], snaps[-1], "all")
        rows = cf.with_labels(spark.read.parquet(str(output)), cf.read_labels(spark, snaps, root)).toPandas()
        rows["snapshot_date"] = pd.to_datetime(rows["snapshot_date"]).dt.date
        test_day = max(rows["snapshot_date"])
        train = rows[rows["snapshot_date"] <= test_day - dt.timedelta(days=35)]
        test = rows[rows["snapshot_date"] == test_day]
        inputs = list(cf.MODEL_INPUTS)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train[inputs], train[cf.LABEL])
        score = model.predict_proba(test[inputs])[:, 1]
        print(f"trained on {train['snapshot_date'].nunique()} snapshots ({len(train):,} rows), tested on {test_day} "
              f"({len(test):,} customers, {int(test[cf.LABEL].sum())} churners): AUC "
              f"{roc_auc_score(test[cf.LABEL], score):.3f}, AP {average_precision_score(test[cf.LABEL], score):.3f}, "
              f"recall in the top decile {recall_at_top_fraction(test[cf.LABEL].to_numpy(), score, 0.1):.3f}")
        spark.stop()
    finally:
        remove_tree(root)


if __name__ == "__main__":
    main()

"""spark-submit entry point: baseline features for one day or a range of days, in one application.

    spark-submit include/jobs/build_features.py --start 2026-02-01 [--end 2026-03-01] \
        --output <staging folder> [--root <data root>]

Reads only the raw partitions the range needs (the lookback window), writes one parquet file per
day under ``<output>/ds=<day>/`` and a ``_summary.json``; publishing is the caller's job, after the
staged partitions have passed their checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

from include.faults import failpoint
from include.pipelines import get as pipeline_spec
from include.pipelines.fraud.features.baseline import (
    baseline_features,
    label_days,
    missing_label_count,
    transaction_days,
)
from include.spark import classify_spark_error, get_session, report_failure
from include.storage import as_date, day_range, existing_partitions, parquet_row_count, partition_file

log = logging.getLogger("build_features")
# the fraud pipeline's raw datasets (include/pipelines/fraud/spec.py)
RAW_TRANSACTIONS, RAW_LABELS = (pipeline_spec("fraud").dataset(n) for n in ("raw_transactions", "raw_labels"))


def run(spark, start: dt.date, end: dt.date, output: Path, root: Path | None = None) -> dict:
    """Compute and stage the features of [start, end]; returns the summary written beside them."""
    began = time.perf_counter()
    # every output day needs its own raw partition; lookback days before the history began may be absent
    missing = [str(p) for p in (partition_file("raw", RAW_TRANSACTIONS.dataset, d, root) for d in day_range(start, end))
               if not p.exists()]
    if missing:
        raise FileNotFoundError(f"raw transactions missing for feature days: {missing}")
    tx_paths = existing_partitions("raw", RAW_TRANSACTIONS.dataset, transaction_days(start, end), root)
    label_paths = existing_partitions("raw", RAW_LABELS.dataset, label_days(start, end), root)

    transactions = spark.read.parquet(*map(str, tx_paths))
    labels = (
        spark.read.parquet(*map(str, label_paths))
        if label_paths
        else spark.createDataFrame([], "transaction_id long, tx_fraud long")
    )
    features = baseline_features(transactions, labels, start, end)
    # one task per day, so each day is written as exactly one file
    features.repartition("ds").write.mode("overwrite").partitionBy("ds").parquet(str(output))
    failpoint("features.staged")

    summary = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "transaction_partitions_read": len(tx_paths),
        "label_partitions_read": len(label_paths),
        "missing_labels": missing_label_count(transactions, labels, end),
        # from the parquet footers of the staged files: no second Spark pass over the output
        "rows_per_day": {
            folder.name.removeprefix("ds="): sum(parquet_row_count(f) for f in folder.glob("*.parquet"))
            for folder in sorted(output.glob("ds=*"))
        },
        "seconds": round(time.perf_counter() - began, 2),
    }
    (output / "_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--start", required=True, type=as_date)
    p.add_argument("--end", type=as_date, default=None)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--root", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    end = args.end or args.start
    spark = get_session(f"build_features {args.start}..{end}")
    try:
        summary = run(spark, args.start, end, args.output, args.root)
    except Exception as exc:
        # bad input files (a published partition with another schema, a corrupt footer) end the job
        # with one BATCHML-ERROR line naming the file and column, and an exit code that is not retried
        failure = classify_spark_error(exc)
        if failure is None:
            raise
        return report_failure(failure, args.output)
    finally:
        spark.stop()
    log.info("features staged: %s", json.dumps(summary, sort_keys=True))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

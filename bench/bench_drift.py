"""Time of the drift computation of one monitoring day: PSI and KS for every monitored feature and
the score against the champion's stored reference, for 1 and 10 million current rows.

Set-up (not timed): the data root of a `make demo` run; the newest feature rows are tiled to the
wanted size and scored with the champion in one process. Timed: ``column_drift`` for each column
(binning, PSI, KS against the 5,000-value reference sample), as ``monitor_day`` runs it.

    make demo && source scripts/airflow-env.sh && python bench/bench_drift.py --root data
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO / "data")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--version", help="model version whose reference is used (default: the model of the last day)")
    args = p.parse_args()
    os.environ["BATCHML_DATA_ROOT"] = str(args.root.resolve())

    import mlflow
    import pandas as pd

    from include.drift.config import load_monitoring_config
    from include.drift.monitor import column_drift, load_reference
    from include.features.baseline import MODEL_INPUTS
    from include.scoring import model_for_day
    from include.training import tracking
    from include.training.config import load_training_config

    tracking.client()
    cfg = load_monitoring_config()
    days = sorted(d.name[3:] for d in (args.root / "features" / "baseline").glob("ds=*"))
    name = load_training_config().registered_model
    if args.version:
        run_id, uri = tracking.client().get_model_version(name, args.version).run_id, f"models:/{name}/{args.version}"
    else:
        model = model_for_day(name, days[-1])
        run_id, uri = model.run_id, model.uri
    reference = load_reference(run_id)
    scorer = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    base = pd.concat([pd.read_parquet(args.root / "features" / "baseline" / f"ds={d}" / "data.parquet")
                      for d in days[-7:]], ignore_index=True)
    columns = [c for c in MODEL_INPUTS if c not in cfg.exclude_columns]
    print(f"{len(columns)} features + the score, {os.cpu_count()} cores\n")
    print("| rows | PSI + KS, all columns, s | rows/s | slowest column | its s |")
    print("|---|---|---|---|---|")
    for n in args.rows:
        frame = pd.concat([base] * (n // len(base) + 1), ignore_index=True).iloc[:n]
        frame["score"] = scorer.predict(None, frame[MODEL_INPUTS])
        per_column = {}
        t0 = time.perf_counter()
        for c in [*columns, "score"]:
            c0 = time.perf_counter()
            ref = reference["score"] if c == "score" else reference["features"][c]
            column_drift(c, ref, frame[c].to_numpy(dtype=float), cfg)
            per_column[c] = time.perf_counter() - c0
        total = time.perf_counter() - t0
        slowest = max(per_column, key=per_column.get)
        print(f"| {n:,} | {total:.1f} | {n / total:,.0f} | {slowest} | {per_column[slowest]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

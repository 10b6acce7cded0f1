"""Time of the drift computation of one monitoring day: PSI and KS for every monitored feature and
the score against the champion's stored reference, for 1 and 10 million current rows.

Set-up (not timed): the data root of a `make demo` run; the newest feature rows are tiled to the
wanted size and scored with the champion in one process. Timed: ``column_drift`` for each column
(binning, PSI, KS against the 5,000-value reference sample), as ``monitor_day`` runs it.

    make demo && source scripts/airflow-env.sh && python bench/bench_drift.py --root data
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_lake import arguments  # noqa: E402  (after the path is set)


def main() -> int:
    args = arguments(__doc__, with_version=True)

    from bench.demo_lake import demo_model, tiled_features
    from include.drift.config import load_monitoring_config
    from include.drift.monitor import column_drift, load_reference
    from include.features.baseline import MODEL_INPUTS

    cfg = load_monitoring_config()
    model = demo_model(args.root, args.version)
    reference = load_reference(model.run_id)
    columns = [c for c in MODEL_INPUTS if c not in cfg.exclude_columns]
    print(f"{len(columns)} features + the score, {os.cpu_count()} cores\n")
    print("| rows | PSI + KS, all columns, s | rows/s | slowest column | its s |")
    print("|---|---|---|---|---|")
    for n in args.rows:
        frame = tiled_features(args.root, n)
        frame["score"] = model.scorer.predict(None, frame[MODEL_INPUTS])
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

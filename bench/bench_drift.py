"""Time of the drift computation of one monitoring day: PSI and KS for every monitored feature and
the score against the champion's stored reference, for 1 and 10 million current rows.

Set-up (not timed), as in bench_drift_library.py: the data root of a `make demo` run (``--root``; the
newest feature rows are tiled to the wanted size and scored with the champion in one process), or a
synthetic reference and day (``--synthetic``). Timed: ``column_drift`` for each column (binning, PSI,
KS against the 5,000-value reference sample), as ``monitor_day`` runs it, best of ``--repeat`` runs;
with ``--baseline REV`` also with the drift statistics of git revision REV, side by side.

    make demo && source scripts/airflow-env.sh && python bench/bench_drift.py --root data
    source scripts/airflow-env.sh && python bench/bench_drift.py --synthetic --baseline HEAD~1
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_drift_library import Source, arguments, baseline_modules, best_of  # noqa: E402


def main() -> int:
    args = arguments(__doc__, evidently=False)

    from include.drift.config import load_monitoring_config

    cfg = load_monitoring_config()
    source = Source(args, cfg)
    columns = list(source.reference)
    print(f"{source.title}; {len(columns) - 1} features + the score, {os.cpu_count()} cores\n")
    before_cells = " before, s | × |" if args.baseline else ""
    print(f"| rows | PSI + KS, all columns, s | rows/s | slowest column | its s |{before_cells}")
    print("|---|---|---|---|---|" + ("---|---|" if args.baseline else ""))
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        baseline = baseline_modules(args.baseline, Path(tmp)) if args.baseline else None
        for n in args.rows:
            frame = source.day(n)
            per_column = {c: best_of(args.repeat, [c], source.reference, frame, cfg)[0] for c in columns}
            total = sum(per_column.values())
            slowest = max(per_column, key=per_column.get)
            row = f"| {n:,} | {total:.2f} | {n / total:,.0f} | {slowest} | {per_column[slowest]:.3f} |"
            if baseline is not None:
                before = best_of(args.repeat, columns, source.reference, frame, cfg, baseline=baseline)[0]
                row += f" {before:.2f} | {before / total:.1f} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

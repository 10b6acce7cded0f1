"""The ML monitor's page over a year of history, on SQLite and on PostgreSQL: the page (gather + HTML) and the JSON endpoint (gather + JSON), timed apart.

The history is the one tests/unit/test_ml_monitor.py writes (``fill_history``: per day 15 features and
the score in drift_metrics, predictions through ``warehouse.replace_predictions`` and so their
``prediction_days`` summary, data-quality rows, weekly promotions and alerts, and with ``--shadow``
the champion's and a shadow's ``performance_days`` rows). The page never reads the predictions, so
``--rows`` changes the time to fill, not the page's. Prints the best and the median of ``--repeat``
runs per window::

    source scripts/airflow-env.sh && python bench/bench_ml_monitor.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(repeat: int, windows: tuple[int, ...]) -> dict[tuple[int, str], list[float]]:
    """Seconds per request, by (window days, what): the page (gather + HTML) and the JSON endpoint
    (gather + JSON), each as the view serves it."""
    from include import ml_monitor

    ml_monitor.gather(days=7, registry_timeout_s=5)  # the first connection outside the timing
    timings: dict[tuple[int, str], list[float]] = {}
    for days in windows:
        for _ in range(repeat):
            for what, encode in (("page", ml_monitor.render_html),
                                 ("json", lambda d: json.dumps(ml_monitor.as_json(d), allow_nan=False))):
                began = time.perf_counter()
                encode(ml_monitor.gather(days=days, registry_timeout_s=5))
                timings.setdefault((days, what), []).append(time.perf_counter() - began)
    return timings


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rows", type=int, default=200, help="predictions a day (the page reads their daily summary)")
    p.add_argument("--shadow", action=argparse.BooleanOptionalAction, default=True,
                   help="a shadow's performance rows beside the champion's")
    args = p.parse_args()

    from tests.postgres import fresh_database
    from tests.unit.test_ml_monitor import END, fill_history, fill_performance

    print("| warehouse | window days | request | best s | median s | runs |\n|---|---|---|---|---|---|")
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["BATCHML_DATA_ROOT"] = tmp
            with fresh_database("batchml_bench_monitor") if kind == "postgresql" else nullcontext() as url:
                if url:
                    os.environ["BATCHML_WAREHOUSE_URL"] = url
                else:
                    os.environ.pop("BATCHML_WAREHOUSE_URL", None)
                from include import warehouse

                warehouse.dispose_engines()
                fill_history(days=365, rows_per_day=args.rows, failed_day=100, performance=True)
                if args.shadow:
                    fill_performance(END, 365, version="2", role="shadow")
                for (days, what), runs in measure(args.repeat, (90, 365)).items():
                    print(f"| {kind} | {days} | {what} | {min(runs):.3f} | {statistics.median(runs):.3f} | {len(runs)} |",
                          flush=True)
                warehouse.dispose_engines()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of the Spark feature job (include/jobs/build_features.py), run the way the features DAG runs it.

Set-up (timed, not part of the results): simulate one history once and publish it straight into raw
partitions of a temporary data root, as the ingest DAG would: ``raw/transactions/ds=D/`` holds the
transactions of day D, ``raw/labels/ds=A/`` the labels that arrive on day A (those of day A - 7).

(a) Nightly run vs. history length. For each H in ``--days-history`` (default 30, 60, 120), one
    ``spark-submit include/jobs/build_features.py --start D --end D`` with D = first day + H, i.e.
    H days of history before D. The job reads only the lookback window of D (37 days of
    transactions, 30 days of label arrivals), so its cost must stay flat as H grows.
(b) Backfill. ``--backfill-days`` (default 90) days of features in one Spark application
    (``--start D0 --end D0+89``, D0 chosen so that every day has its full lookback), against one
    application per day. Running 90 single-day applications would take about 25 minutes, so only
    ``--single-runs`` (default 10) of them, spread evenly over the range, are measured; the cost of
    all 90 is their mean times 90 and is labelled as extrapolated.

Times are wall-clock seconds of the whole ``spark-submit`` process (JVM start, Spark session,
reading, computing, writing, stop), measured from here; "in-job s" is the job's own ``seconds``
from its JSON summary (session start-up excluded). One warm-up application runs first and is not
reported. Every application writes to its own staging folder; the data root is removed at the end.

    source scripts/airflow-env.sh && python bench/bench_features.py            # full scale, ~15 min
    source scripts/airflow-env.sh && python bench/bench_features.py --quick    # 500 customers, ~3 min
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from include.config import REPO_ROOT
from include.pipelines.fraud.features.baseline import TRANSACTION_LOOKBACK_DAYS
from include.pipelines.fraud.simulator.generator import SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_raw_partitions
from include.storage import day_range, remove_tree

JOB = REPO_ROOT / "include" / "jobs" / "build_features.py"
START = dt.date(2026, 1, 1)


@dataclass(frozen=True)
class JobRun:
    start: dt.date
    end: dt.date
    wall_s: float
    summary: dict

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def rows(self) -> int:
        return sum(self.summary["rows_per_day"].values())


def submit(start: dt.date, end: dt.date, root: Path) -> JobRun:
    """One spark-submit of the feature job, timed from outside; returns it with the job's ``_summary.json``.

    The summary is read from the file, not from stdout: under spark-submit the driver's stderr (logging)
    is merged into stdout, and py4j logs a line at interpreter exit, after the job prints its summary.
    """
    output = root / "_staging" / "bench" / f"{start}_{end}_{time.monotonic_ns()}"
    cmd = ["spark-submit", str(JOB), "--start", start.isoformat(), "--end", end.isoformat(),
           "--output", str(output), "--root", str(root)]
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    summary = json.loads((output / "_summary.json").read_text())
    remove_tree(output)
    print(f"  {start}..{end}: {wall:6.1f}s wall, {summary['transaction_partitions_read']} transaction "
          f"partitions, {sum(summary['rows_per_day'].values()):,} rows", file=sys.stderr, flush=True)
    return JobRun(start, end, wall, summary)


def spread(days: list[dt.date], n: int) -> list[dt.date]:
    """``n`` days spread evenly over ``days``, first and last included."""
    if n >= len(days):
        return list(days)
    if n == 1:
        return [days[len(days) // 2]]
    return [days[round(i * (len(days) - 1) / (n - 1))] for i in range(n)]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def history_table(runs: dict[int, JobRun]) -> str:
    rows = [
        [str(h), str(r.start), str(r.summary["transaction_partitions_read"]), str(r.summary["label_partitions_read"]),
         f"{r.rows:,}", f"{r.summary['seconds']:.1f}", f"{r.wall_s:.1f}"]
        for h, r in runs.items()
    ]
    return markdown_table(["history days", "feature day", "transaction partitions read", "label partitions read",
                           "rows", "in-job s", "spark-submit wall s"], rows)


def backfill_table(backfill: JobRun, singles: list[JobRun]) -> str:
    n_days = backfill.days
    walls = [r.wall_s for r in singles]
    mean = statistics.mean(walls)
    extrapolated = mean * n_days
    rows = [
        [f"backfill, one application ({backfill.start}..{backfill.end})", "1", str(n_days), f"{backfill.rows:,}",
         f"{backfill.wall_s:.1f}", f"{backfill.wall_s / n_days:.2f}"],
        [f"single-day applications, measured ({len(singles)} days spread over the range; "
         f"min {min(walls):.1f}s, max {max(walls):.1f}s)", str(len(singles)), str(len(singles)),
         f"{sum(r.rows for r in singles):,}", f"{sum(walls):.1f}", f"{mean:.2f}"],
        [f"**{n_days} single-day applications, extrapolated** ({n_days} × measured mean)", str(n_days), str(n_days),
         "—", f"**{extrapolated:.0f}** (extrapolated)", f"{mean:.2f}"],
    ]
    table = markdown_table(["mode", "spark-submits", "feature days", "rows", "wall s", "wall s per day"], rows)
    return f"{table}\n\nOne application is {extrapolated / backfill.wall_s:.1f}x faster than {n_days} single-day " \
           f"applications (extrapolated from {len(singles)} measured)."


def check_rows(backfill: JobRun, singles: list[JobRun]) -> list[str]:
    """Days whose row count differs between the backfill and their single-day run."""
    return [
        f"{day}: backfill {backfill.summary['rows_per_day'].get(day)} vs single {count}"
        for r in singles
        for day, count in r.summary["rows_per_day"].items()
        if backfill.summary["rows_per_day"].get(day) != count
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days-history", type=int, nargs="+", default=[30, 60, 120], metavar="H",
                   help="history lengths for (a) (default 30 60 120)")
    p.add_argument("--backfill-days", type=int, default=90, help="days of the backfill in (b) (default 90)")
    p.add_argument("--single-runs", type=int, default=None,
                   help="single-day applications measured in (b) (default 10, 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="500 customers, 1,000 terminals, 3 single-day runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", type=Path, default=None,
                   help="data root to create (must not exist; default: a new temporary folder)")
    p.add_argument("--keep-data", action="store_true", help="leave the data root in place")
    args = p.parse_args(argv)
    single_runs = args.single_runs if args.single_runs is not None else (3 if args.quick else 10)
    if min(args.days_history) < 0 or args.backfill_days < 1 or single_runs < 1:
        p.error("--days-history must be >= 0, --backfill-days and --single-runs >= 1")
    if shutil.which("spark-submit") is None:
        p.error("spark-submit is not on PATH: source scripts/airflow-env.sh first")
    customers, terminals = (500, 1_000) if args.quick else (5_000, 10_000)

    # (a) needs days START..START+max(H); (b) needs the lookback of its first day, then the backfill range
    backfill_start = START + dt.timedelta(days=TRANSACTION_LOOKBACK_DAYS)
    backfill_days = day_range(backfill_start, backfill_start + dt.timedelta(days=args.backfill_days - 1))
    n_days = max(max(args.days_history) + 1, TRANSACTION_LOOKBACK_DAYS + args.backfill_days)
    cfg = SimulatorConfig(n_customers=customers, n_terminals=terminals, n_days=n_days, start_date=START, seed=args.seed)

    if args.root is not None and args.root.exists():
        p.error(f"--root {args.root} exists; give a new folder (it is removed at the end)")
    root = args.root or Path(tempfile.mkdtemp(prefix="batchml-bench-features-"))
    try:
        t0 = time.perf_counter()
        sim = simulate(cfg)
        published = write_raw_partitions(sim.transactions, root)
        print(f"set-up: {n_days} days ({cfg.start_date}..{cfg.end_date}), {customers:,} customers, {terminals:,} "
              f"terminals, {len(sim.transactions):,} transactions ({len(sim.transactions) / n_days:,.0f}/day), "
              f"{published} raw partitions per source in {root}, {time.perf_counter() - t0:.0f}s",
              file=sys.stderr, flush=True)
        del sim

        print("warm-up application (not reported)", file=sys.stderr, flush=True)
        submit(backfill_start, backfill_start, root)

        print("(a) nightly run vs history length", file=sys.stderr, flush=True)
        history = {h: submit(START + dt.timedelta(days=h), START + dt.timedelta(days=h), root)
                   for h in args.days_history}

        print(f"(b) backfill of {len(backfill_days)} days vs {single_runs} single-day runs", file=sys.stderr,
              flush=True)
        backfill = submit(backfill_days[0], backfill_days[-1], root)
        singles = [submit(day, day, root) for day in spread(backfill_days, single_runs)]
    finally:
        if args.keep_data:
            print(f"data kept in {root}", file=sys.stderr)
        else:
            remove_tree(root)

    scale = f"{customers:,} customers, {terminals:,} terminals, seed {args.seed}, {os.cpu_count()} CPUs, local[*]"
    print(f"## (a) One nightly feature day vs history already in raw ({scale})\n")
    print(history_table(history))
    print(f"\n## (b) Backfill of {len(backfill_days)} days: one application vs one per day ({scale})\n")
    print(backfill_table(backfill, singles))
    mismatches = check_rows(backfill, singles)
    print("\nRow counts of the single-day runs match the backfill's for the same days."
          if not mismatches else "\nROW COUNT MISMATCH between backfill and single-day runs: " + "; ".join(mismatches))
    return 0


if __name__ == "__main__":
    sys.exit(main())

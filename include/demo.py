"""`make demo`: simulate a transaction history, then run the ingest DAG for every day and the
features DAG over the whole range (one Spark application), with the real engines.

    python -m include.demo --days 45 --start 2026-01-01

Each DAG run goes through ``dag.test()``; its task logs go to ``$AIRFLOW_HOME/demo-logs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path

from include.config import REPO_ROOT, data_root
from include.simulator.generator import SimulatorConfig, simulate
from include.simulator.landing import write_landing_files
from include.storage import day_range, parquet_row_count, partition_file


def load_dags():
    """The repo's DAGs, parsed once; any import error stops the demo."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def run_dag(dag, log_path: Path, **kwargs) -> str:
    """``dag.test()`` with its output in ``log_path``; returns the run's final state."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log, redirect_fds(log.fileno()):
        run = dag.test(**kwargs)
    return str(run.state)


@contextlib.contextmanager
def redirect_fds(target: int):
    """Send file descriptors 1 and 2 to ``target``: Airflow's loggers hold on to the original streams."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=45)
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root, logs = data_root(), Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")) / "demo-logs"
    began = time.perf_counter()

    cfg = SimulatorConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days,
                          start_date=args.start, seed=args.seed)
    print(f"[1/3] simulating {cfg.n_days} days ({cfg.start_date}..{cfg.end_date}), "
          f"{cfg.n_customers:,} customers, {cfg.n_terminals:,} terminals, seed {cfg.seed}", flush=True)
    sim = simulate(cfg)
    write_landing_files(sim.transactions, root)
    print(f"      {len(sim.transactions):,} transactions, fraud rate {sim.transactions['tx_fraud'].mean():.2%}, "
          f"landing files in {root / 'landing'}", flush=True)

    print(f"[2/3] ingest DAG, one run per day (GX checkpoints on transactions and labels); logs in {logs}",
          flush=True)
    dags = load_dags()
    ingest = dags.get_dag("ingest")
    days = day_range(cfg.start_date, cfg.end_date)
    for i, day in enumerate(days, 1):
        t0 = time.perf_counter()
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        state = run_dag(ingest, logs / f"ingest-{day}.log", logical_date=logical)
        if state != "success":
            print(f"      {day}: ingest run {state}; see {logs / f'ingest-{day}.log'}", file=sys.stderr)
            return 1
        tx = parquet_row_count(partition_file("raw", "transactions", day, root))
        labels = parquet_row_count(partition_file("raw", "labels", day, root))
        print(f"      [{i:>3}/{len(days)}] {day}  transactions {tx:>7,}  labels {labels:>7,}  "
              f"checks passed  {time.perf_counter() - t0:4.1f}s", flush=True)

    print(f"[3/3] features DAG over {days[0]}..{days[-1]} in one Spark application", flush=True)
    t0 = time.perf_counter()
    state = run_dag(dags.get_dag("features"), logs / "features.log",
                    run_conf={"start": days[0].isoformat(), "end": days[-1].isoformat()})
    if state != "success":
        print(f"      features run {state}; see {logs / 'features.log'}", file=sys.stderr)
        return 1
    rows = sum(parquet_row_count(partition_file("features", "baseline", d, root)) for d in days)
    print(f"      {len(days)} feature partitions, {rows:,} rows, checks passed "
          f"({time.perf_counter() - t0:.0f}s) in {root / 'features' / 'baseline'}")
    print(f"done in {time.perf_counter() - began:.0f}s. Data Docs: "
          f"{root / 'gx' / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

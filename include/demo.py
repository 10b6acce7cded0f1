"""`make demo`: simulate a transaction history, run the ingest DAG for every day, the features DAG
over the whole range (one Spark application), then the training DAG as of the last day, with the
real engines (Spark, Great Expectations, MLflow).

    python -m include.demo --days 60 --start 2026-01-01

Each DAG run goes through ``dag.test()``; its task logs go to ``$AIRFLOW_HOME/demo-logs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import textwrap
import time
from pathlib import Path

from include.config import REPO_ROOT, data_root, mlflow_tracking_uri
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
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root, logs = data_root(), Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")) / "demo-logs"
    began = time.perf_counter()

    cfg = SimulatorConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days,
                          start_date=args.start, seed=args.seed)
    print(f"[1/4] simulating {cfg.n_days} days ({cfg.start_date}..{cfg.end_date}), "
          f"{cfg.n_customers:,} customers, {cfg.n_terminals:,} terminals, seed {cfg.seed}", flush=True)
    sim = simulate(cfg)
    write_landing_files(sim.transactions, root)
    print(f"      {len(sim.transactions):,} transactions, fraud rate {sim.transactions['tx_fraud'].mean():.2%}, "
          f"landing files in {root / 'landing'}", flush=True)

    print(f"[2/4] ingest DAG, one run per day (GX checkpoints on transactions and labels); logs in {logs}",
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

    print(f"[3/4] features DAG over {days[0]}..{days[-1]} in one Spark application", flush=True)
    t0 = time.perf_counter()
    state = run_dag(dags.get_dag("features"), logs / "features.log",
                    run_conf={"start": days[0].isoformat(), "end": days[-1].isoformat()})
    if state != "success":
        print(f"      features run {state}; see {logs / 'features.log'}", file=sys.stderr)
        return 1
    rows = sum(parquet_row_count(partition_file("features", "baseline", d, root)) for d in days)
    print(f"      {len(days)} feature partitions, {rows:,} rows, checks passed "
          f"({time.perf_counter() - t0:.0f}s) in {root / 'features' / 'baseline'}")
    if not train(dags.get_dag("training"), days[-1], logs):
        return 1
    print(f"done in {time.perf_counter() - began:.0f}s. Data Docs: "
          f"{root / 'gx' / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}\n"
          f"MLflow: make mlflow (tracking store {mlflow_tracking_uri()})")
    return 0


def train(dag, as_of: dt.date, logs: Path) -> bool:
    """Run the training DAG as of ``as_of`` and print its leaderboard; False when the run failed."""
    from include.training.config import load_training_config
    from include.training.pipeline import format_leaderboard, leaderboard
    from include.training.windows import plan_training

    cfg = load_training_config()
    plan = plan_training(as_of, cfg.window)
    e = plan.evaluation
    print(f"[4/4] training DAG as of {as_of}: {', '.join(m.name for m in cfg.models)}; train {e.train_start}.."
          f"{e.train_end}, evaluate {e.test_start}..{e.test_end}, {len(plan.folds)} tuning folds", flush=True)
    t0 = time.perf_counter()
    state = run_dag(dag, logs / f"training-{as_of}.log", run_conf={"as_of": as_of.isoformat()})
    if state != "success":
        print(f"      training run {state}; see {logs / f'training-{as_of}.log'}", file=sys.stderr)
        return False
    print(f"      trained in {time.perf_counter() - t0:.0f}s; leaderboard on the evaluation window:")
    print(textwrap.indent(format_leaderboard(leaderboard(as_of.isoformat(), cfg), cfg.metrics.top_k), "      "))
    return True


if __name__ == "__main__":
    sys.exit(main())

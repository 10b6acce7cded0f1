"""`make demo`: the reference pipeline end to end on simulated card transactions, with the real
engines (Spark, Great Expectations, MLflow, the warehouse through SQLAlchemy).

1. Simulate ``--days`` of history and ``--nights`` more days; a drift scenario (``--drift``) starts on
   night ``--drift-night``. Every day's landing files are written up front; ingest reads one day.
2. History: the ingest DAG for every day, then the features DAG over the whole range in one Spark
   application, then the training DAG as of the last day (the first champion).
3. Nights, one day at a time, in the order the Asset schedules chain them: ingest -> features ->
   scoring -> monitoring, and the training DAG as of the day when monitoring emits ``drift_alert``
   (what the scheduler does with the Asset event). The gate decides whether the retrained model
   becomes champion; later nights are scored by whichever version is champion then.
4. A summary: rows scored per night with the model version, the PSI table per night, the alerts and
   the gate decisions.

    python -m include.demo --days 75 --nights 5 --drift amount_shift --drift-night 3

Each DAG run goes through ``dag.test()``; task logs go to ``$AIRFLOW_HOME/demo-logs/``. The weekly
time schedule of training (Sundays 03:00) is left to a real scheduler. ``--days`` must leave the
champion's reference window (as_of - 34 .. as_of - 21) clear of the 37-day warm-up of the terminal
windows, or every night reports drift against a reference computed on truncated windows.
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
from include.simulator.generator import DriftScenario, SimulatorConfig, simulate
from include.simulator.landing import write_landing_files
from include.storage import day_range, parquet_row_count, partition_file

DEFAULT_MAGNITUDE = {"amount_shift": 1.5, "night_shift": 0.3, "terminal_wave": 20}
MIN_HISTORY_DAYS = 72  # first training as of day 71: its reference window starts on day 37


class DemoFailure(RuntimeError):
    """A DAG run of the demo did not succeed; the message names the run and its log."""


def load_dags():
    """The repo's DAGs, parsed once; any import error stops the demo."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise DemoFailure(f"DAG import errors: {bag.import_errors}")
    return bag


def run_dag(dag, log_path: Path, **kwargs):
    """``dag.test()`` with its output in ``log_path``; the DagRun, or DemoFailure when it did not succeed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log, redirect_fds(log.fileno()):
        run = dag.test(**kwargs)
    if str(run.state) != "success":
        failed = sorted(ti.task_id for ti in run.get_task_instances() if str(ti.state) == "failed")
        raise DemoFailure(f"{dag.dag_id} run {run.state} (failed: {', '.join(failed) or 'none'}); see {log_path}")
    return run


def one_day(day: dt.date) -> dict[str, str]:
    return {"start": day.isoformat(), "end": day.isoformat()}


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


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=75, help="days of history before the first training")
    p.add_argument("--nights", type=int, default=5, help="nightly cycles after the first training")
    p.add_argument("--drift", choices=[*DEFAULT_MAGNITUDE, "none"], default="amount_shift")
    p.add_argument("--drift-night", type=int, default=3, help="the night (1-based) the drift starts")
    p.add_argument("--magnitude", type=float, help=f"drift magnitude (default per kind: {DEFAULT_MAGNITUDE})")
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.days < MIN_HISTORY_DAYS:
        p.error(f"--days {args.days}: at least {MIN_HISTORY_DAYS} days of history are needed for a reference "
                "window past the feature warm-up")
    if args.nights < 0 or (args.drift != "none" and not 1 <= args.drift_night <= args.nights):
        p.error(f"--drift-night {args.drift_night} must be a night in 1..--nights ({args.nights})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    root, logs = data_root(), Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")) / "demo-logs"
    began = time.perf_counter()
    history_end = args.start + dt.timedelta(days=args.days - 1)
    drift = () if args.drift == "none" else (DriftScenario(
        args.drift, history_end + dt.timedelta(days=args.drift_night),
        args.magnitude if args.magnitude is not None else DEFAULT_MAGNITUDE[args.drift]),)
    cfg = SimulatorConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days + args.nights,
                          start_date=args.start, seed=args.seed, drift=drift)
    try:
        simulate_landing(cfg, root)
        dags = load_dags()
        history = day_range(cfg.start_date, history_end)
        ingest_history(dags.get_dag("ingest"), history, root, logs)
        features_history(dags.get_dag("features"), history, root, logs)
        train(dags.get_dag("training"), history_end, logs, "[4/6] first training", leaderboard=True)
        nights = day_range(history_end + dt.timedelta(days=1), cfg.end_date)
        run_nights(dags, nights, root, logs)
        print_summary(nights)
    except DemoFailure as exc:
        print(f"demo stopped: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - began:.0f}s. Drift reports: {root / 'reports' / 'drift'}; Data Docs: "
          f"{root / 'gx' / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}\n"
          f"MLflow: make mlflow (tracking store {mlflow_tracking_uri()})")
    return 0


def simulate_landing(cfg: SimulatorConfig, root: Path) -> None:
    drift = "; ".join(f"{d.kind} x{d.magnitude:g} from {d.start}" for d in cfg.drift) or "none"
    print(f"[1/6] simulating {cfg.n_days} days ({cfg.start_date}..{cfg.end_date}), {cfg.n_customers:,} customers, "
          f"{cfg.n_terminals:,} terminals, seed {cfg.seed}; drift: {drift}", flush=True)
    sim = simulate(cfg)
    write_landing_files(sim.transactions, root)
    print(f"      {len(sim.transactions):,} transactions, fraud rate {sim.transactions['tx_fraud'].mean():.2%}, "
          f"landing files in {root / 'landing'}", flush=True)


def ingest_day(dag, day: dt.date, root: Path, logs: Path) -> tuple[int, int]:
    """The ingest DAG for ``day``; its transaction and label row counts."""
    run_dag(dag, logs / f"ingest-{day}.log", logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
    return (parquet_row_count(partition_file("raw", "transactions", day, root)),
            parquet_row_count(partition_file("raw", "labels", day, root)))


def ingest_history(dag, days: list[dt.date], root: Path, logs: Path) -> None:
    print(f"[2/6] ingest DAG, one run per day (GX checkpoints on transactions and labels); logs in {logs}",
          flush=True)
    for i, day in enumerate(days, 1):
        t0 = time.perf_counter()
        tx, labels = ingest_day(dag, day, root, logs)
        print(f"      [{i:>3}/{len(days)}] {day}  transactions {tx:>7,}  labels {labels:>7,}  "
              f"checks passed  {time.perf_counter() - t0:4.1f}s", flush=True)


def features_history(dag, days: list[dt.date], root: Path, logs: Path) -> None:
    print(f"[3/6] features DAG over {days[0]}..{days[-1]} in one Spark application", flush=True)
    t0 = time.perf_counter()
    run_dag(dag, logs / "features.log", run_conf={"start": days[0].isoformat(), "end": days[-1].isoformat()})
    rows = sum(parquet_row_count(partition_file("features", "baseline", d, root)) for d in days)
    print(f"      {len(days)} feature partitions, {rows:,} rows, checks passed "
          f"({time.perf_counter() - t0:.0f}s) in {root / 'features' / 'baseline'}", flush=True)


def train(dag, as_of: dt.date, logs: Path, title: str, leaderboard: bool = False) -> dict:
    """The training DAG as of ``as_of``; prints the gate's decision (and the leaderboard) and returns it."""
    from include import warehouse
    from include.training import pipeline
    from include.training.config import load_training_config
    from include.training.windows import plan_training

    cfg = load_training_config()
    e = plan_training(as_of, cfg.window).evaluation
    print(f"{title}: training DAG as of {as_of} ({', '.join(m.name for m in cfg.models)}; train {e.train_start}.."
          f"{e.train_end}, evaluate {e.test_start}..{e.test_end})", flush=True)
    t0 = time.perf_counter()
    run_dag(dag, logs / f"training-{as_of}.log", run_conf={"as_of": as_of.isoformat()})
    decision = warehouse.decision_for(cfg.registered_model, as_of) or {}
    print(f"      trained in {time.perf_counter() - t0:.0f}s; gate: {decision.get('decision')} version "
          f"{decision.get('challenger_version')}: {decision.get('reason')}", flush=True)
    if leaderboard:
        print("      leaderboard on the evaluation window:")
        board = pipeline.format_leaderboard(pipeline.leaderboard(as_of.isoformat(), cfg), cfg.metrics.top_k)
        print(textwrap.indent(board, "      "), flush=True)
    return decision


def run_nights(dags, nights: list[dt.date], root: Path, logs: Path) -> None:
    """One nightly cycle per day: ingest, features, scoring, monitoring, and training on a drift alert."""
    from include import warehouse

    print(f"[5/6] {len(nights)} nightly cycles {nights[0]}..{nights[-1]}: ingest -> features -> scoring -> "
          "monitoring (-> training on a drift alert)", flush=True)
    for i, day in enumerate(nights, 1):
        t0 = time.perf_counter()
        tx, _ = ingest_day(dags.get_dag("ingest"), day, root, logs)
        run_dag(dags.get_dag("features"), logs / f"features-{day}.log", run_conf=one_day(day))
        run_dag(dags.get_dag("scoring"), logs / f"scoring-{day}.log", run_conf=one_day(day))
        monitoring = run_dag(dags.get_dag("monitoring"), logs / f"monitoring-{day}.log", run_conf=one_day(day))
        scored = warehouse.scoring_summary(day, day)
        drifted = [r for r in warehouse.drift_between(day, day) if r["drifted"]]
        alerts = warehouse.alerts_between(day, day)
        emitted = str(monitoring.get_task_instance("emit_drift_alert").state) == "success"
        line = (f"      night {i}/{len(nights)} {day}  transactions {tx:>6,}  scored "
                + ", ".join(f"{s['rows']:,} by v{s['model_version']}" for s in scored)
                + f"  drifted columns {len(drifted):>2}  alerts {len(alerts)}"
                + ("  -> drift_alert emitted" if emitted else "  (episode already handled)" if alerts else "")
                + f"  {time.perf_counter() - t0:.0f}s")
        print(line, flush=True)
        if emitted:
            train(dags.get_dag("training"), day, logs, "      retraining on the drift alert")


def print_summary(nights: list[dt.date]) -> None:
    from include import warehouse
    from include.training.config import load_training_config

    start, end = nights[0], nights[-1]
    print("[6/6] summary")
    print("      rows scored per night (warehouse table predictions):")
    print("      | day | model version | rows | flagged | mean score |\n      |---|---|---|---|---|")
    for s in warehouse.scoring_summary(start, end):
        print(f"      | {s['ds']} | {s['model_version']} | {s['rows']:,} | {s['flagged']:,} | {s['mean_score']:.4f} |")

    drift = warehouse.drift_between(start, end)
    columns = list(dict.fromkeys(r["column_name"] for r in drift))
    psi = {(r["ds"], r["column_name"]): r for r in drift}
    print("\n      PSI per night against the scoring version's reference (* drifted: PSI >= 0.2, or >= 0.1 with KS):")
    print("      | column | " + " | ".join(d.strftime("%m-%d") for d in nights) + " |")
    print("      |---|" + "---|" * len(nights))
    for c in columns:
        cells = [psi.get((d, c)) for d in nights]
        print(f"      | {c} | " + " | ".join(
            "" if r is None or r["psi"] is None else f"{r['psi']:.3f}{'*' if r['drifted'] else ''}" for r in cells)
            + " |")

    print("\n      alerts:")
    for a in warehouse.alerts_between(start, end) or [{"ds": "-", "kind": "none", "message": "", "model_version": "",
                                                       "triggered_training": False}]:
        print(f"      - {a['ds']} {a['kind']} (v{a['model_version']}): {a['message']}"
              + ("  [triggered training]" if a["triggered_training"] else ""))
    print("\n      gate decisions (warehouse table promotions):")
    for p in warehouse.promotion_history(load_training_config().registered_model):
        print(f"      - as of {p['as_of']}: {p['decision']} v{p['challenger_version']} "
              f"(champion then: {p['champion_version'] or 'none'}){' -> champion' if p['promoted'] else ''}: "
              f"{p['reason']}")


if __name__ == "__main__":
    sys.exit(main())

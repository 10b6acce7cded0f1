"""The stages of a night at 10x and 100x the default volume: wall time, rows/s, cost per row and peak
memory of every process (the task's Python process, the Spark driver JVM, the Python workers).

Data (set-up, cached under bench/results/scale/, git-ignored; ``--fresh`` rebuilds it):

- 10x: the simulator (include/pipelines/fraud/simulator) at 50,000 customers (10,000 terminals, seed 0)
  for ``--days`` days (default 8: the last day is the first whose labels arrive, of day 0);
- 100x: ``--hundred tile`` (default) tiles the 10x days 10 times, each copy with its own customer,
  terminal and transaction ids (ten independent 10x populations: the same per-row work as 500,000
  simulated customers, not the same data); ``--hundred simulate`` runs the simulator at 500,000
  customers instead (about 20 minutes a day of simulation on 2 cores); ``--hundred none`` skips it.

Stages, each in its own process, as a night runs them (peak RSS sampled every 0.1 s over the process
tree with psutil; "task" is the process the Airflow task would run, "JVM" the Spark driver, which in
local mode is also the executor, "workers" the Python workers Spark starts):

- features backfill (``--backfill``, default 10x only): ``spark-submit include/jobs/build_features.py``
  of every day in one application (without it, day 0 alone, as a set-up);
- features night: the same for the last day alone;
- scoring backfill / night: ``include.jobs.score.run`` (mapInArrow, a warm-up-free fresh session) of every
  day / the last day with a fitted XGBoost model (bench/bench_scoring.py's synthetic model; no registry),
  then ``include.scoring.publish_predictions`` (the warehouse rows and the lake file);
- monitoring night: ``include.drift.monitor.monitor_day`` of the last day, the day read in batches of
  ``--batch-rows`` (and of a small batch, to show that peak memory follows the batch): drift of every
  feature and the score, the realised performance of day 0's arriving labels, the CBPE estimate, the
  warehouse rows and the report. Its two registry reads are replaced by the bench's reference (fitted on
  day 0) and the model's threshold: the rest is the code the monitoring DAG runs.

    source scripts/airflow-env.sh && python bench/bench_scale.py                 # 10x and tiled 100x
    source scripts/airflow-env.sh && python bench/bench_scale.py --hundred none  # 10x only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "results" / "scale"
FEATURES_JOB = REPO / "include" / "jobs" / "build_features.py"
START = dt.date(2026, 1, 1)
CUSTOMERS_10X = 50_000
MODEL_NAME = "fraud-detector"


# --- data ------------------------------------------------------------------------------------------

def simulated(root: Path, customers: int, days: int, seed: int, fresh: bool) -> dict:
    """Raw partitions of the simulator at ``customers`` for ``days`` days in ``root`` (reused when its
    ``simulated.json`` says the same); returns that record."""
    from include.pipelines.fraud.simulator.generator import SimulatorConfig, simulate
    from include.pipelines.fraud.simulator.landing import write_raw_partitions

    marker = root / "simulated.json"
    want = {"customers": customers, "terminals": SimulatorConfig.n_terminals, "days": days,
            "start": START.isoformat(), "seed": seed}
    if not fresh and marker.exists():
        got = json.loads(marker.read_text())
        if {k: got.get(k) for k in want} == want:
            return got
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    sim = simulate(SimulatorConfig(n_customers=customers, n_days=days, start_date=START, seed=seed))
    simulate_s = time.perf_counter() - t0
    write_raw_partitions(sim.transactions, root)
    record = {**want, "transactions": len(sim.transactions), "simulate_s": round(simulate_s, 1),
              "land_s": round(time.perf_counter() - t0 - simulate_s, 1)}
    marker.write_text(json.dumps(record))
    return record


def tiled(source: Path, root: Path, copies: int, fresh: bool) -> dict:
    """The raw partitions of ``source`` repeated ``copies`` times per day, copy i with every id
    (transaction, customer, terminal) shifted by i x (the largest id + 1): ``copies`` disjoint populations."""
    import pandas as pd

    from include.storage import partition_file, write_parquet_atomic

    record = json.loads((source / "simulated.json").read_text())
    marker = root / "simulated.json"
    want = {**record, "tiled_from": str(source), "copies": copies}
    if not fresh and marker.exists():
        got = json.loads(marker.read_text())
        if {k: v for k, v in got.items() if k != "transactions"} == {k: v for k, v in want.items()
                                                                      if k != "transactions"}:
            return got
    shutil.rmtree(root, ignore_errors=True)
    days = [START + dt.timedelta(days=i) for i in range(record["days"])]
    shifts: dict[str, int] = {}  # per id column: one more than its largest value on any day
    for kind in ("transactions", "labels"):
        for day in days:
            frame = pd.read_parquet(partition_file("raw", kind, day, source))
            for column in (c for c in frame.columns if c.endswith("_id") and len(frame)):
                shifts[column] = max(shifts.get(column, 0), int(frame[column].max()) + 1)
    total = 0
    for kind in ("transactions", "labels"):
        for day in days:
            frame = pd.read_parquet(partition_file("raw", kind, day, source))
            parts = [frame.assign(**{c: frame[c] + i * shifts[c] for c in frame.columns if c in shifts})
                     for i in range(copies)]
            big = pd.concat(parts, ignore_index=True)
            total += len(big) if kind == "transactions" else 0
            write_parquet_atomic(big, partition_file("raw", kind, day, root))
    record = {**want, "transactions": total}
    marker.write_text(json.dumps(record))
    return record


# --- measuring a process tree ----------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    rows: int
    wall_s: float
    peak_mb: dict[str, float] = field(default_factory=dict)  # role -> peak RSS (MB), "tree": the whole tree
    inner: dict = field(default_factory=dict)  # what the stage printed (its own timings)


def _role(proc, root_pid: int) -> str:
    try:
        name, cmd = proc.name(), " ".join(proc.cmdline())
    except Exception:  # gone between listing and reading
        return "gone"
    if name.startswith("java"):
        return "JVM"
    if "pyspark" in cmd and ("daemon" in cmd or "worker" in cmd):
        return "workers"
    return "task" if proc.pid == root_pid or "python" in name else "other"


def _sample(proc) -> dict[str, float]:
    """Peak RSS (MB) per role of ``proc``'s process tree, sampled every 0.1 s until it exits."""
    import psutil

    parent = psutil.Process(proc.pid)
    peaks: dict[str, float] = {}
    while proc.poll() is None:
        sums: dict[str, float] = {}
        try:
            procs = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss / 1e6
            except psutil.Error:
                continue
            role = _role(p, proc.pid)
            sums[role] = sums.get(role, 0.0) + rss
            sums["tree"] = sums.get("tree", 0.0) + rss
        for role, mb in sums.items():
            peaks[role] = max(peaks.get(role, 0.0), mb)
        time.sleep(0.1)
    proc.wait()
    return peaks


def measured(name: str, rows: int, cmd: list[str], env: dict) -> Stage:
    """Run ``cmd``; wall time and the peak RSS of each role in its process tree. Its output goes to
    files under bench/results/scale/logs (pipes read only at the end would fill with Spark's logging
    and block the job); the last JSON line of its stdout is the stage's own record."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stem = logs / "".join(ch if ch.isalnum() else "-" for ch in name)
    t0 = time.perf_counter()
    with open(stem.with_suffix(".out"), "w") as out_file, open(stem.with_suffix(".err"), "w") as err_file:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out_file, stderr=err_file, text=True)
        peaks = _sample(proc)
    wall = time.perf_counter() - t0
    out, err = stem.with_suffix(".out").read_text(), stem.with_suffix(".err").read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(cmd)} failed (rc {proc.returncode}):\n{err[-4000:]}")
    inner = {}
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            inner = json.loads(line)
            break
    print(f"  {name}: {wall:.1f} s, {rows:,} rows, peak RSS {', '.join(f'{k} {v:.0f} MB' for k, v in peaks.items())}",
          file=sys.stderr, flush=True)
    return Stage(name, rows, wall, peaks, inner)


# --- the stages run in their own process -----------------------------------------------------------

def stage_score(root: Path, days: list[str], model_file: Path) -> dict:
    from include.jobs.score import run as score_job
    from include.scoring import publish_predictions
    from include.spark import get_session
    from include.storage import partition_file

    model = pickle.loads(model_file.read_bytes())
    plans = [{"ds": d, "features": str(partition_file("features", "baseline", d, root)), "model": model.as_dict()}
             for d in days]
    staging = root / "_staging" / "bench-scale-scoring"
    shutil.rmtree(staging, ignore_errors=True)
    t0 = time.perf_counter()
    spark = get_session("bench-scale scoring")
    session_s = time.perf_counter() - t0
    try:
        summary = score_job(spark, plans, staging, {model.uri: model.scorer})
    finally:
        spark.stop()
    t1 = time.perf_counter()
    publish_predictions(staging, plans, root)
    return {"session_s": round(session_s, 1), "job_s": summary["seconds"],
            "publish_s": round(time.perf_counter() - t1, 1), "rows": sum(summary["rows_per_day"].values())}


def stage_monitor(root: Path, day: str, reference_file: Path, threshold: float, batch_rows: int) -> dict:
    import resource

    from include.drift import monitor
    from include.drift.config import load_monitoring_config

    reference = json.loads(reference_file.read_text())
    # the two registry reads of monitoring (the bench registers no model): the rest is the DAG's code
    monitor.load_reference = lambda run_id: reference
    monitor._version = lambda name, version: ({"auc_roc": 0.85, "average_precision": 0.5}, threshold)
    t0 = time.perf_counter()
    got = monitor.monitor_day(day, MODEL_NAME, load_monitoring_config(), root, size=batch_rows)
    report = json.loads(Path(got["report"]).with_name("report.json").read_text())
    return {"monitor_s": round(time.perf_counter() - t0, 1), "rows": report["rows"],
            "labelled": (report["performance"] or {}).get("n_labelled"), "drifted": len(report["drifted"]),
            "estimate": "none" if not report["estimate"] else report["estimate"].get("skipped") or "made",
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)}


# --- one scale ---------------------------------------------------------------------------------------

def rows_of(root: Path, zone: str, dataset: str, days: list[str]) -> int:
    import pyarrow.parquet as pq

    from include.storage import partition_file

    return sum(pq.ParquetFile(partition_file(zone, dataset, d, root)).metadata.num_rows for d in days)


def fit_reference(root: Path, day: str, out: Path) -> None:
    """The reference.json monitoring reads (include/training/train.py writes one per model version):
    bins and KS samples of day 0's model inputs and scores."""
    import pandas as pd

    from include.drift.reference import fit_distribution, fit_references
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS
    from include.scoring import PREDICTIONS
    from include.storage import partition_file

    features = pd.read_parquet(partition_file("features", "baseline", day, root), columns=MODEL_INPUTS)
    scores = pd.read_parquet(partition_file(*PREDICTIONS, day, root), columns=["score"])["score"]
    out.write_text(json.dumps({"features": fit_references(features, MODEL_INPUTS),
                               "score": fit_distribution(scores.to_numpy(dtype=float)).as_dict()}))


def run_scale(label: str, root: Path, model_file: Path, threshold: float, batch_rows: int, small_batch: int,
              backfill: bool) -> list[Stage]:
    """The stages of one scale; without ``backfill``, day 0's features and scores (which monitoring the last
    day needs: its reference, and the predictions its arriving labels are joined with) are set-up stages."""
    from include.features.pipeline import publish_staged_features

    record = json.loads((root / "simulated.json").read_text())
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(record["days"])]
    # the lake and a SQLite warehouse of this scale, whatever warehouse the shell names
    env = {**os.environ, "BATCHML_DATA_ROOT": str(root), "BATCHML_WAREHOUSE_URL": f"sqlite:///{root / 'warehouse.db'}"}
    stages = []
    print(f"{label}: {record['transactions']:,} transactions over {len(days)} days in {root}", file=sys.stderr)
    runs = ([("features backfill", days)] if backfill else [("set-up: features of day 0", days[:1])])
    for name, span in [*runs, ("features night", days[-1:])]:
        staging = root / "_staging" / "bench-scale-features"
        shutil.rmtree(staging, ignore_errors=True)
        stage = measured(name, rows_of(root, "raw", "transactions", span),
                         ["spark-submit", str(FEATURES_JOB), "--start", span[0], "--end", span[-1],
                          "--output", str(staging), "--root", str(root)], env)
        stage.inner = json.loads((staging / "_summary.json").read_text())
        publish_staged_features(staging, span[0], span[-1], root)
        stages.append(stage)
    me = [sys.executable, str(Path(__file__).resolve()), "--root", str(root), "--model", str(model_file)]
    runs = [("scoring backfill", days)] if backfill else [("set-up: scoring of day 0", days[:1])]
    for name, span in [*runs, ("scoring night", days[-1:])]:
        stages.append(measured(name, rows_of(root, "features", "baseline", span),
                               [*me, "--stage", "score", "--stage-days", *span], env))
    reference = root / "_bench_reference.json"
    fit_reference(root, days[0], reference)
    for size in (batch_rows, small_batch):
        stages.append(measured(f"monitoring night (batches of {size:,})", rows_of(root, "features", "baseline", days[-1:]),
                               [*me, "--stage", "monitor", "--stage-days", days[-1], "--reference", str(reference),
                                "--threshold", str(threshold), "--batch-rows", str(size)], env))
    return stages


# --- tables ------------------------------------------------------------------------------------------

def table(results: dict[str, list[Stage]]) -> str:
    lines = ["| scale | stage | rows | wall s | rows/s | µs/row | in-stage s | peak RSS task MB | "
             "peak RSS JVM MB | peak RSS workers MB | peak RSS tree MB |", "|---|---|" + "---:|" * 9]
    for label, stages in results.items():
        for s in stages:
            inner = s.inner.get("seconds") or s.inner.get("monitor_s") or (
                f"{s.inner['job_s']} job + {s.inner['publish_s']} publish" if "job_s" in s.inner else "")
            lines.append(f"| {label} | {s.name} | {s.rows:,} | {s.wall_s:.1f} | {s.rows / s.wall_s:,.0f} | "
                         f"{s.wall_s / s.rows * 1e6:.1f} | {inner} | {s.peak_mb.get('task', 0):,.0f} | "
                         f"{s.peak_mb.get('JVM', 0):,.0f} | {s.peak_mb.get('workers', 0):,.0f} | "
                         f"{s.peak_mb.get('tree', 0):,.0f} |")
    return "\n".join(lines)


def ratio_table(results: dict[str, list[Stage]]) -> str:
    (small, a), (big, b) = list(results.items())[:2]
    lines = [f"| stage | µs/row {small} | µs/row {big} | {big} / {small} | peak tree MB {small} | "
             f"peak tree MB {big} |", "|---|---:|---:|---:|---:|---:|"]
    theirs = {y.name: y for y in b}
    for x, y in ((x, theirs[x.name]) for x in a if x.name in theirs and not x.name.startswith("set-up")):
        cx, cy = x.wall_s / x.rows * 1e6, y.wall_s / y.rows * 1e6
        lines.append(f"| {x.name} | {cx:.1f} | {cy:.1f} | {cy / cx:.2f} | {x.peak_mb.get('tree', 0):,.0f} | "
                     f"{y.peak_mb.get('tree', 0):,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=8, help="simulated days (>= 8: the last gets day 0's labels)")
    p.add_argument("--hundred", choices=["tile", "simulate", "none"], default="tile")
    p.add_argument("--family", default="xgboost", help="the training.yaml model the scoring stage fits")
    p.add_argument("--batch-rows", type=int, default=None, help="monitoring batch (default: monitoring's)")
    p.add_argument("--small-batch", type=int, default=8_192)
    p.add_argument("--backfill", nargs="*", default=["10x"], metavar="SCALE",
                   help="scales whose features and scoring also run as a backfill of every day (default 10x)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="simulate again instead of reusing the cached days")
    # one stage in this process (what run_scale starts)
    p.add_argument("--stage", choices=["score", "monitor"], help=argparse.SUPPRESS)
    p.add_argument("--stage-days", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--threshold", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage == "score":
        print(json.dumps(stage_score(args.root, args.stage_days, args.model)))
        return 0
    if args.stage == "monitor":
        print(json.dumps(stage_monitor(args.root, args.stage_days[0], args.reference, args.threshold,
                                       args.batch_rows)))
        return 0
    if args.days < 8:
        p.error("--days must be >= 8: monitoring the last day needs the labels of day 0, which arrive on day 7")
    if shutil.which("spark-submit") is None:
        p.error("spark-submit is not on PATH: source scripts/airflow-env.sh first")

    from bench.bench_scoring import synthetic_model
    from include.drift.monitor import batch_rows

    batch = batch_rows(args.batch_rows)
    WORK.mkdir(parents=True, exist_ok=True)
    model = synthetic_model(args.family)
    model_file = WORK / "model.pkl"
    model_file.write_bytes(pickle.dumps(model))
    roots = {"10x": WORK / "x10" / "lake"}
    records = {"10x": simulated(roots["10x"], CUSTOMERS_10X, args.days, args.seed, args.fresh)}
    if args.hundred == "tile":
        roots["100x"] = WORK / "x100-tiled" / "lake"
        records["100x"] = tiled(roots["10x"], roots["100x"], 10, args.fresh)
    elif args.hundred == "simulate":
        roots["100x"] = WORK / "x100" / "lake"
        records["100x"] = simulated(roots["100x"], 10 * CUSTOMERS_10X, args.days, args.seed, args.fresh)
    results = {label: run_scale(label, root, model_file, model.threshold, batch, args.small_batch,
                                label in args.backfill) for label, root in roots.items()}

    import psutil

    print(f"\n## Stages of a night at scale ({os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}; model {args.family}; "
          f"monitoring batches of {batch:,} rows)\n")
    for label, r in records.items():
        how = (f"tiled {r['copies']}x from the 10x simulation (disjoint ids)" if "copies" in r else
               f"simulated: {r['customers']:,} customers, {r['terminals']:,} terminals, seed {r['seed']}, "
               f"{r.get('simulate_s', '?')} s to simulate")
        print(f"- {label}: {r['transactions']:,} transactions over {r['days']} days ({how})")
    print()
    print(table(results))
    if len(results) > 1:
        print("\n## Cost per row, 100x against 10x\n")
        print(ratio_table(results))
    for label, stages in results.items():
        for s in stages:
            if "monitor_s" in s.inner:
                print(f"\n{label} {s.name}: {json.dumps(s.inner)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

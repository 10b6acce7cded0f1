"""Cost and quality of each model family of the training DAG at default volume, on this machine.

For every family of include/pipelines/fraud/training.yaml (logistic baseline, XGBoost, LightGBM, PyTorch MLP),
``train_family`` runs in its own process exactly as the DAG's mapped task does: Optuna tuning over the
prequential folds (the configured trial and time budget, every trial tracked in MLflow), the final fit
on the evaluation block's training window, evaluation, plots and model logging. Reported per family:
wall seconds of tuning and of the final fit, the process's peak resident memory, and the metrics on the
evaluation window (known-compromised cards removed), with average precision relative to the logistic
baseline.

Set-up (not timed): a lake with features of at least 48 days before ``--as-of``. ``--root DIR`` reuses
one (the data root `make demo` leaves, for example); without it a default-scale history of ``--days``
days is simulated and its features built in one Spark application in a temporary folder. Each run of
the benchmark tracks into a fresh MLflow store in a temporary folder.

    source scripts/airflow-env.sh && python bench/bench_training.py --root data      # after make demo
    source scripts/airflow-env.sh && python bench/bench_training.py                  # simulate 60 days first
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_lake(root: Path, days: int) -> dt.date:
    from include.features.pipeline import publish_staged_features
    from include.jobs.build_features import run as build_features
    from include.pipelines.fraud.simulator import SimulatorConfig, simulate
    from include.pipelines.fraud.simulator.landing import write_raw_partitions
    from include.spark import get_session

    cfg = SimulatorConfig(n_days=days, start_date=dt.date(2026, 1, 1), seed=0)
    write_raw_partitions(simulate(cfg).transactions, root)
    spark = get_session("bench-training-features")
    try:
        build_features(spark, cfg.start_date, cfg.end_date, root / "_staging" / "bench", root)
    finally:
        spark.stop()
    publish_staged_features(root / "_staging" / "bench", cfg.start_date, cfg.end_date, root)
    return cfg.end_date


CHILD = """
import json, resource, sys, time
from include.training.config import load_training_config
from include.training.train import train_family
t0 = time.perf_counter()
s = train_family(sys.argv[1], sys.argv[2], load_training_config())
s["wall_seconds"] = time.perf_counter() - t0
s["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("SUMMARY " + json.dumps(s))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, help="an existing data root with features (default: simulate one)")
    p.add_argument("--as-of", type=dt.date.fromisoformat, help="default: the last day with features")
    p.add_argument("--days", type=int, default=60)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        root = args.root.resolve() if args.root else work / "lake"
        if args.root is None:
            print(f"set-up: simulating {args.days} days at default scale and building features ...", flush=True)
            last = build_lake(root, args.days)
        else:
            last = max(dt.date.fromisoformat(d.name[3:]) for d in (root / "features" / "baseline").glob("ds=*"))
        as_of = (args.as_of or last).isoformat()
        env = {**os.environ, "BATCHML_DATA_ROOT": str(root),
               "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}?timeout=60",
               "BATCHML_MLFLOW_ARTIFACTS": str(work / "artifacts"), "PYTHONPATH": str(REPO)}
        os.environ.update(env)
        from include.training.config import load_training_config
        from include.training.pipeline import prepare

        cfg = load_training_config()
        prepared = prepare(as_of, cfg)
        blocks = prepared["blocks"]["evaluation"]
        print(f"as of {as_of}: training window {blocks['train_rows']:,} rows ({blocks['train_frauds']:,} frauds), "
              f"evaluation {blocks['test_rows']:,} rows ({blocks['test_frauds']:,} frauds), "
              f"{len(prepared['blocks']) - 1} tuning folds; {os.cpu_count()} cores", flush=True)
        results = []
        for spec in cfg.models:
            out = subprocess.run([sys.executable, "-c", CHILD, spec.name, as_of], env=env, cwd=REPO,
                                 capture_output=True, text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("SUMMARY ")), None)
            if out.returncode or line is None:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            results.append(json.loads(line.removeprefix("SUMMARY ")))
            print(f"  {spec.name} done in {results[-1]['wall_seconds']:.0f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base_ap = next(r["metrics"]["average_precision"] for r in results if r["family"] == "logistic_regression")
    head = (f"| family | trials | tuning s | final fit s | total wall s | peak RSS MB | AUC ROC | AP | AP / baseline "
            f"| CP@{cfg.metrics.top_k} | Brier | threshold | precision | recall |")
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        m = r["metrics"]
        print(f"| {r['family']} | {r['trials']} | {r['tuning_seconds']:.1f} | {r['fit_seconds']:.1f} | "
              f"{r['wall_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {m['auc_roc']:.4f} | {m['average_precision']:.4f} | "
              f"{m['average_precision'] / base_ap:.2f} | {m['card_precision']:.4f} | {m['brier_score']:.4f} | "
              f"{r['threshold']:.4f} | {m['precision_at_threshold']:.3f} | {m['recall_at_threshold']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

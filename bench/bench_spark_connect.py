"""One nightly day's features and scoring through spark-submit and through a warm Spark Connect server,
side by side in one run: seconds per stage, as the Airflow task spends them.

Both paths run the project's operators exactly as the features and scoring DAGs do
(plugins/batchml/operators.py: SparkJobOperator for include/jobs/build_features.py,
BatchScoringOperator for include/jobs/score.py), once with a ``spark`` connection (``local[2]``:
spark-submit starts a JVM per task) and once with a ``spark_connect`` connection to a server
started here (tools.spark_connect; the job's ``main`` runs in this process on a session of it). The
Connect path runs ``--repeat`` times (default 2): the first run after the server's start pays its
Python workers' start and the jobs' imports, the next ones are what later nights cost. The server's
own start, paid once, is reported apart. The staged outputs of both paths are compared.

Data: the data root of a `make demo` run (``--root``, default ``data/``), read only: its raw
partitions, its newest feature day (``--day``) and the champion that scores it (bench/demo_lake.py);
everything is staged under bench/results/spark-connect/ (git-ignored).

    source scripts/airflow-env.sh && python bench/bench_spark_connect.py [--root data] [--day YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "results" / "spark-connect"
SUBMIT, CONNECT = "bench_spark_submit", "bench_spark_connect"


class _TI:
    """What the operators use of the task instance: XCom pushes, dropped here."""

    def xcom_push(self, key, value) -> None:
        pass


def _timed(op) -> float:
    context = {"ti": _TI(), "params": {}}
    began = time.perf_counter()
    op.execute(context)
    return time.perf_counter() - began


def _night(conn_id: str, root: Path, day: str, plans: Path, out: Path) -> dict[str, float]:
    """The night's two Spark tasks on ``conn_id``: seconds of each."""
    from batchml.operators import BatchScoringOperator, SparkJobOperator

    shutil.rmtree(out, ignore_errors=True)
    features = SparkJobOperator(task_id="build_features", conn_id=conn_id, name="build_features",
                                application=str(REPO / "include" / "jobs" / "build_features.py"),
                                application_args=["--start", day, "--end", day, "--output", str(out / "features"),
                                                  "--root", str(root)], error_output=str(out / "features"))
    scoring = BatchScoringOperator(task_id="score", conn_id=conn_id, plans=str(plans), staging=str(out / "scored"))
    return {"features": _timed(features), "scoring": _timed(scoring)}


def _same_outputs(a: Path, b: Path, day: str) -> bool:
    import pandas as pd

    def frame(folder: Path, drop=()):
        return (pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("*.parquet"))], ignore_index=True)
                .drop(columns=list(drop)).sort_values("transaction_id", ignore_index=True))

    pairs = [(f"features/ds={day}", ()), (f"scored/ds={day}", ("scored_at",)), (f"scored/reasons/ds={day}", ())]
    return all(frame(a / p, d).equals(frame(b / p, d)) for p, d in pairs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO / "data")
    p.add_argument("--day", help="the night's day (default: the newest feature day of the root)")
    p.add_argument("--repeat", type=int, default=2, help="Connect nights after the server's start")
    p.add_argument("--master", default="local[2]")
    args = p.parse_args()
    root = args.root.resolve()
    os.environ["BATCHML_DATA_ROOT"] = str(root)  # MLflow and the warehouse follow it
    from bench.demo_lake import demo_model, feature_days
    from tools.spark_connect import connect_server

    day = args.day or feature_days(root)[-1]
    model = demo_model(root)
    WORK.mkdir(parents=True, exist_ok=True)
    plans = WORK / "plans.json"
    plans.write_text(json.dumps([{"ds": day, "model": model.as_dict(),
                                  "features": str(root / "features" / "baseline" / f"ds={day}" / "data.parquet")}]))
    os.environ[f"AIRFLOW_CONN_{SUBMIT.upper()}"] = json.dumps({
        "conn_type": "spark", "host": args.master, "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"}})
    load = os.getloadavg()
    print(f"day {day} ({root}), model {model.name} v{model.version}; load average {load[0]:.1f} "
          f"on {os.cpu_count()} cores", flush=True)

    rows = {"spark-submit": _night(SUBMIT, root, day, plans, WORK / "submit")}
    began = time.perf_counter()
    with connect_server(WORK / "server.log", master=args.master) as server:
        started = time.perf_counter() - began
        host, port = server.url.removeprefix("sc://").split(":")
        os.environ[f"AIRFLOW_CONN_{CONNECT.upper()}"] = json.dumps({"conn_type": "spark_connect", "host": host,
                                                                    "port": int(port)})
        for i in range(args.repeat):
            label = "Connect, first night" if i == 0 else f"Connect, night {i + 1}"
            rows[label] = _night(CONNECT, root, day, plans, WORK / f"connect-{i}")
    same = all(_same_outputs(WORK / "submit", WORK / f"connect-{i}", day) for i in range(args.repeat))

    print(f"\nSpark Connect server start (once, not per night): {started:.1f} s")
    print(f"{'path':<24}{'features s':>12}{'scoring s':>12}{'night s':>10}")
    for label, secs in rows.items():
        print(f"{label:<24}{secs['features']:>12.1f}{secs['scoring']:>12.1f}{sum(secs.values()):>10.1f}")
    end_load = os.getloadavg()
    print(f"outputs equal (features, predictions, reasons; scored_at aside): {same}; "
          f"load average at the end {end_load[0]:.1f}")
    (WORK / "result.json").write_text(json.dumps({"day": day, "server_start_s": started, "rows": rows,
                                                  "same_outputs": same, "load": [load[0], end_load[0]]}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

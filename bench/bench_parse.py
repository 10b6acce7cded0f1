"""Parse time of the DAG files in dags/, against an empty DAG file.

What is measured: the time to execute each DAG file's module body (what the DAG processor does on
every parse), in a fresh Python process per run, with ``airflow.sdk`` imported *before* the clock
starts, so that the one-off cost of importing Airflow is measured on its own (the "Airflow import"
row) and not charged to the file. The reference is an empty DAG file (one ``@dag`` with no tasks,
written to a temporary folder): "over empty" is what a file costs beyond the minimum.

Each file is measured ``--runs`` times (default 5), round-robin over the files so that a change of
machine load spreads over all of them; the table gives the median and the minimum.

    source scripts/airflow-env.sh && python bench/bench_parse.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from include.config import REPO_ROOT

EMPTY_DAG = '''\
"""A DAG with no tasks: the least a DAG file can cost."""
import datetime as dt

from airflow.sdk import dag


@dag(dag_id="bench_empty", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), catchup=False)
def bench_empty():
    pass


bench_empty()
'''

# Run in a fresh interpreter: time the Airflow import, then the execution of the DAG file alone.
CHILD = '''\
import importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # noqa: F401
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_parsed_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
t2 = time.perf_counter()
spec.loader.exec_module(module)
t3 = time.perf_counter()
print(json.dumps({"airflow_import_ms": (t1 - t0) * 1e3, "exec_ms": (t3 - t2) * 1e3}))
'''


@dataclass
class Samples:
    label: str
    path: Path
    exec_ms: list[float] = field(default_factory=list)
    import_ms: list[float] = field(default_factory=list)


def measure_once(path: Path) -> tuple[float, float]:
    """(Airflow import ms, DAG file exec ms) of one fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"parsing {path} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["airflow_import_ms"], result["exec_ms"]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="fresh processes per file (default 5)")
    p.add_argument("--dags", type=Path, default=REPO_ROOT / "dags", help="folder of the DAG files")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")

    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        samples = [Samples("empty DAG (reference)", empty)]
        samples += [Samples(f"dags/{f.name}", f) for f in sorted(args.dags.glob("*.py")) if f.name != "__init__.py"]

        for i in range(args.runs):
            for s in samples:
                import_ms, exec_ms = measure_once(s.path)
                s.import_ms.append(import_ms)
                s.exec_ms.append(exec_ms)
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)

    all_imports = [ms for s in samples for ms in s.import_ms]
    reference = statistics.median(samples[0].exec_ms)
    rows = [
        [
            s.label,
            f"{statistics.median(s.exec_ms):.1f}",
            f"{min(s.exec_ms):.1f}",
            "—" if i == 0 else f"{statistics.median(s.exec_ms) - reference:+.1f}",
        ]
        for i, s in enumerate(samples)
    ]
    rows.append(
        [
            "`import airflow.sdk` (baseline, every process)",
            f"{statistics.median(all_imports):.1f}",
            f"{min(all_imports):.1f}",
            "—",
        ]
    )
    print(
        f"DAG file parse time: median of {args.runs} fresh processes per file "
        f"(Python {platform.python_version()}, {os.cpu_count()} CPUs)\n"
    )
    print(markdown_table(["file", "median ms", "min ms", "median over empty ms"], rows))
    print(
        f"\nThe Airflow import row pools the {len(all_imports)} processes; it is paid once per process "
        "and is not included in the file rows."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

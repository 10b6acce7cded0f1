"""Helpers of the fault, concurrency and unreachable-service tests: the writing steps run in child
processes exactly as the DAG tasks call them (killed with SIGKILL at an ``include.faults`` failpoint
or after a delay), and what a reader then sees of the lake, the warehouse and the registry."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, SMALL
from tests.training_config import small_config_dict

NAME = "fraud-detector"
TRAINED_AS_OF = (SMALL.end_date - dt.timedelta(days=3)).isoformat()  # the shared champion's as_of

# What the DAG tasks call, as child-process programs (arguments in sys.argv[1:]).
PUBLISH_FEATURES = """
import json, sys
from pathlib import Path
from include.features.pipeline import publish_staged_features
print(json.dumps(publish_staged_features(Path(sys.argv[1]), sys.argv[2], sys.argv[3])))
"""
PUBLISH_PREDICTIONS = """
import json, sys
from pathlib import Path
from include.scoring import publish_predictions
plans = json.loads(Path(sys.argv[1]).read_text())
print("READY", flush=True)  # imports done: a timed kill lands in the writing itself
print(json.dumps(publish_predictions(Path(sys.argv[2]), plans)))
"""
# prepare -> train_model (logistic) -> select_challenger -> gate -> promote, the training DAG's chain
TRAINING_CHAIN = """
import json, sys
from include.training import pipeline
from include.training.config import load_training_config
from include.training.train import train_family
cfg, as_of = load_training_config(), sys.argv[1]
pipeline.prepare(as_of, cfg)
decision = pipeline.run_gate(pipeline.select_challenger([train_family("logistic", as_of, cfg)], cfg), cfg)
print(json.dumps(pipeline.promote(decision, cfg) if decision["promote"] else decision))
"""


def child_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a task process on data root ``root``: no failpoint unless given in ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "BATCHML_FAILPOINT"}
    env.update(BATCHML_DATA_ROOT=str(root), PYTHONPATH=str(REPO),
               PYSPARK_PYTHON=str(REPO / ".venv" / "bin" / "python"),
               PYSPARK_SUBMIT_ARGS="--master local[1] pyspark-shell")
    env.update(extra)
    return env


def run_python(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """``python <args>`` in the repository (``-c CODE ...`` or ``-m module ...``)."""
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_ok(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = run_python(args, env, timeout)
    assert proc.returncode == 0, f"{args[:2]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def kill_at(point: str, args: list[str], env: dict[str, str], timeout: int = 300) -> None:
    """Run ``args`` with the failpoint ``point`` armed; it must die of SIGKILL there."""
    proc = run_python(args, {**env, "BATCHML_FAILPOINT": point}, timeout)
    assert proc.returncode == -signal.SIGKILL, (
        f"{point}: expected death by SIGKILL, got exit {proc.returncode}:\n{proc.stderr[-3000:]}")


def kill_after(args: list[str], env: dict[str, str], delay: float | None, ready: str = "READY") -> tuple[bool, float]:
    """Start ``args``, wait for the line ``ready`` on its stdout, SIGKILL it ``delay`` seconds later
    (None: let it finish). Returns whether the kill landed (False: the process had finished by itself,
    successfully) and the seconds from ``ready`` to its end."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == ready, f"child never got ready: {line!r} {proc.stderr.read()[-2000:]}"
        began = time.perf_counter()
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=120)
        elapsed = time.perf_counter() - began
        stderr = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert code in (0, -signal.SIGKILL), f"child failed by itself with exit {code}: {stderr[-2000:]}"
    return code == -signal.SIGKILL, elapsed


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logistic_config(tmp: Path) -> Path:
    """The small training configuration with the logistic family only (seconds to train)."""
    import yaml

    raw = small_config_dict()
    raw["models"] = [m for m in raw["models"] if m["name"] == "logistic"]
    path = tmp / "training.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def copy_zones(src: Path, dest: Path, zones: tuple[str, ...] = ("raw", "features")) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for zone in zones:
        shutil.copytree(src / zone, dest / zone)
    return dest


_CHAMPION: dict[str, Path] = {}


def champion_store(template: Path, tmp_path_factory) -> str:
    """The tracking URI of an MLflow store holding a champion (logistic, trained as of TRAINED_AS_OF
    on the session's feature lake), built once per session; tests only read it."""
    if "root" not in _CHAMPION:
        root = copy_zones(template, tmp_path_factory.mktemp("champion-lake"))
        with pytest.MonkeyPatch.context() as mp:
            for name in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_MLFLOW_ARTIFACTS"):
                mp.delenv(name, raising=False)
            mp.setenv("BATCHML_DATA_ROOT", str(root))
            mp.setenv("BATCHML_TRAINING_CONFIG", str(logistic_config(root)))
            run_ok(["-c", TRAINING_CHAIN, TRAINED_AS_OF], child_env(root))
        _CHAMPION["root"] = root
    from include.config import SQLITE_BUSY_TIMEOUT_S

    return f"sqlite:///{_CHAMPION['root'] / 'mlflow' / 'mlflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}"


# --- what a reader sees -----------------------------------------------------------------------

def read_partition(path: Path) -> pd.DataFrame:
    """A partition as a reader gets it, rows in a stable order."""
    return pd.read_parquet(path).sort_values("transaction_id", ignore_index=True)


def warehouse_frame(table: str, days: list[str]) -> pd.DataFrame:
    """The warehouse rows of ``table`` for ``days`` (the configured warehouse), in a stable order."""
    from sqlalchemy import select

    from include import warehouse

    t = warehouse.metadata.tables[table]
    with warehouse.engine().connect() as conn:
        rows = conn.execute(select(t).where(t.c.ds.in_([dt.date.fromisoformat(d) for d in days]))).mappings().all()
    keys = ["ds", "transaction_id"] if "transaction_id" in t.c else ["ds", "model_version"]
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(t.c.keys()))
    return frame.sort_values(keys, ignore_index=True)


def without(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    return frame.drop(columns=[c for c in columns if c in frame.columns])

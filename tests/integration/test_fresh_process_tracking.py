"""Code that runs in a fresh process (a scheduler's task, a spark-submit driver) must open the project's
tracking store itself: under ``dag.test()`` an earlier task of the same process had set it already,
which hid exactly this bug from every other test."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_the_reference_loads_in_a_process_that_set_nothing(data_root):
    import mlflow

    from include.training import tracking

    tracking.client()
    with mlflow.start_run() as run:
        mlflow.log_dict({"features": {}, "score": {"kind": "numeric"}}, "monitoring/reference.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    code = ("from include.drift.monitor import load_reference; "
            f"print(load_reference({run.info.run_id!r})['score']['kind'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=data_root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("numeric")
    assert not (data_root / "mlflow.db").exists() and not (REPO / "mlflow.db").exists()

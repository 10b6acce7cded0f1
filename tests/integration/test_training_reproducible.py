"""The same data gives the same champion, whatever the machine's load and thread settings.

Two training runs of the same day over the same feature partitions (real Spark features, every model
family, MLflow and the warehouse on sqlite), each in a fresh process: the first with OMP_NUM_THREADS=1,
the second with OMP_NUM_THREADS=4 (and the BLAS variables alike) while busy processes spin on every
core. The training code pins its own thread count (training.yaml ``threads``) and seeds, and the
tuning budget is a number of trials, so every metric, threshold, chosen hyperparameter, the
challenger and the gate's decision must be equal, to the last bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, SMALL
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]

AS_OF = SMALL.end_date.isoformat()
# what differs between two runs by nature: ids, paths and durations
VOLATILE = ("run_id", "model_uri", "tuning_seconds", "fit_seconds")

TRAIN = """
import json, sys
from include.training import pipeline, tracking
from include.training.config import load_training_config
from include.training.train import run_key, train_family

as_of = sys.argv[1]
cfg = load_training_config()
models = pipeline.prepare(as_of, cfg)["models"]
summaries = [train_family(m, as_of, cfg) for m in models]
challenger = pipeline.select_challenger(summaries, cfg)
decision = pipeline.run_gate(challenger, cfg)
experiment = tracking.ensure_experiment(cfg.experiment)
runs = {m: tracking.find_run(experiment, run_key(as_of, m)).data for m in models}
print("RESULT " + json.dumps({
    "summaries": summaries, "challenger": challenger["model"],
    "decision": {k: decision[k] for k in ("promote", "reason", "model")},
    "recorded": {m: {"tuning_capped": d.tags["batchml.tuning_capped"], "threads": d.params["threads"],
                     "trials": [d.params["tuning_trials_done"], d.params["tuning_trials_planned"]]}
                 for m, d in runs.items()},
}, sort_keys=True))
"""


def _train(root, config, threads_env: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL", "BATCHML_MLFLOW_ARTIFACTS")}
    env.update(BATCHML_DATA_ROOT=str(root), BATCHML_TRAINING_CONFIG=str(config), PYTHONPATH=str(REPO),
               **{v: threads_env for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    proc = subprocess.run([sys.executable, "-c", TRAIN, AS_OF], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _comparable(result: dict) -> dict:
    return {**result, "summaries": [{k: v for k, v in s.items() if k not in VOLATILE} for s in result["summaries"]]}


def test_same_data_same_champion_under_load_and_other_thread_settings(feature_lake_template, tmp_path):
    config = tmp_path / "training.yaml"
    config.write_text(yaml.safe_dump(small_config_dict()))
    roots = []
    for name in ("quiet", "busy"):
        root = tmp_path / name
        for zone in ("raw", "features"):
            shutil.copytree(feature_lake_template / zone, root / zone)
        roots.append(root)

    quiet = _train(roots[0], config, threads_env="1")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        busy = _train(roots[1], config, threads_env="4")
    finally:
        for p in spinners:
            p.kill()
            p.wait()

    assert len(quiet["summaries"]) == 5  # every family, the ensemble included
    for model, recorded in quiet["recorded"].items():  # every search ran its whole budget of trials
        assert recorded["tuning_capped"] == "false" and recorded["threads"] == "2", (model, recorded)
        assert recorded["trials"][0] == recorded["trials"][1], (model, recorded)
    # compared as JSON text: a NaN metric (undefined on a window) equals itself there
    assert json.dumps(_comparable(busy), sort_keys=True) == json.dumps(_comparable(quiet), sort_keys=True)
    # the figures compared are real ones: a model was chosen, and the gate decided on it
    assert quiet["decision"]["model"] == quiet["challenger"] and quiet["decision"]["reason"]
    assert all(s["metrics"]["average_precision"] > 0 for s in quiet["summaries"])

"""Parallel tasks validating into the same GX project (both ingest sources, backfill runs under the
LocalExecutor) must not read each other's half-written project files."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os

from include.pipelines.fraud.simulator.landing import write_landing_files, write_raw_partitions
from tests.conftest import SMALL

DAYS = [SMALL.start_date + dt.timedelta(days=i) for i in range(10, 12)]
ROUNDS = 6


def _validate(args: tuple[str, str, str]) -> str:
    root, dataset, day = args
    os.environ["BATCHML_DATA_ROOT"] = root
    from include.validation.datasets import validate_partitions

    try:
        for _ in range(ROUNDS):  # several rounds per process so that the runs overlap
            if not validate_partitions(dataset, [day])[0].success:
                return "failed check"
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the test reports any crash
        return f"{type(exc).__name__}: {exc}"


def test_parallel_checkpoints_on_one_project(data_root, small_sim):
    tx = small_sim.transactions
    write_landing_files(tx[tx["ds"] <= DAYS[-1]], data_root)
    write_raw_partitions(tx[tx["ds"] < DAYS[0]], data_root)  # what the checks compare against
    jobs = [(str(data_root), dataset, str(day)) for day in DAYS for dataset in ("raw_transactions", "raw_labels")]
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.map(_validate, jobs)
    assert results == ["ok"] * len(jobs), results

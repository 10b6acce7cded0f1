"""The GX project lock holds across machines when the warehouse is PostgreSQL: two processes with
different data roots (so no shared ``flock`` file, as on two Celery workers whose shared storage
does not carry ``flock``) still run their GX sections one at a time, through the advisory lock."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from tests.postgres import fresh_database

HOLD_S = 0.6


def _hold(args: tuple[str, str]) -> tuple[float, float]:
    root, url = args
    os.environ["BATCHML_DATA_ROOT"], os.environ["BATCHML_WAREHOUSE_URL"] = root, url
    from pathlib import Path

    from include.validation.checkpoints import gx_project_lock

    with gx_project_lock(Path(root)):
        began = time.monotonic()
        time.sleep(HOLD_S)
        return began, time.monotonic()


def test_the_gx_lock_serialises_machines_sharing_a_postgresql_warehouse(tmp_path):
    with fresh_database("batchml_gx_lock") as url:
        jobs = [(str(tmp_path / f"machine-{i}"), url) for i in range(3)]
        with mp.get_context("spawn").Pool(3) as pool:
            spans = sorted(pool.map(_hold, jobs))
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two GX sections overlapped across data roots: {spans}"
    # each root has its own flock file: only the advisory lock made them wait
    assert all((tmp_path / f"machine-{i}" / "gx" / ".lock").exists() for i in range(3))

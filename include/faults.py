"""Named kill points for the fault-injection tests (tests/integration/test_faults.py).

``failpoint(name)`` kills the calling process with SIGKILL, as an OOM killer or a lost worker would,
when the environment variable ``BATCHML_FAILPOINT`` equals ``name``; otherwise it does nothing but one
environment lookup. The writing steps call it at the points where a crash leaves the most to clean
up (staged but unpublished, half a range published, a database transaction not yet committed, a
registry alias moved before its warehouse row), so a test can crash them exactly there and check
what a reader sees and what a rerun makes of it.

| name | where |
|---|---|
| ``features.staged`` | build_features job: Spark wrote the staged days, before its summary |
| ``features.publish.partition`` | features publish: after the first day is renamed into place |
| ``features.publish.done`` | features publish: every day in place, before the publication record |
| ``scoring.staged`` | score job: every day staged, before its summary |
| ``scoring.warehouse.before_commit`` | a day's predictions inserted, its transaction not committed |
| ``scoring.warehouse.committed`` | a day's warehouse rows committed, its file not yet renamed |
| ``scoring.publish.partition`` | scoring publish: after the first day is in the warehouse and the lake |
| ``scoring.publish.done`` | scoring publish: every day in place, before the publication record |
| ``training.run_logged`` | train_family: the MLflow run finished, before the task returns |
| ``registry.version_created`` | select_challenger: version registered, challenger alias not set |
| ``registry.challenger_set`` | select_challenger: challenger alias set, model card not written |
| ``gate.half_recorded`` | run_gate: the MLflow gate tags written, the promotions row not |
| ``promote.champion_set`` | promote: champion alias moved, promotions row not marked promoted |
| ``shadow.outcome_tagged`` | review_shadow: the outcome tagged on the shadow version, nothing moved yet |
| ``shadow.champion_set`` | review_shadow: champion alias moved on shadow evidence, promotions row not written |
| ``monitoring.warehouse.before_commit`` | monitor_day: drift rows and alerts inserted, not committed |
| ``monitoring.report.pending`` | monitor_day: the day's warehouse rows committed, its report not rewritten |
| ``staging.receipt_written`` | features or scoring publish: the receipt written, the staging not yet deleted |
"""

from __future__ import annotations

import os
import signal

ENV = "BATCHML_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process when ``BATCHML_FAILPOINT`` names this point (tests only; unset in production)."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

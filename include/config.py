"""Where things live, chosen by environment, never by editing code.

Only the standard library is imported here: DAG files use this at parse time.

| variable | default | meaning |
|---|---|---|
| BATCHML_DATA_ROOT | <repo>/data | the data lake root (landing, raw, features, quarantine, staging, gx) |
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Labels of day D are known on day D + LABEL_DELAY_DAYS (shared/SIMULATOR.md).
LABEL_DELAY_DAYS = 7


def data_root() -> Path:
    """Root folder of the data lake."""
    return Path(os.environ.get("BATCHML_DATA_ROOT", REPO_ROOT / "data")).resolve()

"""Publishing validated landing files as raw partitions (the ingest DAG's last step)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from include.config import data_root
from include.storage import as_date, file_sha256, landing_file, partition_file, write_parquet_atomic

log = logging.getLogger(__name__)

SOURCES = ("transactions", "labels")


def publish_landing(source: str, ds: str | dt.date, validated_sha256: str, root: Path | None = None) -> dict[str, Any]:
    """Copy the validated landing file of ``ds`` to ``raw/<source>/ds=<ds>/`` atomically.

    ``validated_sha256`` is the checksum the checkpoint saw: if the file changed since, nothing is
    published (the new file has not been validated).
    """
    import pandas as pd

    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    root = root or data_root()
    src = landing_file(source, ds, root)
    actual = file_sha256(src)
    if actual != validated_sha256:
        raise RuntimeError(
            f"{src} changed after validation (sha256 {actual[:12]} != validated {validated_sha256[:12]}); "
            "rerun the validation task"
        )
    frame = pd.read_parquet(src)
    if "tx_datetime" in frame:
        frame["tx_datetime"] = pd.to_datetime(frame["tx_datetime"], utc=True).astype("datetime64[us, UTC]")
    dest = write_parquet_atomic(frame, partition_file("raw", source, as_date(ds), root))
    log.info("published %d %s rows to %s", len(frame), source, dest)
    return {"source": source, "ds": str(as_date(ds)), "path": str(dest), "rows": len(frame)}

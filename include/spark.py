"""One place that configures Spark sessions, for spark-submit jobs and tests alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Settings every job relies on: UTC day boundaries, parquet timestamps that pandas and pyarrow read
# as-is, and few shuffle partitions (the default 200 dominates the runtime of day-sized jobs).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def get_session(app_name: str, master: str | None = None) -> SparkSession:
    """The session of a job: under spark-submit the master comes from the submit command."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()

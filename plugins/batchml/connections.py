"""Checks that the Airflow connections a DAG needs exist, before its first task does any work."""

from __future__ import annotations


def require_connection(conn_id: str, needed_by: str) -> None:
    """Fail without retry, naming the connection, when ``conn_id`` is not defined.

    The Spark provider's hook does not fail on a missing connection: it falls back to ``--master
    yarn`` and spark-submit then fails on a missing Hadoop configuration, far from the cause."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise AirflowFailException(
            f"Airflow connection {conn_id!r} is not defined; {needed_by} needs it. Define it (airflow_settings.yaml "
            f"and `make airflow-home`, the UI, or AIRFLOW_CONN_{conn_id.upper()}), then clear this task"
        ) from None

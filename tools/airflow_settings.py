"""Apply airflow_settings.yaml (Astro CLI format) to the Airflow metadata database, idempotently.

    python -m tools.airflow_settings [airflow_settings.yaml]

Connections, pools and variables listed in the file are created or updated; nothing else is touched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from include.config import REPO_ROOT


def load_settings(path: Path) -> dict[str, list[dict[str, Any]]]:
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    section = doc.get("airflow") or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: 'airflow' must be a mapping with connections, pools and variables")
    return {key: section.get(key) or [] for key in ("connections", "pools", "variables")}


def apply_settings(path: Path) -> dict[str, int]:
    # The metadata-database models (what `airflow connections import` uses), not the task SDK's:
    # this is an admin step run before the scheduler starts.
    from airflow.models import Connection, Pool, Variable  # noqa: AIR311
    from airflow.utils.session import create_session
    from sqlalchemy import select

    settings = load_settings(path)
    with create_session() as session:
        for item in settings["connections"]:
            conn_id = item["conn_id"]
            extra = item.get("conn_extra")
            fields = {
                "conn_type": item["conn_type"],
                "host": item.get("conn_host"),
                "schema": item.get("conn_schema"),
                "login": item.get("conn_login"),
                "password": item.get("conn_password"),
                "port": item.get("conn_port"),
                "extra": json.dumps(extra) if isinstance(extra, dict) else extra,
            }
            conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))  # noqa: AIR311
            if conn is None:
                session.add(Connection(conn_id=conn_id, **fields))  # noqa: AIR311
            else:
                for key, value in fields.items():
                    setattr(conn, key, value)
        for item in settings["pools"]:
            Pool.create_or_update_pool(
                name=item["pool_name"],
                slots=int(item["pool_slot"]),
                description=item.get("pool_description", ""),
                include_deferred=bool(item.get("include_deferred", False)),
                session=session,
            )
    for item in settings["variables"]:
        Variable.set(item["variable_name"], item["variable_value"])  # noqa: AIR311
    return {key: len(value) for key, value in settings.items()}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else REPO_ROOT / "airflow_settings.yaml"
    counts = apply_settings(path)
    print(f"applied {path.name}: {counts['connections']} connections, {counts['pools']} pools, "
          f"{counts['variables']} variables")


if __name__ == "__main__":
    main()

"""airflow_settings.yaml is applied to the real metadata database, idempotently."""

from __future__ import annotations

from include.config import REPO_ROOT
from tools.airflow_settings import apply_settings, load_settings

SETTINGS = REPO_ROOT / "airflow_settings.yaml"


def test_settings_file_is_astro_format():
    settings = load_settings(SETTINGS)
    assert {c["conn_id"] for c in settings["connections"]} >= {"spark_default"}
    assert {p["pool_name"] for p in settings["pools"]} >= {"spark"}


def test_apply_twice_gives_the_same_state():
    from airflow.models import Connection, Pool, Variable  # noqa: AIR311 - metadata DB models
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    first = apply_settings(SETTINGS)
    second = apply_settings(SETTINGS)
    assert first == second
    with create_session() as session:
        conns = session.scalars(select(Connection).where(Connection.conn_id == "spark_default")).all()  # noqa: AIR311
        assert len(conns) == 1 and conns[0].host == "local[*]"
        assert conns[0].extra_dejson["deploy-mode"] == "client"
        assert session.scalar(select(func.count()).select_from(Pool).where(Pool.pool == "spark")) == 1
        assert Pool.get_pool("spark", session=session).slots == 1
    assert Variable.get("batchml_min_daily_transactions") == "100"  # noqa: AIR311

"""The warehouse: small relational tables the pipelines write through SQLAlchemy (SQLite by
default, PostgreSQL in production; the URL comes from include.config.warehouse_url).

Every write replaces the rows of its key in one transaction (delete + insert), so a rerun never
duplicates rows. Statements always use bound parameters.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Engine

from include.config import warehouse_url

metadata = MetaData()

# One row per training run's gate decision; ``promoted`` turns true once the champion alias moved.
promotions = Table(
    "promotions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(200), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("challenger_version", String(20), nullable=False),
    Column("challenger_run_id", String(64), nullable=False),
    Column("champion_version", String(20)),  # the champion when the gate decided (None: first model)
    Column("decision", String(20), nullable=False),  # promote | reject | rollback
    Column("promoted", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False),
    Column("primary_metric", String(50), nullable=False),
    Column("challenger_value", Float),
    Column("champion_value", Float),
    Column("metrics_json", Text),
    Column("dag_run_id", String(250)),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("promoted_at", DateTime(timezone=True)),
)


@functools.cache
def _engine(url: str) -> Engine:
    eng = create_engine(url, pool_pre_ping=True)
    metadata.create_all(eng)
    return eng


def engine() -> Engine:
    return _engine(warehouse_url())


def record_decision(row: dict[str, Any]) -> None:
    """Replace the gate decision of (model_name, as_of) with ``row`` in one transaction.

    Rollbacks are events, not decisions of a training run: they are appended and never replaced.
    """
    row = {**row, "decided_at": row.get("decided_at") or dt.datetime.now(dt.UTC)}
    with engine().begin() as conn:
        if row["decision"] != "rollback":
            conn.execute(delete(promotions).where(promotions.c.model_name == row["model_name"],
                                                  promotions.c.as_of == row["as_of"],
                                                  promotions.c.decision != "rollback"))
        conn.execute(promotions.insert().values(**row))


def mark_promoted(model_name: str, as_of: dt.date, version: str) -> None:
    with engine().begin() as conn:
        conn.execute(update(promotions).where(promotions.c.model_name == model_name, promotions.c.as_of == as_of,
                                              promotions.c.challenger_version == version,
                                              promotions.c.decision == "promote")
                     .values(promoted=True, promoted_at=dt.datetime.now(dt.UTC)))


def decision_for(model_name: str, as_of: dt.date) -> dict[str, Any] | None:
    with engine().connect() as conn:
        row = conn.execute(select(promotions).where(promotions.c.model_name == model_name,
                                                    promotions.c.as_of == as_of,
                                                    promotions.c.decision != "rollback")).mappings().first()
    return dict(row) if row else None


def promotion_history(model_name: str) -> list[dict[str, Any]]:
    with engine().connect() as conn:
        rows = conn.execute(select(promotions).where(promotions.c.model_name == model_name)
                            .order_by(promotions.c.decided_at)).mappings().all()
    return [dict(r) for r in rows]

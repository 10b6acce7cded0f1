"""The warehouse: small relational tables the pipelines write through SQLAlchemy (SQLite by
default, PostgreSQL in production; the URL comes from include.config.warehouse_url).

It is a serving copy (docs/operations.md): the lake and the registry are the sources of truth of
what it holds, except the data-quality rows and the task-failure alerts, which live only here. A
lost warehouse, or one restored from an older copy, is rebuilt from them:

    python -m include.warehouse rebuild      # predictions, drift, alerts, live performance, promotions

Every write replaces the rows of its key in one transaction (delete + insert), so a rerun never
duplicates rows; on PostgreSQL the transaction first takes an advisory lock on its key, so that two
runs replacing the same key at once queue instead of colliding (under READ COMMITTED the second
delete would not see the first one's new rows, and its insert would break the unique key). A
warehouse that cannot be reached raises :class:`WarehouseUnavailable` (retryable), naming the URL
without its credentials. Statements always use bound parameters.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

from include import scoring
from include.config import warehouse_url
from include.faults import failpoint

log = logging.getLogger(__name__)

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


def _predictions_table(name: str) -> Table:
    """One row per scored transaction, with the lineage of the model that scored it."""
    return Table(
        name, metadata,
        Column("ds", Date, nullable=False, index=True),
        Column("transaction_id", BigInteger, nullable=False),
        Column("customer_id", BigInteger, nullable=False),
        Column("terminal_id", BigInteger, nullable=False),
        Column("tx_datetime", DateTime, nullable=False),
        Column("score", Float, nullable=False),
        Column("flagged", Boolean, nullable=False),
        Column("model_name", String(200), nullable=False),
        Column("model_version", String(20), nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("threshold", Float, nullable=False),
        Column("scored_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("ds", "transaction_id", name=f"uq_{name}_ds_transaction"),
    )


# The champion's predictions: the decision.
predictions = _predictions_table("predictions")
# The shadow version's scores of the same days (include.scoring.SHADOW_TARGET; docs/shadow.md): no
# consumer reads them as the decision. No summary rows, no reasons.
shadow_predictions = _predictions_table("shadow_predictions")
PREDICTION_TABLES = {t.name: t for t in (predictions, shadow_predictions)}


# The reasons of each flagged prediction (include.training.explain; docs/reasons.md): its ``rank`` 1..3
# features that pushed its log-odds of fraud up the most, with the input ``value`` and the
# ``contribution`` (log-odds). Written by replace_predictions in the predictions' transaction (a day's
# reasons are always those of its predictions); rows not flagged have none.
prediction_reasons = Table(
    "prediction_reasons", metadata,
    Column("ds", Date, nullable=False),
    Column("transaction_id", BigInteger, nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("feature", String(200), nullable=False),
    Column("value", Float, nullable=False),
    Column("contribution", Float, nullable=False),
    UniqueConstraint("ds", "transaction_id", "rank", name="uq_prediction_reasons_ds_transaction_rank"),
)


# One row per scored day and model version: what the day's predictions add up to (rows, flagged rows,
# mean score, and the predictions in each of SCORE_BINS equal bins of [0, 1]), written by
# replace_predictions in the transaction that writes the predictions, so that the ML monitor reads one
# row a day instead of scanning the predictions. Bin ``i`` holds ``i/SCORE_BINS <= score <
# (i+1)/SCORE_BINS``; the last one also 1.0 (and, like the first, anything out of [0, 1]).
SCORE_BINS = 10
prediction_days = Table(
    "prediction_days", metadata,
    Column("ds", Date, nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("flagged", BigInteger, nullable=False),
    Column("mean_score", Float, nullable=False),
    *(Column(f"bin_{i}", BigInteger, nullable=False) for i in range(SCORE_BINS)),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("ds", "model_name", "model_version", name="uq_prediction_days_ds_model"),
)
BIN_COLUMNS = [f"bin_{i}" for i in range(SCORE_BINS)]


# Per day and monitored column (every model feature and the score): PSI and KS against the reference
# distributions of the model version that scored the day.
drift_metrics = Table(
    "drift_metrics", metadata,
    Column("ds", Date, nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),
    Column("column_name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("psi", Float),
    Column("psi_level", String(10), nullable=False),
    Column("ks_statistic", Float),
    Column("ks_p_value", Float),
    Column("drifted", Boolean, nullable=False),
    UniqueConstraint("ds", "model_name", "column_name", name="uq_drift_ds_model_column"),
)

# Alerts raised by monitoring; ``triggered_training`` tells which one emitted the drift_alert Asset.
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ds", Date, nullable=False, index=True),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(20), nullable=False),
    Column("kind", String(20), nullable=False),  # drift | performance
    Column("message", Text, nullable=False),
    Column("triggered_training", Boolean, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)


# Live performance of a model, one row per label-arrival day ``ds``, model and ``role`` (champion; a
# shadow model would add its own rows): the realised figures on the labels arriving that day (of the
# transactions scored on ``scored_day`` = ds - the label delay), and the CBPE estimate made from the
# scores alone when that day was scored (include.drift.performance), with the estimate's error once both
# are there (``err_*`` = estimate - realised). ``estimated`` is true while the labels have not arrived:
# the row holds the estimate only. Monitoring writes the realised half of today's row and the estimate
# half of the row its labels will arrive on, each replacing its own columns (replace_monitoring_day);
# ``reference_json`` holds the version's offline evaluation figures (its ``metrics`` tag).
PERFORMANCE_FIGURES = ("precision_at_threshold", "recall_at_threshold", "auc_roc", "average_precision",
                       "expected_cost", "expected_frauds")  # include.drift.performance.ESTIMATED
REALISED_COLUMNS = ("n_labelled", "n_frauds", "auc_roc", "average_precision", "card_precision",
                    "precision_at_threshold", "recall_at_threshold", "expected_cost", "alerts", "verdict")
ESTIMATE_COLUMNS = ("n_scored", "calibration", "estimate_note", *(f"est_{k}" for k in PERFORMANCE_FIGURES))
performance_days = Table(
    "performance_days", metadata,
    Column("ds", Date, nullable=False),  # the day the labels arrive (arrived)
    Column("scored_day", Date, nullable=False),  # the day the transactions were scored
    Column("model_name", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # champion | shadow
    Column("model_version", String(20), nullable=False),
    Column("threshold", Float),
    Column("estimated", Boolean, nullable=False),  # no labels yet: only the estimate
    # realised, on the arrived labels
    Column("n_labelled", BigInteger), Column("n_frauds", BigInteger), Column("auc_roc", Float),
    Column("average_precision", Float), Column("card_precision", Float), Column("precision_at_threshold", Float),
    Column("recall_at_threshold", Float), Column("expected_cost", Float), Column("alerts", Text),
    Column("verdict", Text), Column("realised_at", DateTime(timezone=True)),
    # estimated from the scores (CBPE) on the scoring day
    Column("n_scored", BigInteger), Column("calibration", Text), Column("estimate_note", Text),
    *(Column(f"est_{k}", Float) for k in PERFORMANCE_FIGURES), Column("estimated_at", DateTime(timezone=True)),
    *(Column(f"err_{k}", Float) for k in PERFORMANCE_FIGURES),  # estimate - realised
    Column("reference_json", Text),
    UniqueConstraint("ds", "model_name", "role", name="uq_performance_days_ds_model_role"),
    Index("ix_performance_days_model_scored", "model_name", "scored_day"),
)


_ENGINES: dict[str, Engine] = {}


class WarehouseUnavailable(ConnectionError):
    """The warehouse database cannot be reached (connection refused, dropped, unknown host): retryable."""


def _engine(url: str) -> Engine:
    """One engine (and connection pool) per URL; the tables are created on first use."""
    if url not in _ENGINES:
        eng = create_engine(url, pool_pre_ping=True)
        where = make_url(url)._replace(username=None, password=None).render_as_string(hide_password=False)  # no credentials

        @event.listens_for(eng, "handle_error")
        def _unreachable(ctx) -> None:
            # no connection yet (refused, unknown host) or one that dropped: name the service and
            # where it was looked for, never the password
            if ctx.connection is None or ctx.is_disconnect:
                raise WarehouseUnavailable(f"warehouse unreachable at {where} (BATCHML_WAREHOUSE_URL): "
                                           f"{' '.join(str(ctx.original_exception).split())}") \
                    from ctx.original_exception

        with eng.begin() as conn:
            # processes starting together on a fresh database must not race to create the tables
            _lock(conn, "create tables")
            metadata.create_all(conn)
        _ENGINES[url] = eng
    return _ENGINES[url]


def _lock(conn, *key: Any) -> None:
    """Serialise the transactions of ``conn`` that write ``key`` (PostgreSQL; SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(":".join(map(str, key))))))


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (before a database is dropped)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def engine() -> Engine:
    return _engine(warehouse_url())


def record_decision(row: dict[str, Any]) -> None:
    """Replace the gate decision of (model_name, as_of) with ``row`` in one transaction.

    Rollbacks are events, not decisions of a training run: they are appended and never replaced.
    """
    row = {**row, "decided_at": row.get("decided_at") or dt.datetime.now(dt.UTC)}
    with engine().begin() as conn:
        _lock(conn, "promotions", row["model_name"], row["as_of"])
        if row["decision"] != "rollback":
            conn.execute(delete(promotions).where(promotions.c.model_name == row["model_name"],
                                                  promotions.c.as_of == row["as_of"],
                                                  promotions.c.decision != "rollback"))
        conn.execute(promotions.insert().values(**row))


def mark_promoted(model_name: str, as_of: dt.date, version: str) -> None:
    """Mark the decision promoted, once: a rerun keeps the time of the first promotion, so a replayed
    promotion never counts as recorded after a rollback (:func:`champion_timeline`)."""
    with engine().begin() as conn:
        conn.execute(update(promotions).where(promotions.c.model_name == model_name, promotions.c.as_of == as_of,
                                              promotions.c.challenger_version == version,
                                              promotions.c.decision == "promote", promotions.c.promoted.is_(False))
                     .values(promoted=True, promoted_at=dt.datetime.now(dt.UTC)))


def decision_for(model_name: str, as_of: dt.date) -> dict[str, Any] | None:
    with engine().connect() as conn:
        row = conn.execute(select(promotions).where(promotions.c.model_name == model_name,
                                                    promotions.c.as_of == as_of,
                                                    promotions.c.decision != "rollback")).mappings().first()
    return dict(row) if row else None


def _dicts(result) -> list[dict[str, Any]]:
    """A query's rows as plain dicts, faster than ``dict(row)`` over ``.mappings()`` (the ML monitor's year
    of drift rows)."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def promotion_history(model_name: str) -> list[dict[str, Any]]:
    with engine().connect() as conn:
        return _dicts(conn.execute(select(promotions).where(promotions.c.model_name == model_name)
                                   .order_by(promotions.c.decided_at)))


def reconcile_promotions(model_name: str) -> list[dict[str, Any]]:
    """Insert the promotions and rollbacks the registry records (include.registry.champion_history)
    and the ``promotions`` table lacks (a warehouse lost, or restored from an older copy), in one
    transaction, with a WARNING naming each; a decision row still marked not promoted whose promotion
    the registry records is marked (the time from the registry). Returns the rows rebuilt; none when
    the table already agrees with the registry. The registry unreachable raises its own error."""
    from include import registry

    events = registry.champion_history(model_name)
    if not events:
        return []
    rebuilt = []
    with engine().begin() as conn:
        _lock(conn, "promotions", model_name)
        rows = conn.execute(select(promotions).where(promotions.c.model_name == model_name)).mappings().all()
        for event in events:
            same = [r for r in rows if r["decision"] == event["decision"] and _day(r["as_of"]) == event["as_of"]
                    and str(r["challenger_version"]) == event["challenger_version"]
                    and (event["decision"] == "promote" or str(r["champion_version"]) == event["champion_version"])]
            if any(r["promoted"] for r in same):
                continue
            if same:  # the decision is there, its promotion is not: the copy predates the alias move
                conn.execute(update(promotions).where(promotions.c.id == same[0]["id"])
                             .values(promoted=True, promoted_at=event["promoted_at"]))
            else:
                if event["decision"] == "promote":  # the registry's decision replaces the day's other one
                    conn.execute(delete(promotions).where(promotions.c.model_name == model_name,
                                                          promotions.c.as_of == event["as_of"],
                                                          promotions.c.decision != "rollback"))
                conn.execute(promotions.insert().values(**event))
            rebuilt.append(event)
    if rebuilt:
        log.warning("promotions of %s: the warehouse lacked %d event(s) the registry records; %s: %s", model_name,
                    len(rebuilt), registry.REBUILT, "; ".join(
                        f"{e['decision']} as of {e['as_of']} (version {e['challenger_version']}"
                        + (f", from version {e['champion_version']})" if e["decision"] == "rollback" else ")")
                        for e in rebuilt))
    return rebuilt


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def champion_timeline(model_name: str) -> list[dict[str, Any]]:
    """Who scores which days, from the promotions table: ``{"from", "version", "recorded", "decision"}``
    per promotion or rollback, oldest recorded first, rollbacks applied (the runbook of the scoring DAG
    says the same in words):

    - a promotion as of D takes over from D + 1 (a training run as of D runs after D was scored);
    - a rollback (``as_of`` = the day it was done) takes over from that day, tonight's scoring
      included, and withdraws the version it rolled back: every entry recorded before it that named
      that version names the restored one instead, so the withdrawn version's days are rescored with
      the restored version, and days before its promotion keep their champion;
    - an entry recorded later governs its days over every entry recorded before it: a rollback stands
      until a promotion recorded after it (a training that decided on new evidence through the gate)
      takes over from its own day. The order is that of the alias moves (``promoted_at``), so the
      champion of the days to come is the registry's ``champion`` alias.

    The registry is the source of truth of these events: what the table lacks of them is rebuilt
    first (:func:`reconcile_promotions`), so a lost or older warehouse gives the same timeline.
    """
    reconcile_promotions(model_name)
    with engine().connect() as conn:
        rows = conn.execute(select(promotions).where(promotions.c.model_name == model_name,
                                                     promotions.c.promoted.is_(True))).mappings().all()
    timeline: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (_aware(r["promoted_at"] or r["decided_at"]), r["id"])):
        day = row["as_of"] if isinstance(row["as_of"], dt.date) else dt.date.fromisoformat(str(row["as_of"]))
        entry = {"version": str(row["challenger_version"]), "recorded": _aware(row["promoted_at"] or row["decided_at"]),
                 "decision": row["decision"]}
        if row["decision"] == "rollback":
            withdrawn = str(row["champion_version"])
            for earlier in timeline:
                if earlier["version"] == withdrawn:
                    earlier["version"] = entry["version"]
            timeline.append({"from": day, **entry})
        else:
            timeline.append({"from": day + dt.timedelta(days=1), **entry})
    return timeline


def _aware(value: dt.datetime) -> dt.datetime:
    """A stored time as an aware UTC datetime (SQLite returns them naive)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def champion_version_on(model_name: str, day: dt.date, timeline: list[dict[str, Any]] | None = None) -> str | None:
    """The version that scores ``day`` (:func:`champion_timeline`, read unless ``timeline`` is given: a
    backfill reads it once for all its days): of the promotions and rollbacks that govern ``day``
    (taking over on or before it), the one recorded last; None when there is none."""
    timeline = champion_timeline(model_name) if timeline is None else timeline
    governing = [e for e in timeline if e["from"] <= day]
    return governing[-1]["version"] if governing else None


def first_promotion(model_name: str) -> dt.date | None:
    """The as_of of the first promotion (or rollback) of ``model_name``; None without any. Read after
    :func:`champion_timeline` or :func:`reconcile_promotions` (which rebuild what the table lacks of
    the registry's events), not on its own: a scoring plan asks it for every day before the first
    champion, and reads the registry once."""
    with engine().connect() as conn:
        first = conn.execute(select(func.min(promotions.c.as_of)).where(
            promotions.c.model_name == model_name, promotions.c.promoted.is_(True))).scalar()
    return first if first is None or isinstance(first, dt.date) else dt.date.fromisoformat(str(first))


def replace_predictions(day: dt.date, frame, reasons=None, table: str = "predictions") -> int:
    """Delete the day's predictions and insert ``frame``, and replace the day's ``prediction_days``
    rows with the summary of ``frame`` and its ``prediction_reasons`` with ``reasons`` (a frame of
    include.scoring.REASON_COLUMNS; None: the day has none), in one transaction: a rerun never
    duplicates, and a reader never sees predictions without their summary or their reasons.
    ``table="shadow_predictions"``: the shadow's rows of the day only (no summary, no reasons)."""
    if table not in PREDICTION_TABLES:
        raise ValueError(f"replace_predictions: no predictions table {table!r}; known: {sorted(PREDICTION_TABLES)}")
    target = PREDICTION_TABLES[table]
    champion = target is predictions
    if reasons is not None and not champion:
        raise ValueError(f"replace_predictions: table {table!r} keeps no reasons")
    records = [{
        "ds": day, "transaction_id": int(r.transaction_id), "customer_id": int(r.customer_id),
        "terminal_id": int(r.terminal_id), "tx_datetime": r.tx_datetime.to_pydatetime().replace(tzinfo=None),
        "score": float(r.score), "flagged": bool(r.flagged), "model_name": r.model_name,
        "model_version": str(r.model_version), "run_id": r.run_id, "threshold": float(r.threshold),
        "scored_at": r.scored_at.to_pydatetime(),
    } for r in frame.itertuples(index=False)]
    summary = _day_summary(day, frame) if champion else []
    why = [] if reasons is None else [{
        "ds": day, "transaction_id": int(r.transaction_id), "model_name": r.model_name,
        "model_version": str(r.model_version), "rank": int(r.rank), "feature": r.feature, "value": float(r.value),
        "contribution": float(r.contribution)} for r in reasons.itertuples(index=False)]
    with engine().begin() as conn:
        _lock(conn, table, day)
        conn.execute(delete(target).where(target.c.ds == day))
        if champion:
            conn.execute(delete(prediction_days).where(prediction_days.c.ds == day))
            conn.execute(delete(prediction_reasons).where(prediction_reasons.c.ds == day))
        if records:
            conn.execute(target.insert(), records)
        if summary:
            conn.execute(prediction_days.insert(), summary)
        if why:
            conn.execute(prediction_reasons.insert(), why)
        failpoint("scoring.warehouse.before_commit")
    return len(records)


def _day_summary(day: dt.date, frame) -> list[dict[str, Any]]:
    """The ``prediction_days`` rows of a day's predictions: one per model version in ``frame`` (one,
    when the scoring DAG wrote it), computed in memory from the frame about to be inserted."""
    import numpy as np
    import pandas as pd

    if frame.empty:
        return []
    edges = [i / SCORE_BINS for i in range(1, SCORE_BINS)]  # the inner edges
    scored = frame[["model_name", "model_version", "score", "flagged", "scored_at"]].reset_index(drop=True).assign(
        model_version=lambda f: f["model_version"].astype(str),
        # the edges <= score: bin i holds i/SCORE_BINS <= score < (i+1)/SCORE_BINS, the last one also 1.0
        bin=lambda f: np.searchsorted(edges, f["score"].to_numpy(dtype="float64"), side="right"))
    out = []
    for (name, version), group in scored.groupby(["model_name", "model_version"], sort=True):
        counts = np.bincount(group["bin"], minlength=SCORE_BINS)
        out.append({"ds": day, "model_name": name, "model_version": version, "rows": len(group),
                    "flagged": int(group["flagged"].astype(bool).sum()),
                    "mean_score": float(group["score"].astype("float64").mean()),
                    **{c: int(n) for c, n in zip(BIN_COLUMNS, counts, strict=True)},
                    "scored_at": pd.Timestamp(group["scored_at"].max()).to_pydatetime()})
    return out


def prediction_counts(day: dt.date, table: str = "predictions") -> dict[str, int]:
    """Rows and distinct transactions of the day in ``table`` (equal when there are no duplicates)."""
    target = PREDICTION_TABLES[table]
    with engine().connect() as conn:
        rows, distinct = conn.execute(
            select(func.count(), func.count(func.distinct(target.c.transaction_id)))
            .where(target.c.ds == day)).one()
    return {"rows": rows, "distinct_transactions": distinct}


DRIFT_FIELDS = ("column_name", "kind", "psi", "psi_level", "ks_statistic", "ks_p_value", "drifted")


def replace_monitoring_day(day: dt.date, model_name: str, model_version: str, columns: list[dict[str, Any]],
                           day_alerts: list[dict[str, Any]], performance: list[dict[str, Any]] | None = None) -> None:
    """A day's drift rows (one per column result of ``columns``) and its alerts, replaced in one
    transaction: a reader never sees the drift of one run beside the alerts of another, and a rerun of
    the day replaces both. ``performance``: the day's halves of ``performance_days`` rows
    (include.drift.performance.parts), each replacing its own columns in the same transaction; None
    leaves that table alone."""
    now = dt.datetime.now(dt.UTC)
    with engine().begin() as conn:
        _lock(conn, "monitoring", day, model_name)
        conn.execute(delete(drift_metrics).where(drift_metrics.c.ds == day, drift_metrics.c.model_name == model_name))
        conn.execute(delete(alerts).where(alerts.c.ds == day, alerts.c.model_name == model_name))
        if columns:
            conn.execute(drift_metrics.insert(), [
                {k: c[k] for k in DRIFT_FIELDS} | {"ds": day, "model_name": model_name, "model_version": model_version}
                for c in columns])
        if day_alerts:
            conn.execute(alerts.insert(), [{**a, "ds": day, "model_name": model_name, "raised_at": now}
                                           for a in day_alerts])
        for part in performance or ():
            _replace_performance_part(conn, model_name, part, now)
        failpoint("monitoring.warehouse.before_commit")


def _replace_performance_part(conn, model_name: str, part: dict[str, Any], now: dt.datetime) -> None:
    """Replace the realised or the estimate columns of one ``performance_days`` row with ``part``
    (include.drift.performance.parts), keeping the other half; recompute the errors; a row left with
    neither half is deleted. The caller holds the monitoring lock of the day that writes it, and the
    row is locked by its own key (two days write halves of one row)."""
    import json

    key = (performance_days.c.ds == part["ds"], performance_days.c.model_name == model_name,
           performance_days.c.role == part["role"])
    _lock(conn, "performance_days", part["ds"], model_name, part["role"])
    old = conn.execute(select(performance_days).where(*key)).mappings().first()
    row = dict(old) if old else {"ds": part["ds"], "model_name": model_name, "role": part["role"]}
    realised = part["part"] == "realised"
    if part["part"] not in ("realised", "estimate"):
        raise ValueError(f"performance_days: part {part['part']!r} is neither 'realised' nor 'estimate'")
    figures = part["figures"]
    if realised:
        row.update({c: (figures or {}).get(c) for c in REALISED_COLUMNS}, realised_at=now if figures else None)
    else:
        row.update({f"est_{k}": (figures or {}).get(k) for k in PERFORMANCE_FIGURES},
                   n_scored=(figures or {}).get("n_scored"), calibration=(figures or {}).get("calibration"),
                   estimate_note=part.get("note"), estimated_at=now if figures or part.get("note") else None)
    has_realised, has_estimate = row.get("realised_at") is not None, row.get("estimated_at") is not None
    conn.execute(delete(performance_days).where(*key))
    if not (has_realised or has_estimate):
        return
    if figures or part.get("note") or not old:  # the half written names the day's version and threshold
        row.update(scored_day=part["scored_day"], model_version=str(part["model_version"] or row.get("model_version")),
                   threshold=part["threshold"] if part["threshold"] is not None else row.get("threshold"))
        if part.get("reference") is not None:  # NaN (a Brier score of a family without one) is no figure
            row["reference_json"] = json.dumps({k: v for k, v in part["reference"].items()
                                                if not (isinstance(v, float) and not math.isfinite(v))})
    row["estimated"] = not has_realised
    row.update({f"err_{k}": None if row.get(f"est_{k}") is None or row.get(_realised_of(k)) is None
                else float(row[f"est_{k}"]) - float(row[_realised_of(k)]) for k in PERFORMANCE_FIGURES})
    conn.execute(performance_days.insert().values(**row))


def replace_performance_parts(model_name: str, parts: list[dict[str, Any]]) -> None:
    """Replace the ``performance_days`` halves ``parts`` (include.drift.performance.parts) in one
    transaction, outside a monitoring run: the shadow's estimate of a day, written by the shadow
    scoring DAG once its partition is published (include.drift.monitor.record_shadow_estimate)."""
    now = dt.datetime.now(dt.UTC)
    with engine().begin() as conn:
        for part in parts:
            _replace_performance_part(conn, model_name, part, now)


def _realised_of(figure: str) -> str:
    """The realised column an estimated figure is compared with (the expected frauds: the frauds)."""
    return "n_frauds" if figure == "expected_frauds" else figure


def training_triggered_days(model_name: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """The days in [start, end] whose alerts on any version of ``model_name`` triggered training."""
    with engine().connect() as conn:
        days = conn.execute(select(alerts.c.ds).distinct().where(
            alerts.c.model_name == model_name, alerts.c.triggered_training.is_(True),
            alerts.c.ds.between(start, end))).scalars().all()
    return sorted(map(_day, days))


def training_triggered_since(model_name: str, since: dt.date, before: dt.date) -> dt.date | None:
    """The day an alert on any version of ``model_name`` last triggered training in [since, before), if any."""
    with engine().connect() as conn:
        row = conn.execute(select(func.max(alerts.c.ds)).where(
            alerts.c.model_name == model_name,
            alerts.c.triggered_training.is_(True), alerts.c.ds >= since, alerts.c.ds < before)).first()
    return row[0] if row else None


# Reads for summaries (the demo, the ML monitor view): one query per table over a day range.

def drift_between(start: dt.date, end: dt.date, model_name: str | None = None) -> list[dict[str, Any]]:
    """The drift rows of the days in [start, end] (of ``model_name`` only, when given), by day and column."""
    with engine().connect() as conn:
        return _dicts(conn.execute(select(drift_metrics).where(
            drift_metrics.c.ds.between(start, end), *([drift_metrics.c.model_name == model_name] if model_name else []))
            .order_by(drift_metrics.c.ds, drift_metrics.c.column_name)))


def alerts_between(start: dt.date, end: dt.date, model_name: str | None = None) -> list[dict[str, Any]]:
    """The alerts of the days in [start, end] (of ``model_name`` only, when given), oldest first."""
    with engine().connect() as conn:
        return _dicts(conn.execute(select(alerts).where(
            alerts.c.ds.between(start, end), *([alerts.c.model_name == model_name] if model_name else []))
            .order_by(alerts.c.ds, alerts.c.id)))


def performance_between(start: dt.date, end: dt.date, model_name: str) -> list[dict[str, Any]]:
    """The ``performance_days`` rows of ``model_name`` whose transactions were scored in [start, end],
    every role, by scored day and role: one query on the (model_name, scored_day) index."""
    with engine().connect() as conn:
        return _dicts(conn.execute(select(performance_days).where(
            performance_days.c.model_name == model_name, performance_days.c.scored_day.between(start, end))
            .order_by(performance_days.c.scored_day, performance_days.c.role)))


def top_flags(day: dt.date, limit: int = 5) -> list[dict[str, Any]]:
    """The ``limit`` highest-scored flagged predictions of ``day`` (score, transaction, model version),
    each with its ``reasons`` (``prediction_reasons`` rows by rank; docs/reasons.md): one query."""
    top = (select(predictions.c.ds, predictions.c.transaction_id, predictions.c.score, predictions.c.threshold,
                  predictions.c.model_version)
           .where(predictions.c.ds == day, predictions.c.flagged.is_(True))
           .order_by(predictions.c.score.desc(), predictions.c.transaction_id).limit(limit).subquery())
    r = prediction_reasons.c
    with engine().connect() as conn:
        rows = conn.execute(
            select(top, r.rank, r.feature, r.value, r.contribution)
            .join(prediction_reasons, (r.ds == top.c.ds) & (r.transaction_id == top.c.transaction_id), isouter=True)
            .order_by(top.c.score.desc(), top.c.transaction_id, r.rank)).mappings().all()
    flags: dict[int, dict[str, Any]] = {}
    for row in rows:
        flag = flags.setdefault(row["transaction_id"], {k: row[k] for k in top.c.keys()} | {"reasons": []})
        if row["rank"] is not None:
            flag["reasons"].append({k: row[k] for k in ("rank", "feature", "value", "contribution")})
    return list(flags.values())


# One row per (day, dataset): the newest Great Expectations checkpoint run on that partition (a rerun
# replaces it). Written by include.validation.datasets.validate_partitions; read by the ML monitor view.
data_quality = Table(
    "data_quality", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ds", Date, nullable=False, index=True),
    Column("dataset", String(100), nullable=False),  # a key of include.validation.datasets.DATASETS
    Column("suite", String(100), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("evaluated", Integer, nullable=False),  # expectations evaluated
    Column("failed", Integer, nullable=False),  # expectations failed
    Column("rows", BigInteger),
    Column("failures", Text),  # one failed expectation a line (column, expectation, observed values)
    Column("path", Text),
    Column("quarantined_to", Text),
    Column("validated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("ds", "dataset", name="uq_data_quality_ds_dataset"),
)


def record_data_quality(row: dict[str, Any]) -> None:
    """Replace the validation row of (ds, dataset) with ``row`` in one transaction."""
    row = {**row, "validated_at": row.get("validated_at") or dt.datetime.now(dt.UTC)}
    with engine().begin() as conn:
        _lock(conn, "data_quality", row["ds"], row["dataset"])
        conn.execute(delete(data_quality).where(data_quality.c.ds == row["ds"],
                                                data_quality.c.dataset == row["dataset"]))
        conn.execute(data_quality.insert().values(**row))


def data_quality_between(start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The validation rows of the days in [start, end], by day and dataset."""
    with engine().connect() as conn:
        return _dicts(conn.execute(select(data_quality).where(data_quality.c.ds.between(start, end))
                                   .order_by(data_quality.c.ds, data_quality.c.dataset)))


def prediction_days_between(start: dt.date, end: dt.date, model_name: str | None = None) -> list[dict[str, Any]]:
    """The ``prediction_days`` rows of the days in [start, end] (of ``model_name`` only, when given), by
    day and model version; ``bins`` holds the SCORE_BINS counts. One row a day: no prediction is read."""
    with engine().connect() as conn:
        rows = conn.execute(
            select(prediction_days)
            .where(prediction_days.c.ds.between(start, end),
                   *([prediction_days.c.model_name == model_name] if model_name else []))
            .order_by(prediction_days.c.ds, prediction_days.c.model_name, prediction_days.c.model_version)
        ).mappings().all()
    return [{**{k: v for k, v in r.items() if k not in BIN_COLUMNS}, "bins": [int(r[c]) for c in BIN_COLUMNS]}
            for r in rows]


def latest_day(until: dt.date | None = None) -> dt.date | None:
    """The newest day (up to ``until``, when given) any monitored table has rows for (predictions,
    drift, data quality, alerts)."""
    with engine().connect() as conn:
        days = [conn.execute(select(func.max(t.c.ds)).where(t.c.ds <= until) if until else
                             select(func.max(t.c.ds))).scalar()
                for t in (predictions, drift_metrics, data_quality, alerts)]
    days = [d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d)) for d in days if d is not None]
    return max(days, default=None)


def record_pipeline_alert(day: dt.date, dag_id: str, kind: str, message: str) -> None:
    """Append an operational alert to ``alerts``: a task that failed after its last try
    (``task_failure``) or a run late for its deadline (``deadline_missed``).

    These rows are events, never replaced; ``model_name`` holds the DAG id and ``model_version`` is
    empty, so the per-model drift alerts of a day (``replace_monitoring_day``) never touch them."""
    with engine().begin() as conn:
        conn.execute(alerts.insert().values(ds=day, model_name=dag_id, model_version="", kind=kind, message=message,
                                            triggered_training=False, raised_at=dt.datetime.now(dt.UTC)))


# beside a day's drift report: the shadow's estimate of the day when the shadow scoring DAG published
# after the monitoring run (include.drift.monitor.record_shadow_estimate); reloaded by rebuild
SHADOW_ESTIMATE_FILE = "shadow_estimate.json"


def rebuild(root=None, predictions_dataset: tuple[str, str] = scoring.PREDICTIONS,
            reports: tuple[str, str] = ("reports", "drift"), reasons_dataset: tuple[str, str] = scoring.REASONS,
            shadow_dataset: tuple[str, str] = scoring.SHADOW_PREDICTIONS) -> dict[str, Any]:
    """Reload what the lake and the registry hold, day by day, each day replaced in one transaction
    (a rerun of the rebuild changes nothing): ``predictions``, ``prediction_days`` and
    ``prediction_reasons`` from the prediction partitions and the reasons partitions beside them, ``drift_metrics``, the drift / performance ``alerts`` and the live ``performance_days`` from the
    drift reports (``reports/drift/ds=*/report.json``, the alert that started an episode kept as such), and
    the ``promotions`` of every registered model from the registry's tags (:func:`reconcile_promotions`),
    and ``shadow_predictions`` from the shadow's partitions (``shadow_dataset``), its ``performance_days``
    rows (``role='shadow'``) from the reports' ``shadow`` section. Data-quality rows and task-failure alerts have no other copy and are left as they are. Returns
    the days and events reloaded, and the files that could not be (each also a WARNING)."""
    import json

    import pandas as pd

    from include import registry
    from include.config import data_root
    from include.drift.monitor import live_parts, shadow_estimate_parts

    root = root or data_root()
    scored, failed = [], []
    for path in sorted((root / predictions_dataset[0] / predictions_dataset[1]).glob("ds=*/data.parquet")):
        # the day's reasons partition beside it (include.scoring.REASONS), when scoring wrote one
        why = root / reasons_dataset[0] / reasons_dataset[1] / path.parent.name / path.name
        try:
            replace_predictions(dt.date.fromisoformat(path.parent.name[3:]), pd.read_parquet(path),
                                reasons=pd.read_parquet(why) if why.exists() else None)
        except (ValueError, KeyError, AttributeError, OSError) as exc:  # not a predictions file as scoring writes it
            log.warning("predictions partition %s cannot be reloaded (%s: %s): its day keeps the rows it has",
                        path, type(exc).__name__, exc)
            failed.append(str(path))
            continue
        scored.append(path.parent.name[3:])
    shadow = []
    for path in sorted((root / shadow_dataset[0] / shadow_dataset[1]).glob("ds=*/data.parquet")):
        try:
            replace_predictions(dt.date.fromisoformat(path.parent.name[3:]), pd.read_parquet(path),
                                table=shadow_predictions.name)
        except (ValueError, KeyError, AttributeError, OSError) as exc:
            log.warning("shadow predictions partition %s cannot be reloaded (%s: %s): its day keeps the rows it has",
                        path, type(exc).__name__, exc)
            failed.append(str(path))
            continue
        shadow.append(path.parent.name[3:])
    monitored = []
    for path in sorted((root / reports[0] / reports[1]).glob("ds=*/report.json")):
        try:
            report = json.loads(path.read_text())
            columns = [{k: c[k] for k in DRIFT_FIELDS} for c in report["columns"]]
            day_alerts = [{"kind": a["kind"], "message": a["message"], "model_version": report["model_version"],
                           "triggered_training": bool(a.get("triggered_training", report.get("started_episode")))}
                          for a in report["alerts"]]
            day = dt.date.fromisoformat(report["ds"])
            # the live performance halves, as monitoring wrote them; a report from before they existed
            # (no "estimate" key) leaves that table alone
            live = live_parts(day, report.get("performance"), report["estimate"], report.get("shadow")) \
                if "estimate" in report else None
            replace_monitoring_day(day, report["model_name"], str(report["model_version"]), columns, day_alerts,
                                   performance=live)

        except (ValueError, KeyError, TypeError) as exc:
            log.warning("drift report %s cannot be reloaded (%s: %s): its day keeps the rows it has",
                        path, type(exc).__name__, exc)
            failed.append(str(path))
            continue
        monitored.append(report["ds"])
    # the shadow's estimates written by its scoring DAG after the monitoring run, over the reports' halves
    for path in sorted((root / reports[0] / reports[1]).glob(f"ds=*/{SHADOW_ESTIMATE_FILE}")):
        try:
            late = json.loads(path.read_text())
            replace_performance_parts(late["model_name"], shadow_estimate_parts(dt.date.fromisoformat(late["ds"]),
                                                                                late["estimate"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("shadow estimate %s cannot be reloaded (%s: %s)", path, type(exc).__name__, exc)
            failed.append(str(path))
    rebuilt = {name: len(reconcile_promotions(name)) for name in registry.known_models()}
    return {"predictions_days": scored, "shadow_predictions_days": shadow, "monitoring_days": monitored, "promotions_rebuilt": rebuilt,
            "not_reloaded": failed}


def main(argv: list[str] | None = None) -> int:
    """``rebuild``: the JSON summary on stdout; a failure is one line on stderr, exit 1."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["rebuild"])
    p.parse_args(argv)
    try:
        result = rebuild()
    except Exception as exc:  # the registry or the warehouse unreachable: one line, no traceback
        print(f"error: the warehouse rebuild failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
              file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --- Promotions decided on shadow evidence (include/training/shadow.py; docs/shadow.md) -------------------
# A promotion by monitoring's review_shadow is a ``promotions`` row as of the review day (it governs from the
# next day, as every promotion) marked by ``dag_run_id``: it stands beside the gate decision of a training
# run as of the same day, which the gate reads and replaces with the two functions below, never this row.

SHADOW_REVIEW = "review_shadow"


def _not_shadow_review():
    return promotions.c.dag_run_id.is_distinct_from(SHADOW_REVIEW)


def gate_decision_for(model_name: str, as_of: dt.date) -> dict[str, Any] | None:
    """The gate decision of the training run of ``model_name`` as of ``as_of`` (:func:`decision_for`
    without a promotion decided on shadow evidence that day)."""
    with engine().connect() as conn:
        row = conn.execute(select(promotions).where(
            promotions.c.model_name == model_name, promotions.c.as_of == as_of,
            promotions.c.decision != "rollback", _not_shadow_review())).mappings().first()
    return dict(row) if row else None


def record_gate_decision(row: dict[str, Any]) -> None:
    """:func:`record_decision` for a gate decision: replaces the day's gate decision, keeps the day's
    rollbacks and its promotion decided on shadow evidence."""
    row = {**row, "decided_at": row.get("decided_at") or dt.datetime.now(dt.UTC)}
    with engine().begin() as conn:
        _lock(conn, "promotions", row["model_name"], row["as_of"])
        conn.execute(delete(promotions).where(promotions.c.model_name == row["model_name"],
                                              promotions.c.as_of == row["as_of"],
                                              promotions.c.decision != "rollback", _not_shadow_review()))
        conn.execute(promotions.insert().values(**row))


def record_shadow_promotion(row: dict[str, Any]) -> None:
    """The promotion of ``row['challenger_version']`` decided on shadow evidence as of ``row['as_of']``
    (the review day), promoted; a rerun replaces its own row and keeps the first ``promoted_at``."""
    with engine().begin() as conn:
        _lock(conn, "promotions", row["model_name"], row["as_of"])
        key = (promotions.c.model_name == row["model_name"], promotions.c.as_of == row["as_of"],
               promotions.c.challenger_version == row["challenger_version"], promotions.c.dag_run_id == SHADOW_REVIEW)
        old = conn.execute(select(promotions.c.promoted_at).where(*key)).scalar()
        conn.execute(delete(promotions).where(*key))
        conn.execute(promotions.insert().values(**{**row, "decision": "promote", "promoted": True,
                                                   "dag_run_id": SHADOW_REVIEW,
                                                   "promoted_at": old or row.get("promoted_at")}))

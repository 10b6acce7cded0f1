"""Batch scoring of a day's feature partition with the model that was champion on that day.

Which model scores day D (:func:`model_for_day`): the champion of D by the promotions table
(include.warehouse.champion_timeline): a promotion as of a day before D (a run as of D trains after
D was scored), unless a rollback recorded later withdrew it; when there is no promotion history,
the registry's ``champion`` alias. So the nightly run uses the champion, a backfill or a rerun of a
past day uses the model that scored it the first time (rescoring history is reproducible), and a
rollback takes effect at once: tonight and any rescore of the withdrawn version's days use the
restored version.

Before anything is scored, :func:`plan_scoring` checks what it would read, and refuses without
retry (:class:`FeatureInputError`, include.registry.RegistryStateError), naming the culprit: the
model version (it exists, its tags parse, its signature takes every model input) and each day's
feature partition (readable, the canonical columns and no other, rows, as many rows as the day's raw
transactions, no NaN or null). A partition not there yet is retried (MissingInputError).

Output per day: ``predictions/fraud/ds=<D>/data.parquet`` (staged by the Spark job, checked by the
``predictions`` checkpoint, then renamed into place) and the same rows in the warehouse table
``predictions`` (delete + insert of the day in one transaction), each with its lineage. Beside
them, the reasons of the flagged rows only (include.training.explain: the 3 features that pushed the
row's log-odds up the most, with the input value and the contribution): ``reasons/fraud/ds=<D>/data.parquet``
(:data:`REASON_COLUMNS`, staged by the same job, published with the predictions) and the warehouse
table ``prediction_reasons``, replaced in the predictions' transaction; docs/reasons.md.

The **shadow** (docs/shadow.md): the same plan, job, checkpoint and publish, parameterised, score each
day with the version behind the registry's ``shadow`` alias (``plan_scoring(..., alias=SHADOW)``) and
publish to :data:`SHADOW_TARGET`: ``predictions/fraud_shadow/ds=<D>/data.parquet`` and the warehouse
table ``shadow_predictions`` (the columns of ``predictions``), without reasons. No consumer reads
them as the decision.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.faults import failpoint
from include.storage import (
    MissingInputError,
    as_date,
    finish_staging,
    parquet_row_count,
    partition_file,
    publish_copy,
    published_before,
    staged_partition_file,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

log = logging.getLogger(__name__)

PREDICTIONS = ("predictions", "fraud")  # zone, dataset
PREDICTION_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "score", "flagged",
                      "model_name", "model_version", "run_id", "threshold", "scored_at"]
REASONS = ("reasons", "fraud")  # zone, dataset: the reasons of the flagged predictions
REASON_COLUMNS = ["transaction_id", "model_name", "model_version", "rank", "feature", "value", "contribution"]
REASON_RANKS = 3
# the reasons of a flagged row in the scoring job's batches (null on a row not flagged)
REASON_FIELDS = {f"reason_{r}_{part}": type_ for r in range(1, REASON_RANKS + 1)
                 for part, type_ in (("feature", "string"), ("value", "double"), ("contribution", "double"))}


SHADOW_PREDICTIONS = (PREDICTIONS[0], f"{PREDICTIONS[1]}_shadow")  # zone, dataset: the shadow version's scores


@dataclass(frozen=True)
class Target:
    """Where a scoring run publishes: the lake's predictions partition (zone, dataset), its reasons
    partition (None: the run stages none), and the warehouse table of the rows."""

    predictions: tuple[str, str]
    reasons: tuple[str, str] | None
    table: str


CHAMPION_TARGET = Target(PREDICTIONS, REASONS, "predictions")  # the decision
SHADOW_TARGET = Target(SHADOW_PREDICTIONS, None, "shadow_predictions")  # beside it, read by no consumer
# the dataset check (include.validation.datasets.DATASETS) of the shadow's staged predictions: the
# predictions suite, quarantined apart from the champion's (quarantine/predictions/fraud_shadow/)
SHADOW_CHECK = "shadow_predictions"


class BeforeFirstChampion(Exception):
    """The day lies before the first promotion: no model was champion then (``first``: the as_of of
    the first promotion)."""

    def __init__(self, message: str, first: dt.date) -> None:
        super().__init__(message)
        self.first = first


class StagedPredictionsMissing(RuntimeError):
    """Publish found no staged predictions for a planned day (the staging folder was emptied or never
    written): a retry of publish cannot bring them back; rescore from the plan."""


# Rows per batch when check_features counts NaN and null values.
CHECK_BATCH_ROWS = 500_000


class FeatureInputError(ValueError):
    """A published feature partition that must not be scored (bad data, not retried): the message
    names the partition, the file, the column and the count."""


@dataclass(frozen=True)
class ModelChoice:
    name: str
    version: str
    run_id: str
    threshold: float
    source: str  # "promotions" (the champion of that day) or "alias" (no promotion history)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}


def model_for_day(name: str, day: str | dt.date, experiment: str | None = None,
                  checked: dict[str, Any] | None = None, inputs: list[str] | None = None,
                  timeline: list[dict[str, Any]] | None = None) -> ModelChoice:
    """The model that scores ``day``, checked (include.registry.usable_version; ``experiment``: the
    training experiment its run must come from; ``inputs``: the model inputs its signature must
    take; ``checked``: versions already checked, by version, filled in; ``timeline``: the model's
    include.warehouse.champion_timeline, when the caller read it once for many days). NoChampionError when there
    is none, RegistryStateError naming the version and the tag when it cannot be used. Any pipeline's
    scoring may call it (the scaffold's plan_scoring does)."""
    from include import registry, warehouse

    day = as_date(day)
    version = warehouse.champion_version_on(name, day, timeline)
    source, why = "promotions", f"champion of ds={day} by the warehouse promotions table"
    if version is None and (first := warehouse.first_promotion(name)) is not None:
        raise BeforeFirstChampion(f"no model was champion on ds={day}: the first promotion of {name!r} was made "
                                  f"as of {first} and scores from the day after", first)
    if version is None:
        champion = registry.alias_version(name, registry.CHAMPION)
        if champion is None:
            raise registry.NoChampionError(
                f"no model to score ds={day}: registered model {name!r} has no champion alias and no "
                "promotion on or before that day; run the training DAG first")
        version, source, why = str(champion.version), "alias", f"champion of ds={day} by the champion alias"
    checked = {} if checked is None else checked
    if str(version) not in checked:
        checked[str(version)] = registry.usable_version(name, str(version), inputs, experiment, why)
    mv = checked[str(version)]
    return ModelChoice(name, str(version), mv.run_id, registry.parse_threshold(mv.tags["threshold"], why), source)


def model_for_alias(name: str, alias: str, experiment: str | None = None,
                    inputs: list[str] | None = None) -> ModelChoice:
    """The version behind ``alias`` of ``name`` (the shadow: include.registry.SHADOW), checked as
    :func:`model_for_day` checks a champion. include.run_days.NothingToDo (a skip) when the alias is
    not set; RegistryStateError naming the version and the tag when it cannot be used."""
    from include import registry
    from include.run_days import NothingToDo

    mv = registry.alias_version(name, alias)
    if mv is None:
        raise NothingToDo(f"registered model {name!r} has no {alias!r} alias: no version to score beside the "
                          "champion (training sets it)")
    why = f"the {alias!r} alias"
    checked = registry.usable_version(name, str(mv.version), inputs, experiment, why)
    return ModelChoice(name, str(mv.version), checked.run_id, registry.parse_threshold(checked.tags["threshold"], why),
                       "alias")


def check_features(day: str | dt.date, root: Path | None = None) -> int:
    """The rows of the day's published feature partition, after checking it is what scoring may read:
    a readable parquet file with the canonical columns (include.pipelines.fraud.features.baseline.OUTPUT_COLUMNS), each
    once, of a type scoring reads as meant (:func:`_wrong_types`), and no other, at least one row, as many rows as the day's raw transactions (when that partition is
    there), and no NaN, null or infinite value in any of them. FeatureInputError naming the partition,
    the file, each column and its count otherwise; MissingInputError when the partition is not there.
    Reads the footer, then the columns once (pyarrow): no Spark, no model."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from include.pipelines.fraud.features.baseline import OUTPUT_COLUMNS

    day = as_date(day)
    path = partition_file("features", "baseline", day, root)
    where = f"features/baseline ds={day} ({path})"
    if not path.exists():
        raise MissingInputError(f"features/baseline ds={day}: no partition at {path}; run features first")
    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise FeatureInputError(f"{where}: not a readable parquet file ({' '.join(str(exc).split())[:200]})") from None
    problems = []
    missing, extra = [c for c in OUTPUT_COLUMNS if c not in names], [c for c in names if c not in OUTPUT_COLUMNS]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if extra:
        problems.append(f"unexpected column(s) {extra}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        problems.append(f"column(s) written more than once {twice}")
    problems += [f"column {name} is {type_}, not {kind}" for name, type_, kind in _wrong_types(file.schema_arrow)]
    rows = file.metadata.num_rows
    if rows == 0:
        problems.append("0 rows")
    raw = partition_file("raw", "transactions", day, root)
    if raw.exists() and (raw_rows := parquet_row_count(raw)) != rows:
        problems.append(f"{rows} rows, but raw/transactions ds={day} has {raw_rows} (one feature row per transaction)")
    if rows and not twice:  # a column twice cannot be read by name
        columns = [c for c in OUTPUT_COLUMNS if c in names]
        counts = {c: {"null": 0, "NaN": 0, "infinite": 0} for c in columns}
        try:  # batch by batch: the memory of a batch, whatever the size of the day
            for batch in file.iter_batches(batch_size=CHECK_BATCH_ROWS, columns=columns):
                for column, values in zip(batch.schema.names, batch.columns, strict=True):
                    counts[column]["null"] += values.null_count
                    if pa.types.is_floating(values.type):
                        counts[column]["NaN"] += pc.sum(pc.is_nan(values)).as_py() or 0
                        counts[column]["infinite"] += pc.sum(pc.is_inf(values)).as_py() or 0
        except (pa.ArrowException, OSError) as exc:
            raise FeatureInputError(f"{where}: not a readable parquet file "
                                    f"({' '.join(str(exc).split())[:200]})") from None
        for column, found in counts.items():
            bad = ", ".join(f"{n} {what}" for what, n in found.items() if n)
            if bad:
                problems.append(f"column {column} has {bad} (of {rows} rows)")
    if problems:
        raise FeatureInputError(f"{where}: {'; '.join(problems)}")
    return rows


def _wrong_types(schema) -> list[tuple[str, Any, str]]:
    """The canonical columns of ``schema`` whose type scoring cannot read as meant: (name, type, the
    kind of type it must have): ids an integer, tx_datetime a timestamp, every model input a number (integer,
    float or bool). A column of the right name holding text (\"0.5\"), a struct or a list passed the
    name and null checks and failed inside spark-submit, retried, or was turned into numbers by one
    model family and not by another."""
    import pyarrow as pa

    from include.pipelines.fraud.features.baseline import KEY_COLUMNS, MODEL_INPUTS

    rules = {c: ("an integer", pa.types.is_integer) for c in KEY_COLUMNS if c != "tx_datetime"}
    rules["tx_datetime"] = ("a timestamp", pa.types.is_timestamp)
    number = ("a number (integer, float or bool)",
              lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))
    rules.update({c: number for c in MODEL_INPUTS})
    return [(field.name, field.type, rules[field.name][0]) for field in schema
            if field.name in rules and not rules[field.name][1](field.type)]


def plan_scoring(days: list[str], registered_model: str, root: Path | None = None,
                 experiment: str | None = None, alias: str | None = None) -> list[dict[str, Any]]:
    """One assignment per day: the feature partition and the model that scores it, both checked
    (:func:`model_for_day`, :func:`check_features`; ``experiment``: the training experiment the
    model's run must come from). With ``alias`` (the shadow), every day is scored by the version
    behind that alias (:func:`model_for_alias`; NothingToDo when it is not set), without reasons
    (``"reasons": false`` in each assignment, read by the scoring job).

    Days before the first promotion had no champion and are left unscored (logged), never scored by
    today's champion: the features of a history load reach scoring too, the first time it runs.
    include.run_days.NothingToDo (a skip, not a failure) when every day lies before the first
    promotion; NoChampionError (a failure) only when there is no champion at all (no promotion and
    no alias). The order of the checks: every partition is there (else retried: features may be
    late), then the model of each day, then each partition's content."""
    from include import warehouse
    from include.pipelines.fraud.features.baseline import MODEL_INPUTS
    from include.run_days import NothingToDo

    plans, unscored, checked, first = [], [], {}, None
    for day in map(as_date, days):
        features = partition_file("features", "baseline", day, root)
        if not features.exists():
            raise MissingInputError(f"features/baseline ds={day}: no partition at {features}; run features first")
    if alias is not None:
        model = model_for_alias(registered_model, alias, experiment, MODEL_INPUTS)
        for day in map(as_date, days):
            check_features(day, root)
            plans.append({"ds": day.isoformat(), "features": str(partition_file("features", "baseline", day, root)),
                          "model": model.as_dict(), "reasons": False})
        return plans
    timeline = warehouse.champion_timeline(registered_model)  # once for all the days
    for day in map(as_date, days):
        try:
            model = model_for_day(registered_model, day, experiment, checked, MODEL_INPUTS, timeline)
        except BeforeFirstChampion as exc:
            unscored.append(day)
            first = exc.first
            continue
        check_features(day, root)
        plans.append({"ds": day.isoformat(), "features": str(partition_file("features", "baseline", day, root)),
                      "model": model.as_dict()})
    if unscored:
        log.info("not scored, no champion then: %d day(s) %s..%s", len(unscored), unscored[0], unscored[-1])
    if not plans:  # every day before the first promotion (no champion at all raised NoChampionError above)
        span = str(unscored[0]) + (f"..{unscored[-1]}" if len(unscored) > 1 else "")
        raise NothingToDo(f"no model was champion on ds={span}: the first promotion of {registered_model!r} was "
                          f"as of {first} (it scores from the day after); these days stay unscored")
    return plans


def feature_matrix(batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
    """The ``columns`` of an Arrow batch as one float32 matrix, straight from Arrow (no pandas frame).

    Column-major, as pandas' ``DataFrame.to_numpy(np.float32)`` lays it out, and cast by numpy as
    that call casts, so the scorer sees the same values as through its pandas ``predict``."""
    import numpy as np

    matrix = np.empty((batch.num_rows, len(columns)), dtype=np.float32, order="F")
    for j, name in enumerate(columns):
        matrix[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
    return matrix


def predict_matrix(scorer, matrix: np.ndarray) -> np.ndarray:
    """P(fraud) per row of ``matrix`` (the scorer's inputs, in ``scorer.inputs`` order), as float64: the
    estimator's numpy entry point (include.training.models ``predict_matrix``), else the pyfunc's own
    ``predict`` on a frame over the same matrix (an estimator class without one)."""
    import numpy as np

    estimator = getattr(scorer, "estimator", None)
    if hasattr(estimator, "predict_matrix"):
        return np.asarray(estimator.predict_matrix(matrix), dtype=np.float64)
    import pandas as pd

    return np.asarray(scorer.predict(None, pd.DataFrame(matrix, columns=scorer.inputs, copy=False)), dtype=np.float64)


def score_batch(scorer, batch: pa.RecordBatch, threshold: float, reasons: bool = False) -> pa.RecordBatch:
    """Keys, score and flag of an Arrow batch of feature rows (what each Spark task of the scoring job
    runs on its batches, ``mapInArrow``): the key columns passed through as they are, ``score`` the
    scorer's P(fraud) (float64), ``flagged`` ``score >= threshold`` (int8); with ``reasons``, also the
    :data:`REASON_FIELDS` of the flagged rows (:func:`reason_arrays`), null on the others.

    The lineage columns are constant for a day and are added by Spark, not per batch."""
    import numpy as np
    import pyarrow as pa

    keys = PREDICTION_COLUMNS[:4]  # transaction_id, tx_datetime, customer_id, terminal_id
    matrix = feature_matrix(batch, scorer.inputs)
    scores = predict_matrix(scorer, matrix)
    if len(scores) != batch.num_rows:
        raise ValueError(f"the scorer returned {len(scores)} scores for a batch of {batch.num_rows} rows")
    flagged = scores >= threshold
    arrays = [*(batch.column(k) for k in keys), pa.array(scores, pa.float64()), pa.array(flagged.astype(np.int8), pa.int8())]
    names = [*keys, "score", "flagged"]
    if reasons:
        extra = reason_arrays(scorer, matrix, flagged)
        arrays += list(extra.values())
        names += list(extra)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def reason_arrays(scorer, matrix: np.ndarray, flagged: np.ndarray) -> dict[str, pa.Array]:
    """The :data:`REASON_FIELDS` of a batch as Arrow arrays: the top reasons of the ``flagged`` rows of
    ``matrix`` (include.training.explain.explain_rows on the scorer's estimator, those rows only: the
    cost of explaining grows with the flagged rows, not the batch), null on the rows not flagged."""
    import numpy as np
    import pyarrow as pa

    from include.training.explain import explain_rows

    rows = np.flatnonzero(flagged)
    n = len(flagged)
    out = {}
    explained = explain_rows(scorer.estimator, matrix[rows], scorer.inputs, REASON_RANKS) if len(rows) else None
    for r in range(REASON_RANKS):
        for part, type_ in (("feature", pa.string()), ("value", pa.float64()), ("contribution", pa.float64())):
            values = np.full(n, None, dtype=object)
            if explained is not None:
                values[rows] = explained[part][:, r]
            out[f"reason_{r + 1}_{part}"] = pa.array(values, type_, mask=~flagged)
    return out


def split_reasons(wide: Path, predictions: Path, reasons: Path) -> int:
    """Split the scoring job's one staged file of a day with the :data:`REASON_FIELDS` (``wide``, a
    folder) into its predictions file (``predictions``/part-00000.parquet: the
    :data:`PREDICTION_COLUMNS` as Spark wrote them) and its reasons file (``reasons``/part-00000.parquet:
    :data:`REASON_COLUMNS`, one row per flagged row and rank, by transaction and rank), batch by batch
    (the memory of a batch and of the flagged rows). One Spark write instead of two: on a nightly day
    the second write cost more than the explaining. Returns the reasons rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    (source,) = sorted(wide.glob("*.parquet"))
    file = pq.ParquetFile(source)
    keep = [file.schema_arrow.field(c) for c in PREDICTION_COLUMNS]
    parts = []
    for folder in (predictions, reasons):
        folder.mkdir(parents=True, exist_ok=True)
    target = predictions / "part-00000.parquet"
    tmp = predictions / ".part-00000.parquet.tmp"
    with pq.ParquetWriter(tmp, pa.schema(keep, metadata=file.schema_arrow.metadata)) as writer:
        for batch in file.iter_batches(batch_size=CHECK_BATCH_ROWS):
            writer.write_batch(batch.select(PREDICTION_COLUMNS))
            hit = batch.filter(pc.equal(batch.column("flagged"), 1))
            for r in range(1, REASON_RANKS + 1):
                parts.append(pa.table({
                    "transaction_id": hit.column("transaction_id"), "model_name": hit.column("model_name"),
                    "model_version": hit.column("model_version"), "rank": pa.array([r] * hit.num_rows, pa.int32()),
                    "feature": hit.column(f"reason_{r}_feature"), "value": hit.column(f"reason_{r}_value"),
                    "contribution": hit.column(f"reason_{r}_contribution")}))
    os.replace(tmp, target)
    empty = pa.schema([("transaction_id", pa.int64()), ("model_name", pa.string()), ("model_version", pa.string()),
                       ("rank", pa.int32()), ("feature", pa.string()), ("value", pa.float64()),
                       ("contribution", pa.float64())])
    table = pa.concat_tables(parts).sort_by([("transaction_id", "ascending"), ("rank", "ascending")]) if parts \
        else empty.empty_table()
    tmp = reasons / ".part-00000.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, reasons / "part-00000.parquet")
    return table.num_rows


def publish_predictions(staging: Path, plans: list[dict[str, Any]], root: Path | None = None,
                        target: Target = CHAMPION_TARGET) -> dict[str, Any]:
    """Replace each day's warehouse rows (one transaction per day), then put its staged file in place
    (``target``: where; the shadow's :data:`SHADOW_TARGET` has no reasons).

    The order: a day's warehouse rows first, its file second, so a file is never newer than its rows
    (a process killed in between leaves the new rows under the old file, or no file). The staged files
    stay (the DAG's publish deletes the staging afterwards): a publish killed halfway is retried from
    the same staging, and the retry equals an undisturbed run."""
    import pandas as pd

    from include import warehouse

    staged = {p["ds"]: staged_partition_file(staging, p["ds"]) for p in plans}
    missing = [d for d, f in staged.items() if not f.exists()]
    if missing:
        raise StagedPredictionsMissing(f"no staged predictions for ds={', '.join(missing)} in {staging}; "
                                       "rescore: clear the run from plan")
    rows = {}
    for day, file in staged.items():
        frame = pd.read_parquet(file)
        reasons = None
        if target.reasons is not None:  # the shadow stages no reasons
            reasons_file = staged_partition_file(staging / REASONS[0], day)
            reasons = pd.read_parquet(reasons_file) if reasons_file.exists() else None
            if reasons is None:  # a staging written before the job staged reasons: the day has none
                log.warning("no staged reasons for ds=%s in %s: the day's reasons are removed", day, staging)
        warehouse.replace_predictions(as_date(day), frame, reasons=reasons, table=target.table)
        failpoint("scoring.warehouse.committed")
        if target.reasons is not None and reasons is None:
            partition_file(*target.reasons, day, root).unlink(missing_ok=True)
        elif reasons is not None:  # the reasons first: a file of reasons is never older than the predictions
            publish_copy(reasons_file, partition_file(*target.reasons, day, root))
        publish_copy(file, partition_file(*target.predictions, day, root))
        rows[day] = len(frame)
        failpoint("scoring.publish.partition")
    failpoint("scoring.publish.done")
    return {"rows": rows, "models": {p["ds"]: p["model"]["version"] for p in plans}}


class PlanRefused(ValueError):
    """A scoring run that a retry cannot fix: bad run parameters, no champion or a version that cannot
    be used, a feature partition that must not be scored, an invalid training.yaml."""


def plan_run(params: dict | None, events, staging: Path, what: str, alias: str | None = None) -> dict[str, Any]:
    """The plan step of a scoring run, the champion's (``alias`` None) or the version behind ``alias``'s
    (the shadow): the days the run's params or Asset events name, checked, planned
    (:func:`plan_scoring`) and written to ``staging`` (:func:`write_plan`, whose result is returned).

    include.run_days.NothingToDo (a skip with its reason): a day not over yet (UTC), every day before
    the first champion, no version behind ``alias``. :class:`PlanRefused` (not retried): see there.
    Anything else (a feature partition missing, the registry or the warehouse unreachable) is left to
    the task's retries. ``what`` names the step in the messages."""
    from include.config import ConfigError
    from include.registry import RegistryStateError
    from include.run_days import check_not_future, days_to_process
    from include.training.config import load_training_config

    try:
        days = days_to_process(params, events, what)
    except ValueError as exc:
        raise PlanRefused(str(exc)) from exc
    check_not_future(days, what)  # a day not over yet (UTC) has no complete features
    try:
        cfg = load_training_config()
        plans = plan_scoring(days, cfg.registered_model, experiment=cfg.experiment, alias=alias)
    except (RegistryStateError, FeatureInputError, ConfigError) as exc:
        raise PlanRefused(str(exc)) from exc
    return write_plan(staging, plans)


def write_plan(staging: Path, plans: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the plans of :func:`plan_scoring` to ``<staging>/plans.json`` (what the score job and
    publish read; written whole or not at all) and return the plan task's XCom: the days, the staging
    folder, the plan file and each day's model version (small JSON only)."""
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / "plans.json"
    tmp = staging / f".plans.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(plans, indent=2))
    os.replace(tmp, path)
    return {"days": [p["ds"] for p in plans], "staging": str(staging), "plans": str(path),
            "models": {p["ds"]: p["model"]["version"] for p in plans}}


def publish_staged(plan: dict[str, Any], root: Path | None = None,
                   target: Target = CHAMPION_TARGET) -> tuple[dict[str, Any], dict[str, Any]]:
    """Publish a scoring run once: :func:`publish_predictions` from the staging folder and the plan
    file named by ``plan`` (the XCom of :func:`write_plan`), then record the result and delete the
    staging (include.storage.finish_staging). A retry of a publish that died after that finds the
    recorded result (include.storage.published_before) and publishes nothing twice.

    ``target``: where it publishes (:data:`SHADOW_TARGET` for the shadow).
    Returns ``(result, extra)``: the publish's result and the extra of the predictions Asset event,
    ``{"start", "end"}`` of the planned days. StagedPredictionsMissing, naming the days and the
    folder, when a staged day or the plan file is gone (a retry cannot help: rescore from plan)."""
    staging = Path(plan["staging"])
    result = published_before(staging)  # a retry after the task died once the staging was gone
    if result is None:
        try:
            plans = json.loads(Path(plan["plans"]).read_text())
        except FileNotFoundError:
            raise StagedPredictionsMissing(f"the plan file {plan['plans']} of ds={', '.join(plan['days'])} is gone "
                                           f"(staging {staging}); rescore: clear the run from plan") from None
        result = publish_predictions(staging, plans, root, target)
        finish_staging(staging, result)
    return result, {"start": plan["days"][0], "end": plan["days"][-1]}

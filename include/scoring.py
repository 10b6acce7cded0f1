"""Batch scoring of a day's feature partition with the model that was champion on that day.

Which model scores day D (:func:`model_for_day`): the newest version the promotions table records as
promoted by a training run as of a day before D (a run as of D trains after D was scored); when
there is none, the registry's ``champion`` alias. So the nightly run uses the champion, and a
backfill or a rerun of a past day uses the model that scored it the first time: rescoring history
is reproducible.

Output per day: ``predictions/fraud/ds=<D>/data.parquet`` (staged by the Spark job, checked by the
``predictions`` checkpoint, then renamed into place) and the same rows in the warehouse table
``predictions`` (delete + insert of the day in one transaction), each with its lineage.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.faults import failpoint
from include.storage import MissingInputError, as_date, partition_file, publish_copy, staged_partition_file

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PREDICTIONS = ("predictions", "fraud")  # zone, dataset
PREDICTION_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "score", "flagged",
                      "model_name", "model_version", "run_id", "threshold", "scored_at"]


class BeforeFirstChampion(Exception):
    """The day lies before the first promotion: no model was champion then."""


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


def model_for_day(name: str, day: str | dt.date) -> ModelChoice:
    """The model that scores ``day``; raises NoChampionError when there is none."""
    from include import registry, warehouse
    from include.training import tracking

    day = as_date(day)
    version = warehouse.champion_version_on(name, day)
    source = "promotions"
    if version is None and (first := warehouse.first_promotion(name)) is not None:
        raise BeforeFirstChampion(f"no model was champion on ds={day}: the first promotion of {name!r} was made "
                                  f"as of {first} and scores from the day after")
    if version is None:
        champion = registry.alias_version(name, registry.CHAMPION)
        if champion is None:
            raise registry.NoChampionError(
                f"no model to score ds={day}: registered model {name!r} has no champion alias and no "
                "promotion on or before that day; run the training DAG first")
        version, source = str(champion.version), "alias"
    mv = tracking.client().get_model_version(name, version)
    return ModelChoice(name, str(version), mv.run_id, float(mv.tags["threshold"]), source)


def plan_scoring(days: list[str], registered_model: str, root: Path | None = None) -> list[dict[str, Any]]:
    """One assignment per day: the feature partition and the model that scores it.

    Days before the first promotion had no champion and are left unscored (logged): the features of a
    history load reach scoring too, the first time it runs. NoChampionError when no day is left."""
    from include.registry import NoChampionError

    plans, unscored = [], []
    for day in map(as_date, days):
        features = partition_file("features", "baseline", day, root)
        if not features.exists():
            raise MissingInputError(f"features/baseline ds={day}: no partition at {features}; run features first")
        try:
            model = model_for_day(registered_model, day)
        except BeforeFirstChampion:
            unscored.append(day)
            continue
        plans.append({"ds": day.isoformat(), "features": str(features), "model": model.as_dict()})
    if unscored:
        log.info("not scored, no champion then: %d day(s) %s..%s", len(unscored), unscored[0], unscored[-1])
    if not plans:
        raise NoChampionError(f"no model was champion on any of {days[0]}..{days[-1]}: the first promotion of "
                              f"{registered_model!r} came later")
    return plans


def score_batch(scorer, features: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Keys, score and flag of a batch of feature rows (what each Spark task runs on its batches).

    The lineage columns are constant for a day and are added by Spark, not per batch in pandas."""
    from include.features.baseline import MODEL_INPUTS

    out = features[["transaction_id", "tx_datetime", "customer_id", "terminal_id"]].copy()
    out["score"] = scorer.predict(None, features[MODEL_INPUTS]).astype("float64")
    out["flagged"] = (out["score"] >= threshold).astype("int8")
    return out


def publish_predictions(staging: Path, plans: list[dict[str, Any]], root: Path | None = None) -> dict[str, Any]:
    """Replace each day's warehouse rows (one transaction per day), then put its staged file in place.

    The order: a day's warehouse rows first, its file second, so a file is never newer than its rows
    (a process killed in between leaves the new rows under the old file, or no file). The staged files
    stay (the DAG's publish deletes the staging afterwards): a publish killed halfway is retried from
    the same staging, and the retry equals an undisturbed run."""
    import pandas as pd

    from include import warehouse

    staged = {p["ds"]: staged_partition_file(staging, p["ds"]) for p in plans}
    missing = [d for d, f in staged.items() if not f.exists()]
    if missing:
        raise RuntimeError(f"no staged predictions for ds={', '.join(missing)} in {staging}")
    rows = {}
    for day, file in staged.items():
        frame = pd.read_parquet(file)
        warehouse.replace_predictions(as_date(day), frame)
        failpoint("scoring.warehouse.committed")
        publish_copy(file, partition_file(*PREDICTIONS, day, root))
        rows[day] = len(frame)
        failpoint("scoring.publish.partition")
    failpoint("scoring.publish.done")
    return {"rows": rows, "models": {p["ds"]: p["model"]["version"] for p in plans}}

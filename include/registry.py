"""The MLflow model registry of a pipeline: versions, the champion / challenger / previous_champion
aliases, promotion and rollback.

    python -m include.registry show                 # versions and aliases
    python -m include.registry rollback             # champion back to previous_champion

Aliases move in an order that never leaves one pointing at nothing: previous_champion is set before
champion moves, and registration reuses the version of a run that is already registered.

A rollback takes effect at once: the rolled-back version is withdrawn, and tonight's scoring as well
as any rescore of the days it scored use the restored version (include.warehouse.champion_timeline;
the scoring DAG's runbook says it in words). A registry state scoring cannot use (a deleted version,
a tag that is missing or wrong, model files that do not load, an unknown model) raises
:class:`RegistryStateError` naming the model, the version and the tag: a retry cannot fix it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import re
import sys
from typing import TYPE_CHECKING, Any

from include.training import tracking

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
# the version scored every night beside the champion, whose scores no consumer reads as the decision
SHADOW = "shadow"


# Tags every version carries (register() writes them): what scoring and monitoring read.
REQUIRED_TAGS = ("as_of", "threshold", "metrics")


class RegistryStateError(ValueError):
    """The registry holds something that cannot be used as it is (a deleted version, a missing or
    malformed tag, model files that do not load, an unknown model): not retried, the message names
    the model, the version and the tag. An unreachable registry raises MLflow's own error (retried)."""


class NoChampionError(RegistryStateError, LookupError):
    """The registered model has no champion to load or roll back to."""


class UnknownModelError(RegistryStateError, LookupError):
    """No registered model of that name."""


# Errors of reading a model's files that mean the files are broken, not that the store is away:
# truncated or garbage pickles and YAML, files missing from a local store, a class that is gone.
_BROKEN_FILE_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, FileNotFoundError, IsADirectoryError, NotADirectoryError, ImportError, AttributeError,
    ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError)


def is_broken_artifact(exc: BaseException) -> bool:
    """Whether ``exc``, raised while reading a model version's files, means the files are broken (bad
    registry state, not retried) rather than the registry or artifact store being unreachable."""
    import pickle

    import yaml
    from mlflow.exceptions import MlflowException

    if isinstance(exc, ConnectionError | TimeoutError):
        return False
    if isinstance(exc, MlflowException):
        return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST")
    return isinstance(exc, (*_BROKEN_FILE_ERRORS, pickle.UnpicklingError, yaml.YAMLError))


def _does_not_exist(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def known_models() -> list[str]:
    return sorted(m.name for m in tracking.client().search_registered_models())


def require_model(name: str):
    """The registered model ``name``; UnknownModelError naming the known ones when there is none."""
    try:
        return tracking.client().get_registered_model(name)
    except Exception as exc:
        if _does_not_exist(exc):
            raise UnknownModelError(f"no registered model {name!r} in the registry; known: "
                                    f"{known_models() or 'none'}") from None
        raise


def usable_version(name: str, version: str, inputs: list[str] | None = None, experiment: str | None = None,
                   why: str = "") -> ModelVersion:
    """Version ``version`` of ``name``, checked for what scoring reads of it: it exists, its run
    exists (in ``experiment``, when given: a version made from another pipeline's run is refused),
    its run is not deleted, its tags (:data:`REQUIRED_TAGS`) are there and parse (``threshold`` a number in [0, 1],
    ``metrics`` a JSON object, ``as_of`` a date), and its signature takes every column of ``inputs``.
    RegistryStateError naming the version and the tag otherwise; ``why`` says where the version was
    found (e.g. "champion of ds=...: promotions table"). Reads the model's MLmodel file, not the model."""
    import mlflow

    c = tracking.client()
    where = f"version {version} of registered model {name!r}{f' ({why})' if why else ''}"
    if not re.fullmatch(r"[1-9][0-9]*", str(version)):  # a promotions row written by hand ('v2', '')
        raise RegistryStateError(f"{where}: {str(version)!r} is not a version number; known versions: "
                                 f"{_versions(name)}")
    try:
        mv = c.get_model_version(name, str(version))
    except Exception as exc:
        if _does_not_exist(exc):
            raise RegistryStateError(f"{where} does not exist (deleted?); known versions: "
                                     f"{_versions(name)}") from None
        raise
    tags = mv.tags or {}
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        raise RegistryStateError(f"{where} lacks the tag(s) {missing} that every version carries (see "
                                 "include.registry.register)")
    threshold = parse_threshold(tags["threshold"], where)
    try:
        metrics = json.loads(tags["metrics"])
    except ValueError:
        metrics = None
    if not isinstance(metrics, dict):
        raise RegistryStateError(f"{where}: tag metrics = {tags['metrics'][:100]!r} is not a JSON object of metrics")
    try:
        dt.date.fromisoformat(tags["as_of"])
    except ValueError:
        raise RegistryStateError(f"{where}: tag as_of = {tags['as_of'][:100]!r} is not a day (YYYY-MM-DD)") from None
    try:
        run = c.get_run(mv.run_id)
    except Exception as exc:
        if _does_not_exist(exc) or not mv.run_id:
            raise RegistryStateError(f"{where}: its run {mv.run_id!r} does not exist") from None
        raise
    if run.info.lifecycle_stage == "deleted":  # MLflow still returns it, until `mlflow gc` removes its files
        raise RegistryStateError(f"{where}: its run {mv.run_id} was deleted (withdrawn from use; `mlflow gc` "
                                 f"would remove its model files): restore it (mlflow runs restore --run-id "
                                 f"{mv.run_id}) or roll back")
    if experiment is not None:
        found = c.get_experiment(run.info.experiment_id)
        if found is None or found.name != experiment:
            raise RegistryStateError(
                f"{where} was made from run {mv.run_id} of experiment "
                f"{getattr(found, 'name', run.info.experiment_id)!r}, not of this pipeline's {experiment!r}: "
                "a version of another pipeline's model")
    if inputs:
        uri = f"models:/{name}/{version}"
        try:
            info = mlflow.models.get_model_info(uri)
        except Exception as exc:
            if is_broken_artifact(exc):
                raise RegistryStateError(f"{where}: its model files ({uri}) cannot be read: "
                                         f"{type(exc).__name__}: {_one_line(exc)}") from None
            raise
        names = info.signature.inputs.input_names() if info.signature is not None else []
        lacking = [c for c in inputs if c not in names]
        if lacking:
            raise RegistryStateError(f"{where}: its signature lacks the model input(s) {lacking} (it takes "
                                     f"{names or 'no signature'})")
    log.debug("%s usable (threshold %s)", where, threshold)
    return mv


def parse_threshold(value: str | None, where: str) -> float:
    """The ``threshold`` tag as a number in [0, 1]; RegistryStateError naming the value otherwise. The
    float just above 1 is allowed: the cost choice "flag nothing" when the top score is 1.0
    (include.training.metrics picks the float after the top score)."""
    import math

    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 <= threshold <= math.nextafter(1.0, math.inf):
        raise RegistryStateError(f"{where}: tag threshold = {value!r} is not a number in [0, 1]")
    return threshold


def _versions(name: str) -> list[str]:
    return sorted((str(v.version) for v in tracking.client().search_model_versions(f"name = '{name}'")), key=int)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def ensure_registered_model(name: str) -> None:
    from mlflow.exceptions import MlflowException

    c = tracking.client()
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Card-fraud detector of the reference pipeline; "
                                  "aliases: champion (scores nightly), challenger, previous_champion (rollback), "
                                  "shadow (scored beside the champion).")


def version_of_run(name: str, run_id: str) -> ModelVersion | None:
    found = tracking.client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return max(found, key=lambda v: int(v.version)) if found else None


def register(name: str, summary: dict[str, Any]) -> ModelVersion:
    """The version of the summary's run, registering it if needed (a rerun reuses it)."""
    import mlflow

    ensure_registered_model(name)
    existing = version_of_run(name, summary["run_id"])
    if existing is not None:
        return existing
    tags = {"as_of": summary["as_of"], "family": summary["family"], "model": summary["model"],
            "threshold": str(summary["threshold"]), "training_window": summary["training_window"],
            "evaluation_window": summary["evaluation_window"], "metrics": json.dumps(summary["metrics"])}
    return mlflow.register_model(summary["model_uri"], name, tags=tags)


def alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at; None when the model or the alias does not exist. Any other
    error (the registry unreachable) is raised: taken for "no champion", it would fail scoring
    without retry and let the gate judge a challenger as the first model."""
    from mlflow.exceptions import MlflowException

    try:
        return tracking.client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(name: str, alias: str, version: str) -> None:
    tracking.client().set_registered_model_alias(name, alias, version)


def remove_alias(name: str, alias: str) -> None:
    """``alias`` no longer points at any version of ``name`` (nothing to do when it points at none)."""
    if alias_version(name, alias) is not None:
        tracking.client().delete_registered_model_alias(name, alias)


def promote(name: str, version: str, as_of: dt.date | None = None) -> dict[str, str | None]:
    """Make ``version`` the champion; the champion it replaces becomes previous_champion. With
    ``as_of`` (the training run's day), the version is then tagged ``promoted_as_of`` and
    ``promoted_at`` (:func:`champion_history`): after the alias moved, so that the tags never claim a
    promotion the alias did not make, and once (a rerun keeps the time of the first promotion)."""
    current = alias_version(name, CHAMPION)
    if current is not None and str(current.version) == str(version):
        aliases = {"champion": str(version), "previous_champion": _version(alias_version(name, PREVIOUS))}
    else:
        if current is not None:
            set_alias(name, PREVIOUS, str(current.version))
        set_alias(name, CHAMPION, str(version))
        log.info("%s: champion %s -> %s", name, _version(current), version)
        aliases = {"champion": str(version), "previous_champion": _version(current)}
    if as_of is not None:
        c = tracking.client()
        if (c.get_model_version(name, str(version)).tags or {}).get("promoted_as_of") != as_of.isoformat():
            c.set_model_version_tag(name, str(version), "promoted_at", dt.datetime.now(dt.UTC).isoformat())
            c.set_model_version_tag(name, str(version), "promoted_as_of", as_of.isoformat())
    return aliases


def rollback(name: str, day: dt.date | None = None) -> dict[str, str | None]:
    """Champion back to previous_champion, at once: the rolled-back version is tagged ``rolled_back``
    (the time), ``rolled_back_as_of`` (the day) and ``rolled_back_to`` (the restored version), loses the
    alias and is withdrawn (tonight's scoring and any rescore of the days it scored use the
    restored version: include.warehouse.champion_timeline). ``rescore_from`` is the first day the
    withdrawn version scored (None when the promotions table does not say): rescore the days already
    scored from there on with the scoring DAG's ``start``/``end`` params. A previous_champion whose
    tags are broken is refused before any alias moves. ``day``: the day it is done, from which it
    governs (default: today, UTC)."""
    from include import warehouse

    require_model(name)
    previous = alias_version(name, PREVIOUS)
    current = alias_version(name, CHAMPION)
    if previous is None or current is None:
        raise NoChampionError(f"{name}: nothing to roll back to (champion {_version(current)}, "
                              f"previous_champion {_version(previous)})")
    if str(previous.version) == str(current.version):  # set by hand: "rolling back" would withdraw the champion
        raise RegistryStateError(f"{name}: previous_champion is the champion itself (version {current.version}): "
                                 "nothing to roll back to; point previous_champion at the version to restore")
    usable_version(name, str(previous.version), why="previous_champion, the version to roll back to")
    c = tracking.client()
    now = dt.datetime.now(dt.UTC)
    day = day or now.date()
    scored = [e["from"] for e in warehouse.champion_timeline(name) if e["version"] == str(current.version)]
    set_alias(name, CHAMPION, str(previous.version))
    c.delete_registered_model_alias(name, PREVIOUS)
    # the registry keeps the rollback (champion_history): the warehouse row below is a copy of it
    for key, value in (("rolled_back_as_of", day.isoformat()), ("rolled_back_to", str(previous.version)),
                       ("rolled_back", now.isoformat())):
        c.set_model_version_tag(name, str(current.version), key, value)
    warehouse.record_decision({
        "model_name": name, "as_of": day, "challenger_version": str(previous.version),
        "challenger_run_id": previous.run_id or "", "champion_version": str(current.version),
        "decision": "rollback", "promoted": True, "reason": f"manual rollback from version {current.version}",
        "primary_metric": "", "decided_at": now, "promoted_at": now,
    })
    return {"champion": str(previous.version), "rolled_back": str(current.version),
            "rescore_from": min(scored).isoformat() if scored else None}


REBUILT = "rebuilt from the registry tags"


def champion_history(name: str) -> list[dict[str, Any]]:
    """The promotions and rollbacks of ``name`` as the registry records them, rebuilt from the
    model-version tags promote and rollback write, as rows of the warehouse ``promotions`` table
    (without ``id``), oldest first: the source of truth of the champion-of-the-day history when the
    warehouse is lost or restored from an older copy (include.warehouse.reconcile_promotions).

    A version keeps its latest promotion and its latest rollback: a version promoted again was rolled
    back in between, and that rollback withdrew the earlier promotion's days anyway. An event whose
    tags do not parse is left out, with a warning naming the version and the tag."""
    rows = []
    for mv in tracking.client().search_model_versions(f"name = '{name}'"):
        tags, version = mv.tags or {}, str(mv.version)
        try:
            if "promoted_as_of" in tags:
                at = as_utc(tags["promoted_at"])
                champion = tags.get("gate_champion_version")
                rows.append({
                    "model_name": name, "as_of": dt.date.fromisoformat(tags["promoted_as_of"]),
                    "challenger_version": version, "challenger_run_id": mv.run_id or "",
                    "champion_version": None if champion in (None, "None", "") else champion,
                    "decision": "promote", "promoted": True,
                    "reason": f"{tags.get('gate_reason', 'promoted')} ({REBUILT})", "primary_metric": "",
                    "decided_at": as_utc(tags["gate_decided_at"]) if "gate_decided_at" in tags else at,
                    "promoted_at": at})
            if "rolled_back_as_of" in tags:
                at = as_utc(tags["rolled_back"])
                rows.append({
                    "model_name": name, "as_of": dt.date.fromisoformat(tags["rolled_back_as_of"]),
                    "challenger_version": tags["rolled_back_to"], "challenger_run_id": "",
                    "champion_version": version, "decision": "rollback", "promoted": True,
                    "reason": f"manual rollback from version {version} ({REBUILT})", "primary_metric": "",
                    "decided_at": at, "promoted_at": at})
        except (KeyError, ValueError) as exc:
            log.warning("%s version %s: a promotion or rollback tag is missing or not a date/time (%s: %s); "
                        "that event is left out of the champion history", name, version, type(exc).__name__, exc)
    return sorted(rows, key=lambda r: r["promoted_at"])


def as_utc(value: str | dt.datetime) -> dt.datetime:
    """A stored time (an ISO text, or a datetime as SQLite returns it) as an aware UTC datetime; a
    naive one is taken as UTC, the zone every stored time is written in."""
    at = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return at.astimezone(dt.UTC) if at.tzinfo else at.replace(tzinfo=dt.UTC)


def describe(name: str) -> dict[str, Any]:
    c = tracking.client()
    model = require_model(name)
    versions = c.search_model_versions(f"name = '{name}'")
    return {
        "name": name, "aliases": {a: str(v) for a, v in (model.aliases or {}).items()},
        "versions": [{"version": str(v.version), "run_id": v.run_id, "model": v.tags.get("model"),
                      "as_of": v.tags.get("as_of"), "metrics": _metrics_or_text(v.tags.get("metrics", "{}"))}
                     for v in sorted(versions, key=lambda v: int(v.version))],
    }


def _metrics_or_text(value: str) -> Any:
    """The metrics tag as JSON, or as the text it is when it is not JSON (show must not crash on it)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _version(mv: ModelVersion | None) -> str | None:
    return None if mv is None else str(mv.version)


def main(argv: list[str] | None = None) -> int:
    """The command line; every error is one line on stderr: exit 2 for an unknown model or an invalid
    training configuration, 1 for a registry state that forbids the command or a registry that failed."""
    from mlflow.exceptions import MlflowException

    from include.config import ConfigError
    from include.training.config import load_training_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["show", "rollback"])
    p.add_argument("--model", help="registered model name (default: from the training configuration)")
    args = p.parse_args(argv)
    if args.model is not None and not args.model.strip():  # --model "$UNSET": never the default model
        print(f"error: --model {args.model!r} is blank; name the registered model, or leave --model out for the "
              "training configuration's", file=sys.stderr)
        return 2
    try:
        name = args.model or load_training_config().registered_model
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = rollback(name) if args.command == "rollback" else describe(name)
    except UnknownModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryStateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:  # the registry unreachable, or refusing: one line, no traceback
        print(f"error: the model registry failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The MLflow model registry of a pipeline: versions, the champion / challenger / previous_champion
aliases, promotion and rollback.

    python -m include.registry show                 # versions and aliases
    python -m include.registry rollback             # champion back to previous_champion

Aliases move in an order that never leaves one pointing at nothing: previous_champion is set before
champion moves, and registration reuses the version of a run that is already registered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from include.training import tracking

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"


class NoChampionError(LookupError):
    """The registered model has no champion to load or roll back to."""


def ensure_registered_model(name: str) -> None:
    from mlflow.exceptions import MlflowException

    c = tracking.client()
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Card-fraud detector of the reference pipeline; "
                                  "aliases: champion (scores nightly), challenger, previous_champion (rollback).")


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


def promote(name: str, version: str) -> dict[str, str | None]:
    """Make ``version`` the champion; the champion it replaces becomes previous_champion."""
    current = alias_version(name, CHAMPION)
    if current is not None and str(current.version) == str(version):
        return {"champion": str(version), "previous_champion": _version(alias_version(name, PREVIOUS))}
    if current is not None:
        set_alias(name, PREVIOUS, str(current.version))
    set_alias(name, CHAMPION, str(version))
    log.info("%s: champion %s -> %s", name, _version(current), version)
    return {"champion": str(version), "previous_champion": _version(current)}


def rollback(name: str) -> dict[str, str]:
    """Champion back to previous_champion; the rolled-back version is tagged and loses the alias."""
    from include import warehouse

    previous = alias_version(name, PREVIOUS)
    current = alias_version(name, CHAMPION)
    if previous is None or current is None:
        raise NoChampionError(f"{name}: nothing to roll back to (champion {_version(current)}, "
                              f"previous_champion {_version(previous)})")
    c = tracking.client()
    set_alias(name, CHAMPION, str(previous.version))
    c.delete_registered_model_alias(name, PREVIOUS)
    c.set_model_version_tag(name, str(current.version), "rolled_back", dt.datetime.now(dt.UTC).isoformat())
    now = dt.datetime.now(dt.UTC)
    warehouse.record_decision({
        "model_name": name, "as_of": now.date(), "challenger_version": str(previous.version),
        "challenger_run_id": previous.run_id or "", "champion_version": str(current.version),
        "decision": "rollback", "promoted": True, "reason": f"manual rollback from version {current.version}",
        "primary_metric": "", "decided_at": now, "promoted_at": now,
    })
    return {"champion": str(previous.version), "rolled_back": str(current.version)}


def describe(name: str) -> dict[str, Any]:
    c = tracking.client()
    model = c.get_registered_model(name)
    versions = c.search_model_versions(f"name = '{name}'")
    return {
        "name": name, "aliases": {a: str(v) for a, v in (model.aliases or {}).items()},
        "versions": [{"version": str(v.version), "run_id": v.run_id, "model": v.tags.get("model"),
                      "as_of": v.tags.get("as_of"), "metrics": json.loads(v.tags.get("metrics", "{}"))}
                     for v in sorted(versions, key=lambda v: int(v.version))],
    }


def _version(mv: ModelVersion | None) -> str | None:
    return None if mv is None else str(mv.version)


def main(argv: list[str] | None = None) -> int:
    from include.training.config import load_training_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["show", "rollback"])
    p.add_argument("--model", help="registered model name (default: from the training configuration)")
    args = p.parse_args(argv)
    name = args.model or load_training_config().registered_model
    try:
        result = rollback(name) if args.command == "rollback" else describe(name)
    except NoChampionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

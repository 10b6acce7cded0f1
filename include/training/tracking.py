"""MLflow set-up and the conventions this project keeps in it.

- Tracking URI from include.config (sqlite file under the data root by default, an ``mlflow server``
  URL in production); the registry uses the same URI.
- One experiment per pipeline; a model run is keyed by the tags (as_of, model), so a retried task
  finds its run instead of creating a duplicate; Optuna trials are nested runs under it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import mlflow_artifact_root, mlflow_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger(__name__)

TAG_PREFIX = "batchml."


def client() -> MlflowClient:
    """A client on the configured tracking and registry URI (also set as the process default)."""
    import mlflow

    uri = mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it (with an artifact folder under the data root) if needed.

    Call it once before parallel tasks start: the first connection to a new sqlite store migrates
    its schema, which must not happen in several processes at once.
    """
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = None
    if mlflow_tracking_uri().startswith("sqlite:"):
        location = (mlflow_artifact_root() / name).as_uri()
    return c.create_experiment(name, artifact_location=location)


def filter_string(tags: dict[str, str]) -> str:
    return " and ".join(f"tags.`{TAG_PREFIX}{k}` = '{v}'" for k, v in tags.items())


def find_run(experiment_id: str, tags: dict[str, str]) -> Run | None:
    """The active run carrying all ``tags`` (the newest if a crash ever left several)."""
    runs = client().search_runs([experiment_id], filter_string(tags), order_by=["attributes.start_time DESC"],
                                max_results=1)
    return runs[0] if runs else None


def delete_run_tree(run: Run) -> None:
    """Soft-delete a run that did not finish, with its nested runs, so a rerun starts clean."""
    c = client()
    children = c.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    for child in children:
        c.delete_run(child.info.run_id)
    c.delete_run(run.info.run_id)
    log.info("discarded unfinished run %s and %d nested run(s)", run.info.run_id, len(children))


def tags(**values) -> dict[str, str]:
    return {f"{TAG_PREFIX}{k}": str(v) for k, v in values.items()}

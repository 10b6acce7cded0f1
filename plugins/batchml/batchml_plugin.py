"""The project's Airflow plugin: registers the operator extra links of :mod:`batchml.links`.

Airflow loads every ``.py`` file under ``plugins/`` and keeps the ``AirflowPlugin`` subclasses it
finds; this is the only one for the operators (the ML monitor view has its own plugin file). Each
link names the operators it belongs to, and those operators also declare it in their
``operator_extra_links``, so the buttons appear whichever way a deployment resolves them.

    airflow plugins    # lists batchml_operators with its three links

It also carries one compatibility fix, :func:`accept_encoded_deadline_alerts`, for
an Airflow 3.3.2 bug: ``dag.test()`` / ``airflow dags test`` of a DAG with a
``DeadlineAlert`` (the scoring DAG) crashes when the run *succeeds*, because the in-memory
scheduler DAG holds the encoded alerts where the scheduler holds their database ids (the scoring DAG
test reproduces it without this fix). Airflow loads the plugins while it deserialises the DAG under
test, so the fix is in place before the run ends.
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin

from batchml.links import DataDocsLink, DriftReportLink, MLflowLink

log = logging.getLogger(__name__)


class BatchMLOperatorsPlugin(AirflowPlugin):
    name = "batchml_operators"
    operator_extra_links = [MLflowLink(), DataDocsLink(), DriftReportLink()]


def accept_encoded_deadline_alerts() -> bool:
    """Let ``DeadlineAlertModel.get_by_id`` take an encoded alert (a dict) as well as an id.

    ``DagRun.update_state`` looks up each entry of ``dag.deadline`` by id when a run succeeds, to
    prune its deadlines; under ``dag.test()`` the entries are the encoded alerts themselves. For a
    dict this returns an unsaved ``DeadlineAlertModel`` built from it (only ``reference_class`` is
    read); ids go to Airflow's own lookup, so the scheduler's path is unchanged. Once Airflow decodes
    the alerts in ``update_state`` itself this shim has nothing left to do (the scoring DAG test
    tells: it passes without the shim). Idempotent; returns whether the fix is in place.
    """
    try:
        from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    except ImportError:  # a future Airflow without this model: nothing to fix
        return False
    original = DeadlineAlertModel.__dict__.get("get_by_id")
    if original is None:
        return False
    if getattr(original.__func__, "_batchml_accepts_encoded", False):
        return True

    def get_by_id(cls, deadline_alert_id, *args, **kwargs):
        if isinstance(deadline_alert_id, dict):
            return cls(reference=deadline_alert_id.get("reference") or {}, name=deadline_alert_id.get("name"))
        return original.__func__(cls, deadline_alert_id, *args, **kwargs)

    get_by_id._batchml_accepts_encoded = True  # type: ignore[attr-defined]
    get_by_id.__doc__ = original.__func__.__doc__
    DeadlineAlertModel.get_by_id = classmethod(get_by_id)
    log.debug("DeadlineAlertModel.get_by_id accepts encoded alerts (dag.test() of DAGs with deadlines)")
    return True


accept_encoded_deadline_alerts()

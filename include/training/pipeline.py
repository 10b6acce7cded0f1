"""The steps of the training DAG as plain functions (the DAG file only wires them):

prepare -> train_family (one per model spec, in parallel) -> select_challenger -> run_gate -> promote

After the gate, a challenger that is not promoted gets the alias ``shadow`` (include/training/shadow.py):
it is scored beside the champion; with ``shadow.days`` > 0 an approved one waits there for shadow evidence
(decision ``awaiting_shadow``) and monitoring's ``review_shadow`` promotes or refuses it.

Each returns a small JSON-able dict (the XCom) and is safe to rerun for the same ``as_of``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from pathlib import Path
from typing import Any

from include import registry, warehouse
from include.faults import failpoint
from include.storage import as_date
from include.training import shadow, tracking
from include.training.config import TrainingConfig
from include.training.dataset import build_training_set, load_training_set
from include.training.gate import Decision, decide
from include.training.metrics import evaluate
from include.training.model_card import render
from include.training.slices import band_frauds, evaluate_slices
from include.training.train import run_key
from include.training.windows import Block, plan_training

log = logging.getLogger(__name__)


def prepare(as_of: str, cfg: TrainingConfig, root: Path | None = None,
            models: list[str] | None = None) -> dict[str, Any]:
    """Plan the windows, publish the training set, and create the experiment and registered model
    once (before the parallel model tasks touch the tracking store). ``models`` narrows the run to
    some of the configured families (e.g. a quick baseline first champion); ValueError on a name the
    configuration does not have."""
    configured = [m.name for m in cfg.models]
    unknown = sorted(set(models or []) - set(configured))
    if unknown:
        raise ValueError(f"models {unknown} are not in the training configuration (it has {configured})")
    plan = plan_training(as_of, cfg.window)
    manifest = build_training_set(plan, root)
    # every slice of the configuration on the real evaluation rows: a slice over a column the frame lacks
    # fails here (SliceError, not retried) rather than in every model task
    evaluation = load_training_set(plan.as_of, root).test_rows(plan.evaluation)
    slice_frauds = band_frauds(evaluation, cfg.slices, cfg.source)
    tracking.ensure_experiment(cfg.experiment)
    registry.ensure_registered_model(cfg.registered_model)
    return {"as_of": plan.as_of.isoformat(), "models": [m for m in configured if not models or m in models],
            "rows": manifest["rows"],
            "frauds": manifest["frauds"], "inputs_sha256": manifest["inputs_sha256"], "blocks": manifest["blocks"],
            "evaluation": plan.evaluation.as_dict(), "slice_frauds": slice_frauds}


def _primary(summary: dict[str, Any], primary: str) -> float:
    v = summary["metrics"].get(primary, float("nan"))
    return -math.inf if v != v else v


def select_challenger(summaries: list[dict[str, Any]], cfg: TrainingConfig) -> dict[str, Any]:
    """Register the family with the best primary metric on the evaluation window as the challenger."""
    import mlflow

    best = max(summaries, key=lambda s: (_primary(s, cfg.metrics.primary), s["model"]))
    registered = registry.register(cfg.registered_model, best)
    version = str(registered.version)
    failpoint("registry.version_created")
    registry.set_alias(cfg.registered_model, registry.CHALLENGER, version)
    failpoint("registry.challenger_set")
    if "gate_decision" not in (registered.tags or {}):
        # a rerun after the gate keeps the card the gate wrote: this one, without the decision, would replace it
        card = render(best, version, cfg.registered_model, _costs(cfg), slices=cfg.slices)
        tracking.client().update_model_version(cfg.registered_model, version, description=card)
        with mlflow.start_run(run_id=best["run_id"]):
            mlflow.log_text(card, "model_card.md")
    others = {s["model"]: s["metrics"].get(cfg.metrics.primary) for s in summaries if s is not best}
    log.info("challenger: %s version %s (%s %.4f); others: %s", best["model"], version, cfg.metrics.primary,
             best["metrics"][cfg.metrics.primary], others)
    return {**best, "version": version, "registered_model": cfg.registered_model}


def _costs(cfg: TrainingConfig) -> tuple[float, float]:
    return cfg.metrics.missed_fraud_cost, cfg.metrics.false_alarm_cost


def evaluate_version(cfg: TrainingConfig, version: str, as_of: str, root: Path | None = None
                     ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Metrics of a registered version on the evaluation window of ``as_of``, at its own threshold, and
    its rows per slice band (include/training/slices.py), as the candidates of the run are measured."""
    import mlflow

    from include.pipelines.fraud.features.baseline import MODEL_INPUTS

    mv = tracking.client().get_model_version(cfg.registered_model, version)
    data = load_training_set(as_of, root)
    rows = data.test_rows(Block.from_dict(data.manifest["plan"]["evaluation"]))
    model = mlflow.pyfunc.load_model(f"models:/{cfg.registered_model}/{version}")
    scored = rows.assign(score=model.predict(rows[MODEL_INPUTS]))
    threshold = registry.parse_threshold(mv.tags.get("threshold"), f"version {version} of {cfg.registered_model}")
    return (evaluate(scored, threshold, cfg.metrics.top_k, *_costs(cfg)),
            evaluate_slices(scored, threshold, cfg.slices, cfg.metrics, cfg.source))


def run_gate(challenger: dict[str, Any], cfg: TrainingConfig, dag_run_id: str = "",
             root: Path | None = None) -> dict[str, Any]:
    """Compare the challenger with the champion on the same window; record the decision.

    A rerun returns the recorded decision: once a challenger is promoted it *is* the champion, and
    comparing it with itself would wrongly reverse the decision. The decision is recorded twice: the
    challenger version's MLflow tags (``gate_*``) and the warehouse ``promotions`` row; when the
    warehouse lacks the row (lost, or restored from an older copy) the tags are reused and the row
    rebuilt from them, so a rerun never makes a second decision.
    """
    name, as_of = cfg.registered_model, as_date(challenger["as_of"])
    recorded = warehouse.gate_decision_for(name, as_of)
    if recorded is None:
        recorded = _decision_from_tags(challenger, cfg)
    if recorded and recorded["challenger_version"] == challenger["version"]:
        log.info("decision for %s as_of=%s already recorded: %s", name, as_of, recorded["reason"])
        return _decision_xcom(recorded, challenger)

    champion = registry.alias_version(name, registry.CHAMPION)
    champion_metrics = champion_slices = None
    if champion is not None:
        champion_metrics, champion_slices = evaluate_version(cfg, str(champion.version), challenger["as_of"], root)
    decision = decide(challenger["metrics"], champion_metrics, cfg.gate, cfg.metrics.primary, cfg.slices,
                      challenger.get("slices") or [], champion_slices)
    return record_gate(decision, challenger, champion, champion_metrics, cfg, dag_run_id)


def record_gate(decision: Decision, challenger: dict[str, Any], champion, champion_metrics: dict | None,
                cfg: TrainingConfig, dag_run_id: str = "") -> dict[str, Any]:
    """Record the gate's ``decision`` on the challenger (MLflow tags, model card, the ``shadow`` alias,
    the warehouse row) and return the XCom. With ``shadow.days`` > 0 an approved challenger is not
    promoted yet when there is a champion: the decision is ``awaiting_shadow``; the first champion is
    promoted at once (there is nothing to compare it with in shadow)."""
    awaiting = cfg.shadow.days > 0 and decision.promote and champion is not None
    _record(decision, challenger, champion, champion_metrics, cfg, dag_run_id, awaiting)
    return _decision_xcom(warehouse.gate_decision_for(cfg.registered_model, as_date(challenger["as_of"])),
                          challenger)


def _decision_from_tags(challenger: dict[str, Any], cfg: TrainingConfig) -> dict[str, Any] | None:
    """The gate decision the challenger version's tags record (all of them written: ``gate_decided_at``
    is the last), written back to the warehouse; None when the gate has not decided on it."""
    name, version = cfg.registered_model, challenger["version"]
    tags = tracking.client().get_model_version(name, version).tags or {}
    if "gate_decided_at" not in tags:
        return None
    as_of = as_date(challenger["as_of"])
    promoted = tags.get("promoted_as_of") == as_of.isoformat()
    champion = tags.get("gate_champion_version")
    warehouse.record_gate_decision({
        "model_name": name, "as_of": as_of, "challenger_version": version, "challenger_run_id": challenger["run_id"],
        "champion_version": None if champion in (None, "None", "") else champion,
        "decision": tags["gate_decision"], "promoted": promoted, "reason": tags["gate_reason"],
        "primary_metric": cfg.metrics.primary, "challenger_value": challenger["metrics"].get(cfg.metrics.primary),
        "metrics_json": json.dumps({"challenger": challenger["metrics"], "champion": None}),
        "decided_at": registry.as_utc(tags["gate_decided_at"]),
        "promoted_at": registry.as_utc(tags["promoted_at"]) if promoted else None})
    log.warning("the warehouse had no gate decision for %s as_of=%s: reused the one the tags of version %s "
                "record (%s: %s); no new decision is made", name, as_of, version, tags["gate_decision"],
                tags["gate_reason"])
    return warehouse.gate_decision_for(name, as_of)


def _record(decision: Decision, challenger: dict, champion, champion_metrics, cfg: TrainingConfig,
            dag_run_id: str, awaiting: bool = False) -> None:
    name = cfg.registered_model
    verdict = shadow.AWAITING if awaiting else "promote" if decision.promote else "reject"
    reason = (f"{decision.reason}; {shadow.awaiting_note(cfg)}" if awaiting else decision.reason)
    row = {
        "model_name": name, "as_of": as_date(challenger["as_of"]), "challenger_version": challenger["version"],
        "challenger_run_id": challenger["run_id"], "champion_version": None if champion is None else str(champion.version),
        "decision": verdict, "promoted": False, "reason": reason,
        "primary_metric": decision.primary, "challenger_value": decision.challenger_value,
        "champion_value": decision.champion_value, "dag_run_id": dag_run_id,
        # slices: the bands with both models' figures and the gate's verdict on each (the ML monitor shows them)
        "metrics_json": json.dumps({"challenger": challenger["metrics"], "champion": champion_metrics,
                                    "slices": list(decision.slices), "slice_tolerance": cfg.slices.tolerance,
                                    "slice_min_positives": cfg.slices.min_positives}),
        "decided_at": dt.datetime.now(dt.UTC),
    }
    c = tracking.client()
    gate_tags = {"gate_decision": row["decision"], "gate_reason": reason,
                 "gate_champion_version": str(row["champion_version"])}
    for k, v in gate_tags.items():
        c.set_tag(challenger["run_id"], f"{tracking.TAG_PREFIX}{k}", v)
        c.set_model_version_tag(name, challenger["version"], k, v)
    # the shadow alias before the decision is complete in the registry: a rerun replays the decision as
    # recorded and does not place the alias again
    state = shadow.place(cfg, challenger["version"], as_date(challenger["as_of"]), verdict)
    card = render(challenger, challenger["version"], name, _costs(cfg),
                  {**decision.as_dict(), "promote": verdict == "promote", "reason": reason}, cfg.slices, shadow=state)
    c.update_model_version(name, challenger["version"], description=card)
    # the last tag: the decision is complete in the registry (a rerun after warehouse loss reuses it)
    c.set_model_version_tag(name, challenger["version"], "gate_decided_at", row["decided_at"].isoformat())
    failpoint("gate.half_recorded")
    # the warehouse row last: a rerun reuses a recorded decision as it is, so it must not exist before
    # the MLflow tags and the model card it stands for
    warehouse.record_gate_decision(row)
    log.info("gate: %s version %s: %s; %s", row["decision"], challenger["version"], reason, state)


def _decision_xcom(row: dict[str, Any], challenger: dict[str, Any]) -> dict[str, Any]:
    return {"promote": row["decision"] == "promote", "promoted": bool(row["promoted"]), "reason": row["reason"],
            "version": row["challenger_version"], "champion_version": row["champion_version"],
            "as_of": row["as_of"].isoformat(), "model": challenger["model"], "run_id": challenger["run_id"],
            "registered_model": challenger["registered_model"]}


def promote(decision: dict[str, Any], cfg: TrainingConfig) -> dict[str, Any]:
    """Move the champion alias to the approved challenger, tag the version (``promoted_at``,
    ``promoted_as_of``: the registry's record of it) and mark the decision as carried out.

    A decision is carried out once: one already carried out (the warehouse row, or the version's
    tags, say so), or one for a version withdrawn by a rollback after the decision, is history, not
    a command: nothing moves, and the result's ``unchanged`` says why (the operator skips). A
    promotion interrupted after the alias moved (the row not yet marked) is completed."""
    if not decision["promote"]:
        raise ValueError(f"version {decision['version']} was not accepted by the gate: {decision['reason']}")
    name, as_of, version = cfg.registered_model, as_date(decision["as_of"]), str(decision["version"])
    unchanged = replay_refusal(name, as_of, version)
    if unchanged is not None:
        log.warning("%s", unchanged)
        aliases = {a: getattr(registry.alias_version(name, a), "version", None)
                   for a in (registry.CHAMPION, registry.PREVIOUS)}
        return {**decision, "unchanged": unchanged, **{a: v and str(v) for a, v in aliases.items()}}
    aliases = registry.promote(name, version, as_of)
    tracking.client().set_tag(decision["run_id"], f"{tracking.TAG_PREFIX}promoted", "true")
    failpoint("promote.champion_set")
    warehouse.mark_promoted(name, as_of, version)
    return {**decision, "promoted": True, "unchanged": None, **aliases}


def replay_refusal(name: str, as_of: dt.date, version: str) -> str | None:
    """Why promoting ``version`` by the decision as of ``as_of`` must change nothing, or None when it
    is to be carried out (or completed: the alias already moved, the row not marked yet)."""
    recorded = warehouse.gate_decision_for(name, as_of)
    mv = tracking.client().get_model_version(name, version)
    tags = mv.tags or {}
    champion = registry.alias_version(name, registry.CHAMPION)
    now_is = f"champion is now version {champion.version}" if champion is not None else "there is no champion now"
    marked = recorded is not None and recorded["promoted"] and str(recorded["challenger_version"]) == version
    if marked or tags.get("promoted_as_of") == as_of.isoformat():
        at = (registry.as_utc(tags["promoted_at"]) if tags.get("promoted_as_of") == as_of.isoformat()
              else registry.as_utc(recorded["promoted_at"] or recorded["decided_at"]))
        if not marked and champion is not None and str(champion.version) == version:
            return None  # interrupted after the alias moved: complete it
        return (f"the promotion of version {version} as of {as_of} was carried out at "
                f"{at:%Y-%m-%d %H:%M:%S} UTC; a rerun changes nothing ({now_is})")
    if "rolled_back" in tags:
        withdrawn = registry.as_utc(tags["rolled_back"])
        decided = None if recorded is None else registry.as_utc(recorded["decided_at"])
        if decided is None or decided <= withdrawn:
            return (f"version {version} was withdrawn by a rollback at {withdrawn:%Y-%m-%d %H:%M:%S} UTC, after "
                    f"the decision as of {as_of} to promote it; a rollback stands until a new training decides "
                    f"otherwise: nothing changes ({now_is})")
    return None


def leaderboard(as_of: str, cfg: TrainingConfig) -> list[dict[str, Any]]:
    """One row per model family of the run of ``as_of``, with the gate's verdict on the challenger."""
    experiment_id = tracking.ensure_experiment(cfg.experiment)
    decision = warehouse.gate_decision_for(cfg.registered_model, as_date(as_of))
    rows = []
    for spec in cfg.models:
        run = tracking.find_run(experiment_id, run_key(as_of, spec.name))
        if run is None or f"{tracking.TAG_PREFIX}summary" not in run.data.tags:
            rows.append({"model": spec.name, "family": spec.family, "status": "not trained"})
            continue
        s = json.loads(run.data.tags[f"{tracking.TAG_PREFIX}summary"])
        is_challenger = decision is not None and decision["challenger_run_id"] == s["run_id"]
        if is_challenger:
            verdict = ("promoted: " if decision["promoted"] else
                       "accepted, awaiting promotion: " if decision["decision"] == "promote" else
                       "accepted, awaiting shadow evidence: " if decision["decision"] == shadow.AWAITING else
                       "promoted on shadow evidence: " if decision["decision"] == shadow.PROMOTED else
                       "not promoted: ") + decision["reason"]
        else:
            verdict = "not the best family this run"
        rows.append({"model": spec.name, "family": spec.family, **{k: s["metrics"].get(k) for k in
                     ("auc_roc", "average_precision", "card_precision")},
                     "train_seconds": s["tuning_seconds"] + s["fit_seconds"], "threshold": s["threshold"],
                     "challenger": is_challenger, "verdict": verdict})
    return rows


def format_leaderboard(rows: list[dict[str, Any]], top_k: int = 100) -> str:
    head = f"{'model':<10} {'family':<20} {'AUC ROC':>8} {'AP':>7} {f'CP@{top_k}':>7} {'train s':>8} {'threshold':>10}  verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "verdict" not in r:
            lines.append(f"{r['model']:<10} {r['family']:<20} {r['status']}")
            continue
        lines.append(f"{r['model']:<10} {r['family']:<20} {r['auc_roc']:>8.4f} {r['average_precision']:>7.4f} "
                     f"{r['card_precision']:>7.4f} {r['train_seconds']:>8.1f} {r['threshold']:>10.4f}  {r['verdict']}")
    return "\n".join(lines)

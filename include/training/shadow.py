"""The shadow challenger on the training side (docs/shadow.md, "Promotion on shadow evidence").

After the gate (include/training/pipeline.py), :func:`place` gives a challenger that is not promoted the
registry alias ``shadow``: the scoring DAG ``shadow_scoring`` scores it every night beside the champion,
and monitoring writes both models' realised figures by label-arrival day to the warehouse's
``performance_days`` (roles ``champion`` and ``shadow``). With ``shadow.days`` > 0 in training.yaml, a
challenger the gate approves is not promoted at once: its decision is ``awaiting_shadow``, and
:func:`review` (monitoring's task ``review_shadow``, every night) promotes it once it has ``days``
label-arrival days of realised figures for both models (with ``min_frauds`` labelled frauds over them)
and its mean ``metric`` is not below the champion's by more than ``tolerance``, else refuses it.

Decisions (the ``decision`` of the training run's ``promotions`` row and the version's ``gate_decision``
tag): ``awaiting_shadow`` -> ``shadow_promoted`` (the promotion itself is a row as of the review day,
include.warehouse.record_shadow_promotion, which governs from the next day as every promotion) or
``shadow_refused``. A rejected challenger is scored in shadow for observation only, and does not take
the alias from one awaiting its review.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from include import registry, warehouse
from include.drift.performance import CHAMPION_ROLE, SHADOW_ROLE
from include.faults import failpoint
from include.storage import as_date
from include.training import tracking
from include.training.config import TrainingConfig

log = logging.getLogger(__name__)

AWAITING, PROMOTED, REFUSED = "awaiting_shadow", "shadow_promoted", "shadow_refused"
# the version's tags of a review's outcome (written before anything moves: a rerun completes it)
OUTCOME_TAG, REVIEWED_TAG, REASON_TAG = "shadow_outcome", "shadow_reviewed_as_of", "shadow_review"


def awaiting_note(cfg: TrainingConfig) -> str:
    s = cfg.shadow
    return (f"awaiting shadow evidence: promoted after {s.days} label day(s) with at least {s.min_frauds} labelled "
            f"frauds if its realised {cfg.shadow_metric} is not below the champion's by more than {s.tolerance}")


def _gate_row(name: str, version: str) -> dict[str, Any] | None:
    """The newest gate decision of a training run on ``version`` (not a rollback, not a shadow promotion)."""
    rows = [r for r in warehouse.promotion_history(name) if str(r["challenger_version"]) == str(version)
            and r["decision"] != "rollback" and r.get("dag_run_id") != warehouse.SHADOW_REVIEW]
    return rows[-1] if rows else None


def place(cfg: TrainingConfig, version: str, as_of: dt.date, decision: str) -> str:
    """After the gate's ``decision`` on ``version`` (as of ``as_of``): point ``shadow`` at it unless it is
    promoted at once, or it was rejected while another version awaits its shadow review. A version
    awaiting review that a newer approved challenger replaces is refused as superseded. Returns the
    version's shadow state in one line (the model card's)."""
    name = cfg.registered_model
    if decision == "promote":
        return "promoted at once (shadow.days is 0, or the first champion): not scored in shadow"
    current = registry.alias_version(name, registry.SHADOW)
    other = None if current is None or str(current.version) == str(version) else _gate_row(name, current.version)
    if other is not None and other["decision"] == AWAITING and decision != AWAITING:
        return (f"not scored in shadow: version {current.version} holds the shadow alias, awaiting its shadow "
                f"review (trained as of {other['as_of']})")
    registry.set_alias(name, registry.SHADOW, str(version))
    if other is not None and other["decision"] == AWAITING:
        _close(cfg, other, REFUSED, f"superseded in shadow by version {version} (trained as of {as_of})")
    start = as_of + dt.timedelta(days=1)
    if decision == AWAITING:
        return f"scored in shadow beside the champion from {start}; {awaiting_note(cfg)}"
    return f"scored in shadow beside the champion from {start}, for observation only (not promoted on shadow evidence)"


def _close(cfg: TrainingConfig, row: dict[str, Any], outcome: str, note: str) -> None:
    """The training run's decision on the version becomes ``outcome`` (tags and warehouse row), its reason
    followed by ``note``; once (a decision already closed is left as it is)."""
    if row["decision"] == outcome:
        return
    name, version = cfg.registered_model, str(row["challenger_version"])
    reason = f"{row['reason']}; {note}"
    c = tracking.client()
    c.set_model_version_tag(name, version, "gate_decision", outcome)
    c.set_model_version_tag(name, version, "gate_reason", reason)
    warehouse.record_gate_decision({**{k: v for k, v in row.items() if k != "id"}, "decision": outcome,
                                    "reason": reason})


def evidence(cfg: TrainingConfig, version: str, since: dt.date, day: dt.date) -> dict[str, Any]:
    """The realised ``shadow_metric`` of the shadow ``version`` and of the champion on the label-arrival
    days up to ``day`` whose transactions were scored from ``since`` on, the days both have it."""
    metric = cfg.shadow_metric

    def realised(role: str) -> dict[dt.date, dict[str, Any]]:
        return {as_date(r["ds"]): r for r in rows if r["role"] == role and r.get("realised_at") is not None
                and r.get(metric) is not None and as_date(r["ds"]) <= day
                and (role != SHADOW_ROLE or str(r["model_version"]) == str(version))}

    rows = warehouse.performance_between(since, day, cfg.registered_model) if since <= day else []
    mine, theirs = realised(SHADOW_ROLE), realised(CHAMPION_ROLE)
    days = sorted(set(mine) & set(theirs))
    out: dict[str, Any] = {"metric": metric, "days": len(days), "frauds": sum(int(mine[d]["n_frauds"] or 0) for d in days),
                           "first": days[0].isoformat() if days else None, "last": days[-1].isoformat() if days else None,
                           "shadow_mean": None, "champion_mean": None,
                           "champion_versions": sorted({str(theirs[d]["model_version"]) for d in days}, key=int)}
    if days:
        out["shadow_mean"] = sum(float(mine[d][metric]) for d in days) / len(days)
        out["champion_mean"] = sum(float(theirs[d][metric]) for d in days) / len(days)
    return out


def _figures(e: dict[str, Any], version: str) -> str:
    return (f"realised {e['metric']} over {e['days']} label day(s) {e['first']}..{e['last']} ({e['frauds']} labelled "
            f"frauds): shadow version {version} mean {e['shadow_mean']:.4f} vs champion mean {e['champion_mean']:.4f} "
            f"(version {', '.join(e['champion_versions'])}), {e['shadow_mean'] - e['champion_mean']:+.4f}")


def review(cfg: TrainingConfig, day: dt.date | str) -> dict[str, Any]:
    """Review the shadow version on the evidence up to label-arrival ``day`` (module docstring).

    Returns ``{"state", "promoted", "version", "day", "reason", ...evidence}``; ``state``: ``none`` (no
    shadow), ``observation`` (a shadow that is not awaiting a review: its figures only), ``waiting``
    ("3 of 7 days"; nothing changes), ``promoted`` (champion moved, as of ``day``: it governs from the
    next day) or ``refused`` (alias ``shadow`` removed). A rerun changes nothing; one interrupted after
    the outcome was tagged on the version completes it."""
    name, day = cfg.registered_model, as_date(day)
    current = registry.alias_version(name, registry.SHADOW)
    if current is None:
        return {"state": "none", "promoted": False, "version": None, "day": day.isoformat(),
                "reason": f"no version of {name} holds the shadow alias: nothing to review"}
    version, tags = str(current.version), current.tags or {}
    row = _gate_row(name, version)
    if OUTCOME_TAG in tags:  # decided by an earlier review that did not finish
        return _carry_out(cfg, current, row, tags[OUTCOME_TAG], as_date(tags[REVIEWED_TAG]), tags[REASON_TAG])
    champion = registry.alias_version(name, registry.CHAMPION)
    if champion is not None and str(champion.version) == version:  # promoted otherwise (by hand, a training)
        registry.remove_alias(name, registry.SHADOW)
        return {"state": "none", "promoted": False, "version": version, "day": day.isoformat(),
                "reason": f"version {version} is the champion: nothing to review in shadow (alias shadow removed)"}
    since = (as_date(row["as_of"]) if row else as_date(tags.get("as_of", day.isoformat()))) + dt.timedelta(days=1)
    e = evidence(cfg, version, since, day)
    base = {"version": version, "day": day.isoformat(), "promoted": False, **e}
    if row is None or row["decision"] != AWAITING:
        figures = _figures(e, version) if e["days"] else "no label day with realised figures for both models yet"
        why = "no gate decision recorded" if row is None else f"gate decision {row['decision']}"
        return {**base, "state": "observation",
                "reason": f"version {version} is scored in shadow for observation ({why}): {figures}"}
    needed, s = max(cfg.shadow.days, 1), cfg.shadow
    if e["days"] < needed or e["frauds"] < s.min_frauds:
        return {**base, "state": "waiting",
                "reason": f"version {version} awaits shadow evidence: {min(e['days'], needed)} of {needed} label days, "
                          f"{e['frauds']} of {s.min_frauds} labelled frauds (since {since})"}
    gain = e["shadow_mean"] - e["champion_mean"]
    if gain >= -s.tolerance:
        outcome = "promoted"
        reason = (f"promoted on shadow evidence as of {day}: {_figures(e, version)} >= -{s.tolerance} "
                  f"(shadow.tolerance)")
    else:
        outcome = "refused"
        reason = (f"refused on shadow evidence as of {day}: {_figures(e, version)}, below the champion's by more "
                  f"than shadow.tolerance {s.tolerance}")
    c = tracking.client()
    for key, value in ((REASON_TAG, reason), (REVIEWED_TAG, day.isoformat()), (OUTCOME_TAG, outcome)):
        c.set_model_version_tag(name, version, key, value)  # the outcome last: its presence means all are there
    failpoint("shadow.outcome_tagged")
    return {**e, **_carry_out(cfg, current, row, outcome, day, reason, e)}


def _carry_out(cfg: TrainingConfig, mv, row: dict[str, Any] | None, outcome: str, day: dt.date,
               reason: str, e: dict[str, Any] | None = None) -> dict[str, Any]:
    """Carry out a review's ``outcome`` on the shadow version ``mv``, each step idempotent: the champion
    alias and the promotion row as of ``day`` (promoted), the training decision closed, the card, then
    the shadow alias removed."""
    name, version = cfg.registered_model, str(mv.version)
    champion = registry.alias_version(name, registry.CHAMPION)
    before = None if champion is None else str(champion.version)
    if outcome == "promoted":
        aliases = registry.promote(name, version, day)
        failpoint("shadow.champion_set")
        if before == version:  # a completed rerun: the champion it replaced is previous_champion now
            before = aliases.get("previous_champion")
        now = dt.datetime.now(dt.UTC)
        warehouse.record_shadow_promotion({
            "model_name": name, "as_of": day, "challenger_version": version, "challenger_run_id": mv.run_id or "",
            "champion_version": before, "reason": reason, "primary_metric": cfg.shadow_metric,
            "challenger_value": (e or {}).get("shadow_mean"), "champion_value": (e or {}).get("champion_mean"),
            "decided_at": now, "promoted_at": now})
    if row is not None:
        _close(cfg, row, PROMOTED if outcome == "promoted" else REFUSED, reason)
    c = tracking.client()
    description = c.get_model_version(name, version).description or ""
    if reason not in description:
        c.update_model_version(name, version, description=f"{description}\n## Shadow review\n{reason}\n")
    registry.remove_alias(name, registry.SHADOW)
    log.info("shadow review of %s version %s: %s", name, version, reason)
    return {"state": outcome, "promoted": outcome == "promoted", "version": version, "day": day.isoformat(),
            "champion_version": version if outcome == "promoted" else before, "reason": reason}

"""The champion/challenger promotion gate: a pure decision over two sets of metrics computed on the
same evaluation window. Everything it decides is explained in ``reason``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from include.training.config import GateConfig, SlicesConfig

GUARDRAILS = {"auc_roc": "auc_roc_tolerance", "card_precision": "card_precision_tolerance"}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    primary: str
    challenger_value: float
    champion_value: float | None
    # one row per slice band: the challenger's figures, the champion's primary metric, the drop and
    # ``verdict`` (holds, refused, or why it is not gated)
    slices: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return asdict(self)


def _bad(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def slice_verdicts(challenger: list[dict[str, Any]], champion: list[dict[str, Any]] | None, slices: SlicesConfig,
                   primary: str) -> tuple[dict[str, Any], ...]:
    """The challenger's slice rows with the champion's ``primary`` on the same band, the ``drop`` and a
    ``verdict``: "refused" when the drop exceeds ``slices.tolerance`` on a band with at least
    ``slices.min_positives`` frauds, "holds" when it does not, else "not gated: <why>"."""
    theirs = {(r["slice"], r["band"]): r for r in champion or []}
    out = []
    for row in challenger:
        other = theirs.get((row["slice"], row["band"]))
        champ = None if other is None else other.get(primary)
        drop = None if _bad(champ) or _bad(row.get(primary)) else round(champ - row[primary], 6)
        if champion is None:
            verdict = "not gated: no champion to compare with"
        elif int(row["n_frauds"]) < slices.min_positives:
            verdict = f"not gated: {int(row['n_frauds'])} frauds < {slices.min_positives}"
        elif drop is None:
            verdict = f"not gated: {primary} undefined for the {'champion' if _bad(champ) else 'challenger'}"
        else:
            verdict = "refused" if drop > slices.tolerance else "holds"
        out.append({**row, f"champion_{primary}": champ, "drop": drop, "verdict": verdict})
    return tuple(out)


def refused_slices(verdicts: tuple[dict[str, Any], ...], slices: SlicesConfig, primary: str) -> str:
    """The refusal naming every refused band, its figures and the tolerance; "" when none is refused."""
    refused = [r for r in verdicts if r["verdict"] == "refused"]
    return "; ".join(f"slice {r['slice']}={r['band']} ({int(r['n_frauds'])} frauds): {primary} {r[primary]:.4f} vs "
                     f"champion {r[f'champion_{primary}']:.4f}, a drop of {r['drop']:.4f} > slice tolerance "
                     f"{slices.tolerance}" for r in refused)


def decide(challenger: dict[str, float], champion: dict[str, float] | None, gate: GateConfig,
           primary: str = "average_precision", slices: SlicesConfig | None = None,
           challenger_slices: list[dict[str, Any]] | None = None,
           champion_slices: list[dict[str, Any]] | None = None) -> Decision:
    """Promote the challenger or not. ``champion`` is None when there is no champion yet.

    ``challenger_slices``/``champion_slices``: the rows of include/training/slices.py:evaluate_slices on
    the same window; with ``slices`` (the configuration) every band is reported in the decision, and a
    challenger that passes the margin and the guardrails is still refused when a gated band drops."""
    value = challenger.get(primary)
    champ_value = None if champion is None else champion.get(primary)
    slices = slices or SlicesConfig()
    verdicts = slice_verdicts(challenger_slices or [], None if champion is None else champion_slices or [],
                              slices, primary)

    def no(reason: str) -> Decision:
        return Decision(False, reason, primary, value, champ_value, verdicts)

    frauds = int(challenger.get("n_frauds", 0))
    if frauds < gate.min_eval_frauds:
        return no(f"only {frauds} labelled frauds in the evaluation window (minimum {gate.min_eval_frauds}): "
                  "too few to trust any comparison")
    if _bad(value):
        return no(f"challenger {primary} is undefined on the evaluation window")

    if champion is None:
        below = [f"{m} {challenger.get(m, float('nan')):.4f} < floor {f}" for m, f in gate.floor.items()
                 if _bad(challenger.get(m)) or challenger[m] < f]
        if below:
            return no("first model below the absolute floor: " + "; ".join(below))
        floors = ", ".join(f"{m} {challenger[m]:.4f} >= {f}" for m, f in gate.floor.items())
        return Decision(True, f"first champion: {floors}{_reported(verdicts)}", primary, value, None, verdicts)

    if _bad(champ_value):
        return Decision(True, f"champion {primary} is undefined on this window; challenger {value:.4f}",
                        primary, value, champ_value, verdicts)
    gain = value - champ_value
    if gain < gate.min_improvement:
        return no(f"{primary} {value:.4f} vs champion {champ_value:.4f}: {gain:+.4f} is below the required "
                  f"margin {gate.min_improvement:+.4f}")
    for metric, tolerance_name in GUARDRAILS.items():
        tolerance = getattr(gate, tolerance_name)
        drop = champion.get(metric, float("nan")) - challenger.get(metric, float("nan"))
        if not _bad(drop) and drop > tolerance:
            return no(f"{primary} improves by {gain:+.4f} but guardrail {metric} drops by {drop:.4f} "
                      f"(tolerance {tolerance})")
    refused = refused_slices(verdicts, slices, primary)
    if refused:
        return no(f"{primary} improves by {gain:+.4f} and the guardrails hold, but {refused}")
    return Decision(True, f"{primary} {value:.4f} vs champion {champ_value:.4f}: {gain:+.4f} >= margin "
                    f"{gate.min_improvement:+.4f}; guardrails auc_roc and card_precision hold"
                    f"{_held(verdicts, slices)}", primary, value, champ_value, verdicts)


def _reported(verdicts: tuple[dict[str, Any], ...]) -> str:
    return f"; {len(verdicts)} slice bands reported, not gated (no champion)" if verdicts else ""


def _held(verdicts: tuple[dict[str, Any], ...], slices: SlicesConfig) -> str:
    if not verdicts:
        return ""
    gated = sum(r["verdict"] == "holds" for r in verdicts)
    return (f"; {gated} slice band(s) within {slices.tolerance} of the champion, {len(verdicts) - gated} "
            f"not gated (fewer than {slices.min_positives} frauds or undefined)")

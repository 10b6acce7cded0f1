"""The champion/challenger promotion gate: a pure decision over two sets of metrics computed on the
same evaluation window. Everything it decides is explained in ``reason``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from include.training.config import GateConfig

GUARDRAILS = {"auc_roc": "auc_roc_tolerance", "card_precision": "card_precision_tolerance"}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    primary: str
    challenger_value: float
    champion_value: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def _bad(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def decide(challenger: dict[str, float], champion: dict[str, float] | None, gate: GateConfig,
           primary: str = "average_precision") -> Decision:
    """Promote the challenger or not. ``champion`` is None when there is no champion yet."""
    value = challenger.get(primary)
    champ_value = None if champion is None else champion.get(primary)

    def no(reason: str) -> Decision:
        return Decision(False, reason, primary, value, champ_value)

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
        return Decision(True, f"first champion: {floors}", primary, value, None)

    if _bad(champ_value):
        return Decision(True, f"champion {primary} is undefined on this window; challenger {value:.4f}",
                        primary, value, champ_value)
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
    return Decision(True, f"{primary} {value:.4f} vs champion {champ_value:.4f}: {gain:+.4f} >= margin "
                    f"{gate.min_improvement:+.4f}; guardrails auc_roc and card_precision hold", primary, value,
                    champ_value)

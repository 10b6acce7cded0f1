"""A Markdown model card per model version: what it was trained on, how it scored, what it decides
and what it cannot be trusted for. It is the version's description in the registry and an artifact of its run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.training.config import SlicesConfig

LIMITATIONS = """\
- Trained and evaluated on simulated card transactions (shared/SIMULATOR.md); figures on real data will differ.
- Labels arrive 7 days late: the newest week is never in training, and the evaluation window ends 7 days
  before the training run.
- Evaluation removes cards already known to be compromised, as the protocol prescribes; raw alert volumes
  in production include them.
- The decision threshold minimises expected cost (missed fraud {missed:,.0f}, false alarm {false_alarm:,.0f})
  on the validation folds; if those costs change, so does the right threshold.
- Scores are probabilities under the class weighting said above; calibration is shown, not corrected.
"""


def render(summary: dict[str, Any], version: str, registered_model: str, costs: tuple[float, float],
           decision: dict[str, Any] | None = None, slices: SlicesConfig | None = None,
           shadow: str | None = None) -> str:
    """The card of ``version``; ``decision``: the gate's (``promote``, ``reason``); ``shadow``: the
    version's shadow state after the gate (include/training/shadow.py:place), one line."""
    m = summary["metrics"]
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in m.items())
    params = ", ".join(f"{k}={v}" for k, v in summary["best_params"].items())
    text = f"""# {registered_model} version {version}: {summary['model']} ({summary['family']})

| | |
|---|---|
| training run | `{summary['run_id']}` (as of {summary['as_of']}) |
| training window | {summary['training_window']} ({summary['train_rows']:,} transactions) |
| evaluation window | {summary['evaluation_window']} (known-compromised cards removed) |
| input partitions (sha256) | `{summary['inputs_sha256'][:16]}` |
| tuning | {summary['trials']} Optuna trials, {summary['tuning_seconds']} s; best: {params}{_capped(summary)} |
| decision threshold | {summary['threshold']:.6f} (flag when score >= threshold) |

## Evaluation metrics
| metric | value |
|---|---|
{rows}

{_weeks(summary.get("weeks"))}{_slices(summary, decision, slices)}{_attributions(summary.get("attributions"))}## Limitations
{LIMITATIONS.format(missed=costs[0], false_alarm=costs[1])}"""
    if decision:
        text += f"\n## Promotion decision\n{'promoted' if decision['promote'] else 'not promoted'}: {decision['reason']}\n"
    if shadow:
        text += f"\n## Shadow\n{shadow}\n"
    return text


def _attributions(attributions: dict[str, Any] | None, top: int = 10) -> str:
    """What drives the scores: mean |contribution| per feature on the evaluation rows (docs/reasons.md)."""
    if not attributions:  # a version trained before the card had this section
        return ""
    ranked = list(attributions["mean_abs"].items())
    lines = "\n".join(f"| {i} | {name} | {value:.4f} |" for i, (name, value) in enumerate(ranked[:top], 1))
    return ("## What drives the scores\n"
            f"Mean absolute contribution to the {attributions['unit']} of fraud per feature, on "
            f"{attributions['rows']:,} evaluation rows (TreeSHAP for the boosted trees, Integrated Gradients "
            "otherwise; the ensemble by the rescale rule of its members: docs/reasons.md). The summary plot "
            "is the run's `explain/attributions.png`, the full table `explain/global_attributions.json`; "
            "each flagged transaction's own top 3 reasons are stored with its prediction.\n\n"
            "| rank | feature | mean abs contribution |\n|---|---|---|\n" + lines + "\n\n")


def _capped(summary: dict[str, Any]) -> str:
    """A search the safety cap shortened depends on the machine's speed: the card says so."""
    if not summary.get("tuning_capped"):  # also a version trained before the cap was recorded
        return ""
    return (f" (**stopped by the safety cap** of {summary['safety_timeout_seconds']:.0f} s after "
            f"{summary['trials']} of {summary['trials_planned']} trials: not reproducible on another machine)")


def _weeks(weeks: dict[str, Any] | None) -> str:
    """The chosen parameters week by week (tuning folds and evaluation week), as the handbook measures."""
    if not weeks:  # a version trained before the card had this section
        return ""
    names = {"auc_roc": "AUC ROC", "average_precision": "AP", "card_precision": "CP@k"}

    def cell(v: float) -> str:
        return "n/a" if v != v else f"{v:.4f}"

    lines = [f"| {r['test_window']} | " + " | ".join(cell(r[k]) for k in names) + " |" for r in weeks["rows"]]
    spread = " | ".join(f"{cell(weeks['summary'][k]['mean'])} ± {cell(weeks['summary'][k]['std'])}" for k in names)
    return ("## Across test weeks\n"
            "The chosen parameters on each prequential test week (the tuning folds, then the evaluation week), "
            "each with known-compromised cards removed day by day as the handbook's protocol does.\n\n"
            "| test week | " + " | ".join(names.values()) + " |\n|---|---|---|---|\n" + "\n".join(lines)
            + f"\n| mean ± std | {spread} |\n\n")


def _slices(summary: dict[str, Any], decision: dict[str, Any] | None, slices: SlicesConfig | None) -> str:
    """The evaluation window per slice band (docs/slices.md); after the gate, with the champion's
    primary metric on the same band, the drop and the gate's verdict on it."""
    rows = (decision or {}).get("slices") or summary.get("slices")
    if not rows:  # no slices configured, or a version trained before slices
        return ""
    business = slices.business_metric if slices is not None else "expected_cost"
    primary = decision["primary"] if decision else None
    gated = primary is not None and any(f"champion_{primary}" in r for r in rows)

    def cell(v: Any) -> str:
        return "n/a" if v is None or v != v else f"{v:.4f}" if isinstance(v, float) else str(v)

    head = ["slice", "band", "transactions", "frauds", "AUC ROC", "AP", business]
    if gated:
        head += [f"champion {primary}", "drop", "gate"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        values = [r["slice"], r["band"], r["n_transactions"], r["n_frauds"], r["auc_roc"], r["average_precision"],
                  r[business]]
        if gated:
            values += [r[f"champion_{primary}"], r["drop"], r["verdict"]]
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    rule = (f" The gate refuses a challenger whose {primary or 'primary metric'} drops by more than "
            f"{slices.tolerance} below the champion's on a band with at least {slices.min_positives} frauds; "
            "thinner bands are reported, not gated." if slices is not None else "")
    return ("## By slice\nThe evaluation window cut by the slices of the training configuration, at the decision "
            f"threshold.{rule}\n\n" + "\n".join(lines) + "\n\n")

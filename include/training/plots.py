"""Evaluation plots logged with every model run (matplotlib, no display needed)."""

from __future__ import annotations

import numpy as np


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.5), constrained_layout=True)


def roc_pr_figure(y, scores, title: str):
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    fig, (roc, pr) = _figure(2)
    fpr, tpr, _ = roc_curve(y, scores)
    roc.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, scores):.3f}")
    roc.plot([0, 1], [0, 1], ls="--", c="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC: {title}")
    precision, recall, _ = precision_recall_curve(y, scores)
    pr.plot(recall, precision, label=f"AP {average_precision_score(y, scores):.3f}")
    pr.axhline(np.mean(y), ls="--", c="grey", label="fraud rate")
    pr.set(xlabel="recall", ylabel="precision", title=f"precision-recall: {title}")
    for ax in (roc, pr):
        ax.legend(loc="best")
    return fig


def calibration_figure(y, scores, title: str, bins: int = 10):
    from sklearn.calibration import calibration_curve

    fig, ax = _figure()
    observed, predicted = calibration_curve(y, scores, n_bins=bins, strategy="quantile")
    ax.plot(predicted, observed, marker="o", label="model")
    top = max(float(np.max(predicted, initial=0)), float(np.max(observed, initial=0)), 1e-3)
    ax.plot([0, top], [0, top], ls="--", c="grey", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraud rate", title=f"calibration: {title}")
    ax.legend(loc="best")
    return fig


def importance_figure(importance: dict[str, float], title: str):
    fig, ax = _figure()
    names = sorted(importance, key=importance.get)
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="drop in average precision when the feature is shuffled", title=f"permutation importance: {title}")
    return fig


def attribution_figure(result: dict, title: str, features: int = 12):
    """Summary of per-row attributions (include.training.explain.global_attributions): one row of
    dots per feature, the ``features`` largest by mean |contribution| on top, each dot a sampled
    transaction at its contribution (log-odds), coloured by the rank of its input value (blue low,
    red high); the mean |contribution| is written beside each feature's name."""
    fig, ax = _figure()
    names = [r["feature"] for r in result["table"][:features]]
    order = {r["feature"]: i for i, r in enumerate(result["table"])}
    contribs, values = result["contributions"], result["values"]
    rng = np.random.default_rng(0)  # the vertical jitter only
    columns = {name: j for j, name in enumerate(result["inputs"])}
    for y, name in enumerate(reversed(names)):
        j = columns[name]
        ranks = np.argsort(np.argsort(values[:, j], kind="stable"), kind="stable") / max(len(values) - 1, 1)
        ax.scatter(contribs[:, j], y + rng.uniform(-0.3, 0.3, len(contribs)), c=ranks, cmap="coolwarm", s=4,
                   alpha=0.6, linewidths=0, vmin=0, vmax=1)
    ax.set_yticks(range(len(names)),
                  [f"{n} ({result['table'][order[n]]['mean_abs_contribution']:.3f})" for n in reversed(names)])
    ax.axvline(0, c="grey", lw=0.8)
    ax.set(xlabel=f"contribution to the {result['unit']} of fraud (colour: input value rank, low blue, high red)",
           title=f"attributions: {title} ({result['rows']:,} evaluation rows)")
    return fig

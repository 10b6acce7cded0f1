"""Train one model family for one training run: tune on the prequential folds, fit on the
evaluation block's training window, evaluate on its test window, log everything to MLflow.

Idempotent: the MLflow run is keyed by (as_of, model). A finished run is reused as it is; an
unfinished one (a killed task) is discarded with its trials and the family is trained again.
"""

from __future__ import annotations

import json
import logging
import resource
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from include.drift.reference import fit_distribution, fit_references
from include.faults import failpoint
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training import tracking
from include.training.config import ENSEMBLE, ModelSpec, TrainingConfig
from include.training.dataset import LABEL, TrainingSet, load_training_set
from include.training.explain import global_attributions
from include.training.metrics import cost_minimising_threshold, evaluate
from include.training.metrics import rounded as _round
from include.training.models import pinned_threads
from include.training.slices import evaluate_slices
from include.training.slices import mlflow_metrics as slice_metrics
from include.training.tuning import TrialResult, best_trial, capped, fit_and_score, planned_trials, tune
from include.training.windows import Block

log = logging.getLogger(__name__)

PIPELINE = "training"
SCORE = "score"
REFERENCE_ARTIFACT = "monitoring/reference.json"
ATTRIBUTIONS_ARTIFACT = "explain/global_attributions.json"  # mean |contribution| per feature (docs/reasons.md)
SLICES_ARTIFACT = "evaluation/slices.json"
IMPORTANCE_SAMPLE_ROWS = 30_000
# what a model version needs to load; pinned to the versions it was trained with
RUNTIME_PACKAGES = {
    "logistic_regression": ["scikit-learn"],
    "xgboost": ["xgboost-cpu"],
    "lightgbm": ["lightgbm"],
    "pytorch_mlp": ["torch"],
}


def run_key(as_of: str, model: str, kind: str = "model") -> dict[str, str]:
    """The tags that identify a model run (kind "model") or its Optuna trials (kind "trial")."""
    return {"pipeline": PIPELINE, "as_of": as_of, "model": model, "kind": kind}


def train_family(name: str, as_of: str, cfg: TrainingConfig, root: Path | None = None) -> dict[str, Any]:
    """Train, evaluate and log model ``name`` of ``cfg`` for the run of day ``as_of``; returns a small summary."""
    import mlflow

    spec = cfg.spec(name)
    experiment_id = tracking.ensure_experiment(cfg.experiment)
    existing = tracking.find_run(experiment_id, run_key(as_of, spec.name))
    if existing is not None and existing.info.status == "FINISHED":
        log.info("%s for as_of=%s already trained in run %s: reusing it", name, as_of, existing.info.run_id)
        summary = json.loads(existing.data.tags[f"{tracking.TAG_PREFIX}summary"])
        return {**summary, "slices": logged_slices(existing.info.run_id)}
    if existing is not None:
        tracking.delete_run_tree(existing)

    data = load_training_set(as_of, root)
    plan = data.manifest["plan"]
    run_tags = tracking.tags(**run_key(as_of, spec.name), family=spec.family,
                             inputs_sha256=data.manifest["inputs_sha256"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name} {as_of}", tags=run_tags) as run:
        mlflow.log_params({
            "family": spec.family, "class_weight": spec.class_weight, "seed": cfg.seed,
            "primary_metric": cfg.metrics.primary, "top_k": cfg.metrics.top_k,
            "train_window": f"{plan['evaluation']['train_start']}..{plan['evaluation']['train_end']}",
            "evaluation_window": f"{plan['evaluation']['test_start']}..{plan['evaluation']['test_end']}",
            "validation_folds": len(plan["folds"]), "inputs_sha256": data.manifest["inputs_sha256"],
            "features": ",".join(MODEL_INPUTS), "tuning_trials_budget": cfg.trials_for(spec),
            "tuning_safety_timeout_seconds": cfg.safety_timeout_seconds, "threads": cfg.threads,
        })
        summary = _train_and_log(spec, data, cfg, as_of, run.info.run_id, experiment_id)
        # the slice rows live in their artifact: with them the tag could pass MLflow's 8,000 characters
        mlflow.set_tag(f"{tracking.TAG_PREFIX}summary", json.dumps({k: v for k, v in summary.items() if k != "slices"}))
    failpoint("training.run_logged")
    return summary


def logged_slices(run_id: str) -> list[dict[str, Any]]:
    """The slice rows a finished run logged (``SLICES_ARTIFACT``); [] for a run trained before slices."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{SLICES_ARTIFACT}")["rows"]
    except (OSError, MlflowException):
        return []


def _train_and_log(spec: ModelSpec, data: TrainingSet, cfg: TrainingConfig, as_of: str, run_id: str,
                   experiment_id: str) -> dict[str, Any]:
    import mlflow

    plan = data.manifest["plan"]
    folds = [(data.train_rows(Block.from_dict(b)), data.test_rows(Block.from_dict(b))) for b in plan["folds"]]
    evaluation_block = Block.from_dict(plan["evaluation"])

    def log_trial(trial: TrialResult) -> None:
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name} trial {trial.number}", nested=True,
                              tags=tracking.tags(trial=trial.number, **run_key(as_of, spec.name, "trial"))):
            mlflow.log_params(trial.params)
            mlflow.log_metric(f"validation_{cfg.metrics.primary}", trial.value)
            for i, m in enumerate(trial.fold_metrics, 1):
                mlflow.log_metrics({f"fold_{i}_{k}": v for k, v in m.items() if k in _HEADLINE})
            mlflow.log_metric("seconds", trial.seconds)

    t0 = time.perf_counter()
    trials = tune(spec, folds, cfg.metrics, trials=cfg.trials_for(spec),
                  safety_timeout_seconds=cfg.safety_timeout_seconds, seed=cfg.seed, threads=cfg.threads,
                  on_trial=log_trial)
    tuning_seconds = time.perf_counter() - t0
    tuning_capped = capped(spec, cfg.trials_for(spec), trials)
    # recorded on every run, so that a search the safety cap shortened (not reproducible) can be found
    mlflow.set_tags(tracking.tags(tuning_capped=str(tuning_capped).lower()))
    mlflow.log_params({"tuning_trials_planned": planned_trials(spec, cfg.trials_for(spec)),
                       "tuning_trials_done": len(trials)})
    best = best_trial(trials)
    # the decision threshold minimises expected cost on the validation folds, never on the evaluation window
    choice = cost_minimising_threshold(best.validation[LABEL], best.validation[SCORE],
                                       cfg.metrics.missed_fraud_cost, cfg.metrics.false_alarm_cost)

    train, test = data.train_rows(evaluation_block), data.test_rows(evaluation_block)
    t0 = time.perf_counter()
    model, scored = fit_and_score(spec, best.params, train, test, cfg.seed, threads=cfg.threads)
    fit_seconds = time.perf_counter() - t0
    metrics = evaluate(scored, choice.threshold, cfg.metrics.top_k, cfg.metrics.missed_fraud_cost,
                       cfg.metrics.false_alarm_cost)
    slices = evaluate_slices(scored, choice.threshold, cfg.slices, cfg.metrics, cfg.source)
    with pinned_threads(cfg.threads):  # the reference distribution and the importances, as reproducible
        train_scores = model.predict_proba(train[MODEL_INPUTS])
        importance = permutation_importance(model, test, cfg.seed)
        attributions = global_attributions(model, test[MODEL_INPUTS].to_numpy(np.float32), MODEL_INPUTS, cfg.seed)

    mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
    mlflow.log_params({"imbalance_handling": _imbalance_note(spec, train[LABEL].to_numpy()),
                       "train_rows": len(train), "evaluation_rows": len(test)})
    mlflow.log_metrics({**metrics, "decision_threshold": choice.threshold,
                        "validation_expected_cost": choice.expected_cost,
                        f"validation_{cfg.metrics.primary}": best.value, "tuning_seconds": tuning_seconds,
                        "fit_seconds": fit_seconds, "trials": len(trials),
                        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    if hasattr(model, "epochs_"):
        mlflow.log_metric("epochs", model.epochs_)
        mlflow.log_param("device", model.device_)

    mlflow.log_metrics(slice_metrics(slices))
    mlflow.log_dict({"threshold": choice.threshold, "business_metric": cfg.slices.business_metric,
                     "rows": slices}, SLICES_ARTIFACT)
    _log_figures(spec, scored, importance)
    reference = {
        "features": fit_references(train, MODEL_INPUTS),
        "score": fit_distribution(train_scores).as_dict(),
        "training_window": f"{evaluation_block.train_start}..{evaluation_block.train_end}",
        "rows": len(train),
    }
    mlflow.log_dict(reference, REFERENCE_ARTIFACT)
    mlflow.log_dict({"permutation_importance": importance}, "evaluation/feature_importance.json")
    _log_attributions(spec, attributions)
    model_uri = _log_model(spec, model, train)

    summary = {
        "model": spec.name, "family": spec.family, "run_id": run_id, "model_uri": model_uri, "as_of": as_of,
        "metrics": {k: _round(v) for k, v in metrics.items()}, "threshold": _round(choice.threshold),
        "validation_primary": _round(best.value), "best_params": best.params, "trials": len(trials),
        "trials_planned": planned_trials(spec, cfg.trials_for(spec)), "tuning_capped": tuning_capped,
        "safety_timeout_seconds": cfg.safety_timeout_seconds, "threads": cfg.threads,
        "tuning_seconds": round(tuning_seconds, 1), "fit_seconds": round(fit_seconds, 1),
        "training_window": reference["training_window"],
        "evaluation_window": f"{evaluation_block.test_start}..{evaluation_block.test_end}",
        "train_rows": len(train), "inputs_sha256": data.manifest["inputs_sha256"],
        "weeks": weekly_metrics(plan, best.fold_metrics, metrics),
        "attributions": attribution_summary(attributions),
        "slices": slices,
    }
    mlflow.log_metrics({f"weeks_{stat}_{k}": v for k, row in summary["weeks"]["summary"].items()
                        for stat, v in row.items() if v == v})
    log.info("%s: %s", spec.name, summary["metrics"])
    return summary


_HEADLINE = ("auc_roc", "average_precision", "card_precision")


def weekly_metrics(plan: dict[str, Any], fold_metrics: list[dict[str, float]], evaluation: dict[str, float]
                   ) -> dict[str, Any]:
    """The headline metrics of the chosen parameters on every test week of the plan (the tuning folds,
    oldest first, then the evaluation week), each on its handbook-style evaluation set, with their mean
    and standard deviation: one lucky week shows as a wide spread."""
    blocks = [*plan["folds"][::-1], plan["evaluation"]]
    measured = [*fold_metrics[::-1], evaluation]
    rows = [{"test_window": f"{b['test_start']}..{b['test_end']}", **{k: _round(m[k]) for k in _HEADLINE}}
            for b, m in zip(blocks, measured, strict=True)]
    summary = {}
    for k in _HEADLINE:
        values = np.array([r[k] for r in rows], dtype=float)
        values = values[~np.isnan(values)]
        summary[k] = {"mean": _round(float(values.mean())) if len(values) else float("nan"),
                      "std": _round(float(values.std(ddof=1))) if len(values) > 1 else float("nan")}
    return {"rows": rows, "summary": summary}


def _imbalance_note(spec: ModelSpec, y: np.ndarray) -> str:
    from include.training.models import positive_weight

    if spec.family == ENSEMBLE:
        return "; ".join(f"{m['name']}: class_weight={m['class_weight']}" for m in spec.params["members"])
    return (f"class_weight={spec.class_weight}: each fraud weighs {positive_weight(y, spec.class_weight):.1f} "
            f"genuine transactions in the loss ({int(y.sum())} frauds of {len(y)} rows)")


def permutation_importance(model, test, seed: int) -> dict[str, float]:
    """Drop in average precision when one feature is shuffled, on a sample of the evaluation rows.

    One method for every family, so importances are comparable across them.
    """
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    sample = test.sample(min(len(test), IMPORTANCE_SAMPLE_ROWS), random_state=seed)
    y = sample[LABEL].to_numpy()
    if y.sum() == 0:
        return dict.fromkeys(MODEL_INPUTS, 0.0)
    base = average_precision_score(y, model.predict_proba(sample[MODEL_INPUTS]))
    importance = {}
    for col in MODEL_INPUTS:
        shuffled = sample[MODEL_INPUTS].copy()
        shuffled[col] = rng.permutation(shuffled[col].to_numpy())
        importance[col] = float(base - average_precision_score(y, model.predict_proba(shuffled)))
    return importance


def _log_figures(spec: ModelSpec, scored, importance: dict[str, float]) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    from include.training.plots import calibration_figure, importance_figure, roc_pr_figure

    y, s = scored[LABEL].to_numpy(), scored[SCORE].to_numpy()
    for fig, path in ((roc_pr_figure(y, s, spec.name), "evaluation/roc_pr.png"),
                      (calibration_figure(y, s, spec.name), "evaluation/calibration.png"),
                      (importance_figure(importance, spec.name), "evaluation/feature_importance.png")):
        mlflow.log_figure(fig, path)
        plt.close(fig)


def attribution_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The global attributions in the run's summary (and so on the model card): the unit, the rows
    and the mean |contribution| per feature, largest first, rounded (the summary tag stays small)."""
    return {"unit": result["unit"], "rows": result["rows"],
            "mean_abs": {r["feature"]: round(r["mean_abs_contribution"], 4) for r in result["table"]}}


def _log_attributions(spec: ModelSpec, result: dict[str, Any]) -> None:
    """The version's global attributions in MLflow (include.training.explain.global_attributions on
    the evaluation rows): the table (``explain/global_attributions.json``, an MLflow table) and the
    summary plot (``explain/attributions.png``)."""
    import matplotlib.pyplot as plt
    import mlflow
    import pandas as pd

    from include.training.plots import attribution_figure

    mlflow.log_table(pd.DataFrame(result["table"]), ATTRIBUTIONS_ARTIFACT)
    fig = attribution_figure(result, spec.name)
    mlflow.log_figure(fig, "explain/attributions.png")
    plt.close(fig)


def _log_model(spec: ModelSpec, model, train) -> str:
    import mlflow
    from mlflow.models import infer_signature

    from include.training.scorer import FraudScorer

    sample = train[MODEL_INPUTS].head(200)
    example = sample.head(5)
    with warnings.catch_warnings():
        # the counts are integer columns; the features checkpoint guarantees they are never null
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(sample, model.predict_proba(sample))
    families = [m["family"] for m in spec.params["members"]] if spec.family == ENSEMBLE else [spec.family]
    packages = ["numpy", "pandas", "mlflow", *dict.fromkeys(p for f in families for p in RUNTIME_PACKAGES[f])]
    info = mlflow.pyfunc.log_model(
        name="model", python_model=FraudScorer(model, MODEL_INPUTS), signature=signature, input_example=example,
        pip_requirements=[f"{p}=={version(p)}" for p in packages],
    )
    return info.model_uri

"""Attributions of every model family (include.training.explain): the trees' TreeSHAP adds up to
their margin, the reasons are stable, and a row flagged only for its amount names the amount first.
Real fitted models of training.yaml's families (small budgets), no stand-ins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.training.config import parse_training_config
from include.training.explain import attributions, explain_rows, global_attributions, margin, top_reasons
from include.training.models import build_estimator, sample_weights
from tests.training_config import small_config_dict

AMOUNT = MODEL_INPUTS.index("tx_amount")


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: (rng.poisson(4, n) if "nb_tx" in c or "during" in c else rng.gamma(2.0, 20.0, n))
                          for c in MODEL_INPUTS})
    return frame.astype({c: "float64" for c in MODEL_INPUTS if frame[c].dtype.kind == "f"})


@pytest.fixture(scope="module")
def fitted() -> dict:
    """Each family of training.yaml fitted on rows whose label depends on the amount and one other input
    (the network with enough steps to learn that from 4,000 rows, alone and in the ensemble)."""
    raw = small_config_dict()
    for spec in raw["models"]:  # the ensemble's members are these models, by name
        if spec["family"] == "pytorch_mlp":
            spec["params"] = {**spec["params"], "learning_rate": 0.01, "batch_size": 256, "max_epochs": 30}
    cfg = parse_training_config(raw)
    frame = _frame(4_000, 1)
    other = MODEL_INPUTS[-1]
    rng = np.random.default_rng(2)
    y = ((frame["tx_amount"] > 120) | (rng.random(len(frame)) < 0.02 * (frame[other] > frame[other].median()))
         ).astype(int).to_numpy()
    return {spec.family: build_estimator(spec.family, spec.params, cfg.seed, cfg.threads)
            .fit(frame, y, sample_weights(y, spec.class_weight)) for spec in cfg.models}


# XGBoost returns its contributions and its margin as float32 (a margin of -5 is held to about 5e-7):
# its sum is checked to 1e-6 relative; LightGBM's are float64, checked to 1e-6 absolute.
@pytest.mark.parametrize("family,rtol", [("xgboost", 1e-6), ("lightgbm", 0)])
def test_tree_shap_sums_to_the_margin(fitted, family, rtol):
    X = _frame(500, 7).to_numpy(np.float32)
    contribs, base = attributions(fitted[family], X)
    assert contribs.shape == (500, len(MODEL_INPUTS))
    np.testing.assert_allclose(base + contribs.sum(axis=1), margin(fitted[family], X), rtol=rtol, atol=1e-6)
    # the margin is the model's own: its sigmoid is the probability it scores with
    np.testing.assert_allclose(1 / (1 + np.exp(-margin(fitted[family], X))), fitted[family].predict_matrix(X),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("family,atol", [("logistic_regression", 1e-6), ("pytorch_mlp", 1e-5),
                                         ("mean_ensemble", 1e-5)])
def test_other_families_add_up_to_their_log_odds(fitted, family, atol):
    """Logistic regression and the network: DeepLift adds up exactly (the network scores in float32,
    its attributions are float64: 1e-5); the ensemble: to the logit of its mean probability (the
    rescale rule, exact given its members)."""
    X = _frame(300, 8).to_numpy(np.float32)
    contribs, base = attributions(fitted[family], X)
    np.testing.assert_allclose(base + contribs.sum(axis=1), margin(fitted[family], X), rtol=0, atol=atol)


@pytest.mark.parametrize("family", ["logistic_regression", "xgboost", "lightgbm", "pytorch_mlp", "mean_ensemble"])
def test_a_row_flagged_for_its_amount_names_the_amount_first(fitted, family):
    typical = _frame(4_000, 1).median().to_numpy(np.float32)
    row = typical.copy()
    row[AMOUNT] = 400.0
    X = np.vstack([typical, row]).astype(np.float32)
    scores = fitted[family].predict_matrix(X)
    assert scores[1] > 0.5 > scores[0], f"{family}: the amount alone should flag the row ({scores})"
    reasons = explain_rows(fitted[family], X[1:], MODEL_INPUTS)
    assert reasons["feature"][0, 0] == "tx_amount"
    assert reasons["value"][0, 0] == 400.0 and reasons["contribution"][0, 0] > 0
    assert (np.diff(reasons["contribution"][0]) <= 0).all()  # rank 1 first


@pytest.mark.parametrize("family", ["logistic_regression", "xgboost", "lightgbm", "pytorch_mlp", "mean_ensemble"])
def test_reasons_are_stable_across_runs(fitted, family):
    X = _frame(200, 9).to_numpy(np.float32)
    first, second = explain_rows(fitted[family], X, MODEL_INPUTS), explain_rows(fitted[family], X[::-1], MODEL_INPUTS)
    for key in ("feature", "value", "contribution"):  # the same per row, whatever the batch's order
        np.testing.assert_array_equal(first[key], second[key][::-1])


def test_top_reasons_breaks_ties_by_feature_order():
    contribs = np.array([[0.1, 0.5, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
    assert top_reasons(contribs).tolist() == [[1, 2, 0], [0, 1, 2]]


def test_global_attributions_rank_the_amount_first(fitted):
    X = _frame(3_000, 10).to_numpy(np.float32)
    result = global_attributions(fitted["xgboost"], X, MODEL_INPUTS, seed=0, rows=500)
    assert result["rows"] == 500 and result["table"][0]["feature"] == "tx_amount"
    values = [r["mean_abs_contribution"] for r in result["table"]]
    assert values == sorted(values, reverse=True) and len(values) == len(MODEL_INPUTS)


def test_the_model_card_and_the_plot_show_the_global_attributions(fitted):
    import matplotlib.pyplot as plt

    from include.training.model_card import _attributions
    from include.training.plots import attribution_figure
    from include.training.train import attribution_summary

    result = global_attributions(fitted["lightgbm"], _frame(1_000, 11).to_numpy(np.float32), MODEL_INPUTS, rows=300)
    summary = attribution_summary(result)
    assert list(summary["mean_abs"])[0] == "tx_amount" and summary["rows"] == 300
    card = _attributions(summary)
    assert card.startswith("## What drives the scores") and "| 1 | tx_amount | " in card
    assert _attributions(None) == ""  # a version trained before the section
    fig = attribution_figure(result, "lightgbm")
    assert len(fig.axes[0].collections) == 12  # one row of dots per shown feature
    plt.close(fig)

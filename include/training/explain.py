"""Why a model scores a row as it does: per-feature attributions of every family, in log-odds.

:func:`attributions` returns, for a float32 matrix of the model inputs (in their order), one
contribution per row and feature and a base value per row, with ``base + contributions.sum(1)`` the
row's margin (log-odds of fraud):

- XGBoost and LightGBM: exact TreeSHAP from the libraries' own contribution outputs
  (``pred_contribs`` / ``pred_contrib``); the base is the model's expected margin, and the sum is the
  model's raw margin (``output_margin`` / ``raw_score``).
- logistic regression and the PyTorch network: DeepLift (captum, Rescale rule) of the margin, from
  the training mean (the scaler's / the network's input mean) as baseline; the contributions add up
  to the margin minus the margin at the mean exactly (summation to delta, for Linear and ReLU
  layers). For the logistic model the margin is linear in the inputs, so this is exact and equals
  linear SHAP with the mean as background (shap's LinearExplainer) and Integrated Gradients. For the
  network it is DeepLIFT's attribution (a one-pass approximation of SHAP values on the mean as the
  reference), chosen over Integrated Gradients, which needs hundreds of passes per row to add up to
  1e-2 on a ReLU network (measured: 4 s for 2,000 rows of the logistic model at 256 steps).
- the mean ensemble (mean of its members' probabilities): each member is attributed on its own
  margin as above; member ``i``'s contributions are carried into probability space by the rescale
  rule (multiplied by ``(p_i - sigma(b_i)) / (m_i - b_i)``, the secant of the sigmoid between its base
  ``b_i`` and its margin ``m_i``, DeepLIFT's Rescale rule), averaged over the members as the ensemble
  averages its probabilities, and carried to the ensemble's log-odds by the secant of the logit
  between the mean base probability and the ensemble's score. The result adds up exactly (to
  ``logit(score) - logit(mean_i sigma(b_i))``), keeps each member's ranking of its features, and is
  in the same unit (log-odds) as the other families. Averaging member log-odds attributions instead
  would not add up to anything the ensemble computes (a mean of probabilities is not a mean of
  logits), and a KernelExplainer on the ensemble's probability would cost hundreds of model calls
  per flagged row.

:func:`top_reasons` picks the ``k`` features that pushed a row's margin up the most: the reasons an
investigator reads beside a flagged row. :func:`global_attributions` is the mean absolute
contribution per feature on a sample: the model card's and MLflow's global view.

torch and captum are imported only for the families that need them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

TOP_REASONS = 3
GLOBAL_SAMPLE_ROWS = 2_000


class ExplainError(TypeError):
    """An estimator this module cannot attribute (an unknown family)."""


def attributions(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(contributions, base)`` of the rows of ``X`` (float32, the model inputs in order): ``n x k``
    contributions in log-odds and ``n`` base values, ``base + contributions.sum(1)`` = the margin."""
    from include.training.models import MeanEnsemble, TorchMLP

    X = np.ascontiguousarray(X, dtype=np.float32)
    if isinstance(estimator, MeanEnsemble):
        return _ensemble(estimator, X)
    if isinstance(estimator, TorchMLP):
        return _mlp(estimator, X)
    model = getattr(estimator, "model", None)
    kind = type(model).__name__
    if kind == "XGBClassifier":
        return _xgboost(model, X)
    if kind == "LGBMClassifier":
        return _lightgbm(model, X)
    if kind == "Pipeline" and type(model[-1]).__name__ == "LogisticRegression":
        return _logistic(model, X)
    raise ExplainError(f"no attribution method for {type(estimator).__name__} wrapping {kind}: "
                       "known are XGBoost, LightGBM, logistic regression, the PyTorch MLP and the mean ensemble")


def margin(estimator, X: np.ndarray) -> np.ndarray:
    """The margin (log-odds) the attributions of ``estimator`` add up to, per row of ``X``."""
    from include.training.models import MeanEnsemble

    X = np.ascontiguousarray(X, dtype=np.float32)
    model = getattr(estimator, "model", None)
    kind = type(model).__name__
    if kind == "XGBClassifier":
        from xgboost import DMatrix

        return model.get_booster().predict(DMatrix(X), output_margin=True).astype(np.float64)
    if kind == "LGBMClassifier":
        return np.asarray(model.booster_.predict(X, raw_score=True), dtype=np.float64)
    if kind == "Pipeline":
        return np.asarray(model.decision_function(X), dtype=np.float64)
    p = np.clip(estimator.predict_matrix(X).astype(np.float64), 1e-15, 1 - 1e-15)
    if isinstance(estimator, MeanEnsemble) or hasattr(estimator, "network_"):
        return np.log(p) - np.log1p(-p)
    raise ExplainError(f"no margin for {type(estimator).__name__}")


def _xgboost(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from xgboost import DMatrix

    contribs = model.get_booster().predict(DMatrix(X), pred_contribs=True).astype(np.float64)
    return contribs[:, :-1], contribs[:, -1]  # the last column is the bias (expected margin)


def _lightgbm(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    contribs = np.asarray(model.booster_.predict(X, pred_contrib=True), dtype=np.float64)
    return contribs[:, :-1], contribs[:, -1]  # the last column is the expected raw score


def _deeplift(forward, X: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """captum's DeepLift (Rescale rule) of ``forward`` (a torch module from inputs to the margin, one
    column) from ``baseline``, in float64; the base is ``forward(baseline)``. For Linear and ReLU
    layers the contributions add up to ``forward(x) - forward(baseline)`` exactly (summation to
    delta); one forward and one backward pass per row."""
    import torch
    from captum.attr import DeepLift

    forward = forward.double().eval()
    x = torch.from_numpy(X.astype(np.float64)).requires_grad_()
    base = torch.from_numpy(np.broadcast_to(baseline.astype(np.float64), X.shape).copy())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums whatever the process's torch threads (stable reasons)
    try:
        with warnings.catch_warnings():  # captum says it hooks the ReLUs for the call, every call
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            contribs = DeepLift(forward).attribute(x, baselines=base, target=0)
        with torch.no_grad():
            b = forward(base[:1]).reshape(-1)
    finally:
        torch.set_num_threads(threads)
    return contribs.detach().numpy(), np.full(len(X), float(b[0]))


def _logistic(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    scaler, logistic = model[0], model[-1]
    k = X.shape[1]
    linear = torch.nn.Linear(k, 1)
    with torch.no_grad():  # the pipeline's margin as one linear layer: w / scale, b - w . mean / scale
        w = logistic.coef_[0] / scaler.scale_
        linear.weight.copy_(torch.from_numpy(w.reshape(1, k)))
        linear.bias.fill_(float(logistic.intercept_[0] - np.dot(w, scaler.mean_)))
    return _deeplift(torch.nn.Sequential(linear), X, np.asarray(scaler.mean_))


def _mlp(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    class Standardised(torch.nn.Module):  # the network as TorchMLP.predict_matrix feeds it, before the sigmoid
        def __init__(self, net, mean, std):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.from_numpy(np.asarray(mean, dtype=np.float64)))
            self.register_buffer("std", torch.from_numpy(np.asarray(std, dtype=np.float64)))

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    import copy

    net = copy.deepcopy(estimator.network_)  # .double() would change the scorer's own network
    return _deeplift(Standardised(net, estimator.mean_, estimator.std_), X, np.asarray(estimator.mean_))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _secant(f, fprime, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(f(b) - f(a)) / (b - a), the derivative where a and b (nearly) meet."""
    gap = b - a
    near = np.abs(gap) < 1e-9
    return np.where(near, fprime((a + b) / 2), (f(b) - f(a)) / np.where(near, 1.0, gap))


def _ensemble(estimator, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def dsigmoid(z):
        s = _sigmoid(z)
        return s * (1 - s)

    def logit(p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return np.log(p) - np.log1p(-p)

    def dlogit(p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return 1.0 / (p * (1 - p))

    prob_contribs, base_probs = np.zeros(X.shape, dtype=np.float64), np.zeros(len(X))
    for member in estimator.estimators_:
        contribs, base = attributions(member, X)
        m = base + contribs.sum(axis=1)
        prob_contribs += contribs * _secant(_sigmoid, dsigmoid, base, m)[:, None]
        base_probs += _sigmoid(base)
    n = len(estimator.estimators_)
    prob_contribs /= n
    base_prob = base_probs / n
    score = base_prob + prob_contribs.sum(axis=1)  # the members' mean probability, by construction
    return prob_contribs * _secant(logit, dlogit, base_prob, score)[:, None], logit(base_prob)


def top_reasons(contributions: np.ndarray, k: int = TOP_REASONS) -> np.ndarray:
    """Per row, the column indices of the ``k`` largest contributions (largest first; a tie goes to
    the earlier feature, so the order is the same on every run): ``n x k`` int array."""
    order = np.argsort(-contributions, axis=1, kind="stable")
    return order[:, :k]


def explain_rows(estimator, X: np.ndarray, inputs: list[str], k: int = TOP_REASONS) -> dict[str, np.ndarray]:
    """The top ``k`` reasons of each row of ``X``: ``feature`` (names), ``value`` (the input) and
    ``contribution`` (log-odds), each an ``n x k`` array, rank 1 first."""
    contribs, _ = attributions(estimator, X)
    top = top_reasons(contribs, k)
    rows = np.arange(len(X))[:, None]
    return {"feature": np.asarray(inputs, dtype=object)[top], "value": X[rows, top].astype(np.float64),
            "contribution": contribs[rows, top]}


def global_attributions(estimator, X: np.ndarray, inputs: list[str], seed: int = 0,
                        rows: int = GLOBAL_SAMPLE_ROWS) -> dict[str, Any]:
    """Mean absolute contribution (log-odds) and mean contribution per feature on a seeded sample of
    at most ``rows`` rows of ``X``, largest first; ``contributions``, ``values`` and ``inputs`` hold the
    sample's matrices and column names for the summary plot (not for JSON)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(X), size=min(rows, len(X)), replace=False))
    sample = np.asarray(X, dtype=np.float32)[pick]
    contribs, base = attributions(estimator, sample)
    mean_abs = np.abs(contribs).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    table = [{"feature": inputs[j], "mean_abs_contribution": float(mean_abs[j]),
              "mean_contribution": float(contribs[:, j].mean())} for j in order]
    return {"rows": len(sample), "unit": "log-odds", "base": float(base.mean()), "table": table,
            "contributions": contribs, "values": sample, "inputs": list(inputs)}

"""The model families behind one small interface: ``fit(X, y, sample_weight)`` and
``predict_proba(X)`` returning the fraud probability as a 1-d array. ``mean_ensemble`` averages the
probabilities of other families (on the rolling quality benchmark it beat every single family on
average precision in 15 of 16 weeks: docs/benchmarks.md).

Heavy libraries are imported inside the builders, so importing this module is cheap.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


class Estimator(Protocol):
    def fit(self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray) -> Estimator: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


def positive_weight(y: np.ndarray, strategy: str) -> float:
    """Loss weight of a fraud relative to a genuine transaction: 1, sqrt(neg/pos) or neg/pos."""
    pos = int(np.sum(y))
    if strategy == "none" or pos == 0:
        return 1.0
    ratio = (len(y) - pos) / pos
    return math.sqrt(ratio) if strategy == "sqrt" else ratio


def sample_weights(y: np.ndarray, strategy: str) -> np.ndarray:
    return np.where(np.asarray(y) == 1, positive_weight(y, strategy), 1.0)


def _threads() -> int:
    return int(os.environ.get("BATCHML_TRAINING_THREADS", os.cpu_count() or 1))


class _Wrapped:
    """A scikit-learn-API classifier; column 1 of predict_proba is the fraud probability."""

    def __init__(self, model, weight_param: str = "sample_weight"):
        self.model = model
        self.weight_param = weight_param

    def fit(self, X, y, sample_weight):
        self.model.fit(X.to_numpy(np.float32), y, **{self.weight_param: sample_weight})
        return self

    def predict_proba(self, X):
        return self.model.predict_proba(X.to_numpy(np.float32))[:, 1]


def _logistic(params: dict[str, Any], seed: int) -> Estimator:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed, **params))
    return _Wrapped(model, "logisticregression__sample_weight")


def _xgboost(params: dict[str, Any], seed: int) -> Estimator:
    from xgboost import XGBClassifier

    return _Wrapped(XGBClassifier(tree_method="hist", random_state=seed, n_jobs=_threads(), **params))


def _lightgbm(params: dict[str, Any], seed: int) -> Estimator:
    from lightgbm import LGBMClassifier

    return _Wrapped(LGBMClassifier(random_state=seed, n_jobs=_threads(), verbose=-1, **params))


class TorchMLP:
    """A feed-forward network: standardised inputs, ReLU hidden layers with dropout, Adam, and early
    stopping on the loss of the newest ``holdout`` share of the (time-ordered) training rows.

    Runs on the GPU when one is present, on the CPU otherwise; the fitted network is kept on the CPU
    so the object pickles and scores anywhere. Seeding is local (``torch.random.fork_rng``).
    """

    def __init__(self, hidden=(64, 32), dropout=0.2, learning_rate=1e-3, batch_size=1024, max_epochs=30,
                 patience=4, holdout=0.15, random_state=0):
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.holdout = holdout
        self.random_state = random_state

    def _network(self, n_inputs: int):
        from torch import nn

        layers, width = [], n_inputs
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.dropout)]
            width = h
        return nn.Sequential(*layers, nn.Linear(width, 1))

    def fit(self, X, y, sample_weight):
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        x = X.to_numpy(np.float32)
        self.mean_, self.std_ = x.mean(axis=0), x.std(axis=0) + 1e-6
        x = (x - self.mean_) / self.std_
        y = np.asarray(y, dtype=np.float32)
        cut = int(len(x) * (1 - self.holdout))
        pos_weight = float(np.max(sample_weight)) if len(sample_weight) else 1.0
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            net = self._network(x.shape[1]).to(device)
            loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            xt, yt = torch.from_numpy(x[:cut]).to(device), torch.from_numpy(y[:cut]).to(device)
            xv, yv = torch.from_numpy(x[cut:]).to(device), torch.from_numpy(y[cut:]).to(device)
            best, best_state, stale = float("inf"), None, 0
            self.epochs_, self.history_ = 0, []
            for _ in range(self.max_epochs):
                net.train()
                for idx in torch.randperm(len(xt), device=device).split(self.batch_size):
                    opt.zero_grad()
                    loss_fn(net(xt[idx]).squeeze(1), yt[idx]).backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    val = float(loss_fn(net(xv).squeeze(1), yv)) if len(xv) else 0.0
                self.history_.append(val)
                self.epochs_ += 1
                if val < best - 1e-5:
                    best, stale = val, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        self.network_ = self._network(x.shape[1])
        self.network_.load_state_dict(best_state or {k: v.cpu() for k, v in net.state_dict().items()})
        self.network_.eval()
        self.device_ = device.type
        return self

    def predict_proba(self, X):
        import torch

        x = (X.to_numpy(np.float32) - self.mean_) / self.std_
        with torch.no_grad():
            return torch.sigmoid(self.network_(torch.from_numpy(x)).squeeze(1)).numpy().astype(np.float64)


class MeanEnsemble:
    """The mean fraud probability of its members, each built and fitted as its own family would be
    (its configured params and class weight; the ``sample_weight`` passed in is not used)."""

    def __init__(self, members: list[dict[str, Any]], random_state: int = 0):
        self.members = members
        self.random_state = random_state

    def fit(self, X, y, sample_weight):
        self.estimators_ = [build_estimator(m["family"], m["params"], self.random_state)
                            .fit(X, y, sample_weights(y, m["class_weight"])) for m in self.members]
        return self

    def predict_proba(self, X):
        return np.mean([e.predict_proba(X) for e in self.estimators_], axis=0)


BUILDERS = {
    "logistic_regression": _logistic,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "pytorch_mlp": lambda params, seed: TorchMLP(random_state=seed, **params),
    "mean_ensemble": lambda params, seed: MeanEnsemble(random_state=seed, **params),
}


def build_estimator(family: str, params: dict[str, Any], seed: int) -> Estimator:
    return BUILDERS[family](dict(params), seed)

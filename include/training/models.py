"""The model families behind one small interface: ``fit(X, y, sample_weight)`` and
``predict_proba(X)`` returning the fraud probability as a 1-d array. ``mean_ensemble`` averages the
probabilities of other families (on the rolling quality benchmark it beat every single family on
average precision in 15 of 16 weeks: docs/benchmarks.md).

Heavy libraries are imported inside the builders, so importing this module is cheap.

Reproducibility: the same data, seed and ``threads`` (training.yaml) give the same model, whatever
the machine's core count, its load or the OMP_NUM_THREADS / MKL_NUM_THREADS of the environment:

- every family gets the configured thread count, never the core count: torch ``set_num_threads``
  while the MLP fits (1 and 7 threads gave scores up to 1.8e-7 apart), XGBoost and LightGBM
  ``n_jobs`` (1 and 7 threads gave identical scores here, but their parallel histogram sums are not
  documented as thread-count independent), LightGBM also ``deterministic`` with ``force_row_wise``
  (its documented recipe), and the BLAS/OpenMP pools (logistic regression's solver, numpy) limited
  by :func:`pinned_threads`;
- every random draw is seeded from ``seed``: Optuna's TPE sampler, the estimators' ``random_state``,
  the MLP's initialisation and batch order (a local torch generator state), permutation importance.

What is not pinned: a different ``threads`` value may change the last bits of float sums (histogram
and gradient reductions are split by thread), so it may change the model; the MLP on a CUDA GPU
differs from the MLP on a CPU (other kernels; on the GPU cuBLAS is put in deterministic mode, but the
two devices never agree bit for bit); other library versions or CPU instruction sets (AVX2 vs
AVX-512 kernels) may round differently.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from include.training.config import DEFAULT_THREADS

if TYPE_CHECKING:
    import pandas as pd


class Estimator(Protocol):
    def fit(self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray) -> Estimator: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...

    def predict_matrix(self, X: np.ndarray) -> np.ndarray: ...  # the same on a float32 matrix of X's columns


def positive_weight(y: np.ndarray, strategy: str) -> float:
    """Loss weight of a fraud relative to a genuine transaction: 1, sqrt(neg/pos) or neg/pos."""
    pos = int(np.sum(y))
    if strategy == "none" or pos == 0:
        return 1.0
    ratio = (len(y) - pos) / pos
    return math.sqrt(ratio) if strategy == "sqrt" else ratio


def sample_weights(y: np.ndarray, strategy: str) -> np.ndarray:
    return np.where(np.asarray(y) == 1, positive_weight(y, strategy), 1.0)


@contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` threads in the BLAS and OpenMP pools of the loaded libraries
    (threadpoolctl), and in torch's intra-op pool when torch is already imported; restored after."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


class _Wrapped:
    """A scikit-learn-API classifier; column 1 of predict_proba is the fraud probability."""

    def __init__(self, model, weight_param: str = "sample_weight"):
        self.model = model
        self.weight_param = weight_param

    def fit(self, X, y, sample_weight):
        self.model.fit(X.to_numpy(np.float32), y, **{self.weight_param: sample_weight})
        return self

    def predict_proba(self, X):
        return self.predict_matrix(X.to_numpy(np.float32))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """``predict_proba`` of a float32 matrix of the input columns, in their order (no pandas frame)."""
        return self.model.predict_proba(X)[:, 1]


def _logistic(params: dict[str, Any], seed: int, threads: int) -> Estimator:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed, **params))
    return _Wrapped(model, "logisticregression__sample_weight")


def _xgboost(params: dict[str, Any], seed: int, threads: int) -> Estimator:
    from xgboost import XGBClassifier

    # the pinned settings win over the same keys in training.yaml's params
    return _Wrapped(XGBClassifier(**{**params, "tree_method": "hist", "random_state": seed, "n_jobs": threads}))


def _lightgbm(params: dict[str, Any], seed: int, threads: int) -> Estimator:
    from lightgbm import LGBMClassifier

    return _Wrapped(LGBMClassifier(**{**params, "random_state": seed, "n_jobs": threads, "deterministic": True,
                                      "force_row_wise": True, "verbose": -1}))


class TorchMLP:
    """A feed-forward network: standardised inputs, ReLU hidden layers with dropout, Adam, and early
    stopping on the loss of the newest ``holdout`` share of the (time-ordered) training rows.

    Runs on the GPU when one is present, on the CPU otherwise; the fitted network is kept on the CPU
    so the object pickles and scores anywhere. Seeding is local (``torch.random.fork_rng``); while it
    fits, torch uses ``threads`` threads and deterministic algorithms (both restored afterwards).
    """

    def __init__(self, hidden=(64, 32), dropout=0.2, learning_rate=1e-3, batch_size=1024, max_epochs=30,
                 patience=4, holdout=0.15, random_state=0, threads=DEFAULT_THREADS):
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.holdout = holdout
        self.random_state = random_state
        self.threads = threads

    def _network(self, n_inputs: int):
        from torch import nn

        layers, width = [], n_inputs
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.dropout)]
            width = h
        return nn.Sequential(*layers, nn.Linear(width, 1))

    def fit(self, X, y, sample_weight):
        import torch

        threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(self.threads)
        if torch.cuda.is_available():  # cuBLAS is deterministic only with this workspace, set before its first use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return self._fit(torch, X, y, sample_weight)
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)

    def _fit(self, torch, X, y, sample_weight):
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
        return self.predict_matrix(X.to_numpy(np.float32))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        import torch

        x = (X - self.mean_) / self.std_
        with torch.no_grad():
            return torch.sigmoid(self.network_(torch.from_numpy(x)).squeeze(1)).numpy().astype(np.float64)


class MeanEnsemble:
    """The mean fraud probability of its members, each built and fitted as its own family would be
    (its configured params and class weight; the ``sample_weight`` passed in is not used)."""

    def __init__(self, members: list[dict[str, Any]], random_state: int = 0, threads: int = DEFAULT_THREADS):
        self.members = members
        self.random_state = random_state
        self.threads = threads

    def fit(self, X, y, sample_weight):
        self.estimators_ = [build_estimator(m["family"], m["params"], self.random_state, self.threads)
                            .fit(X, y, sample_weights(y, m["class_weight"])) for m in self.members]
        return self

    def predict_proba(self, X):
        return self.predict_matrix(X.to_numpy(np.float32))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.mean([e.predict_matrix(X) for e in self.estimators_], axis=0)


BUILDERS = {
    "logistic_regression": _logistic,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "pytorch_mlp": lambda params, seed, threads: TorchMLP(**{**params, "random_state": seed, "threads": threads}),
    "mean_ensemble": lambda params, seed, threads: MeanEnsemble(**{**params, "random_state": seed,
                                                                     "threads": threads}),
}


def build_estimator(family: str, params: dict[str, Any], seed: int, threads: int = DEFAULT_THREADS) -> Estimator:
    """An unfitted estimator of ``family``; ``threads`` is the fixed thread count it trains with
    (training.yaml ``threads``), never the machine's core count."""
    return BUILDERS[family](dict(params), seed, threads)

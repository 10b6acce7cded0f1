"""The mean_ensemble family: the mean probability of its members, each fitted as its own family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.training.models import build_estimator, sample_weights
from tests.training_config import small_config


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"amount": rng.lognormal(3, 1, n), "count": rng.poisson(3, n).astype(float),
                      "risk": rng.beta(1, 20, n)})
    y = (rng.random(n) < 0.02 + 0.3 * (x["amount"] > 80) + 0.5 * x["risk"]).astype(int)
    return x, y


def test_the_ensemble_is_the_mean_of_its_members_fitted_on_their_own():
    cfg = small_config()
    spec = cfg.spec("ensemble")
    assert [m["name"] for m in spec.params["members"]] == ["xgboost", "lightgbm", "mlp"]
    x, y = _frame(3000, 0)
    test, _ = _frame(500, 1)
    # the weights passed in are not used: each member weighs the frauds by its own class_weight
    ensemble = build_estimator(spec.family, spec.params, cfg.seed).fit(x, y, np.ones(len(y)))
    alone = []
    for name in ("xgboost", "lightgbm", "mlp"):
        member = cfg.spec(name)
        model = build_estimator(member.family, member.params, cfg.seed).fit(x, y, sample_weights(y, member.class_weight))
        alone.append(model.predict_proba(test))
    got = ensemble.predict_proba(test)
    assert got == pytest.approx(np.mean(alone, axis=0), abs=1e-6)
    assert got.shape == (500,) and ((got >= 0) & (got <= 1)).all()
    assert np.std(got) > 0  # not a constant: the members learnt something

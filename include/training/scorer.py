"""The MLflow pyfunc that every model version is: one ``predict`` returning fraud probabilities,
whatever the family. Scoring code loads it from the registry and never needs to know the family."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np


class FraudScorer(mlflow.pyfunc.PythonModel):
    """Wraps a fitted estimator of include.training.models; ``predict`` returns P(fraud) per row."""

    def __init__(self, estimator, inputs: list[str]):
        self.estimator = estimator
        self.inputs = list(inputs)

    def predict(self, context, model_input, params=None):
        return np.asarray(self.estimator.predict_proba(model_input[self.inputs]), dtype=np.float64)

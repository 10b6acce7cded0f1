"""What the scoring and drift benchmarks share: the data root of a `make demo` run, the model to
measure from its registry, and its newest feature rows tiled to a wanted size."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def arguments(description: str, with_version: bool = False) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO / "data")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    if with_version:
        p.add_argument("--version", help="model version to measure (default: the model of the last day)")
    args = p.parse_args()
    os.environ["BATCHML_DATA_ROOT"] = str(args.root.resolve())  # MLflow and the warehouse follow it
    return args


@dataclass
class DemoModel:
    name: str
    version: str
    run_id: str
    uri: str
    threshold: float
    scorer: object  # the fitted FraudScorer

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "run_id": self.run_id, "uri": self.uri,
                "threshold": self.threshold}


def feature_days(root: Path) -> list[str]:
    return sorted(d.name[3:] for d in (root / "features" / "baseline").glob("ds=*"))


def demo_model(root: Path, version: str | None = None) -> DemoModel:
    import mlflow

    from include.scoring import model_for_day
    from include.training import tracking
    from include.training.config import load_training_config

    name = load_training_config().registered_model
    if version is None:
        version = model_for_day(name, feature_days(root)[-1]).version
    mv = tracking.client().get_model_version(name, version)
    uri = f"models:/{name}/{version}"
    return DemoModel(name, str(version), mv.run_id, uri, float(mv.tags["threshold"]),
                     mlflow.pyfunc.load_model(uri).unwrap_python_model())


def tiled_features(root: Path, n: int, days: int = 7):
    """The newest ``days`` feature partitions repeated to ``n`` rows, with unique transaction ids."""
    import pandas as pd

    base = pd.concat([pd.read_parquet(root / "features" / "baseline" / f"ds={d}" / "data.parquet")
                      for d in feature_days(root)[-days:]], ignore_index=True)
    frame = pd.concat([base] * (n // len(base) + 1), ignore_index=True).iloc[:n]
    frame["transaction_id"] = range(n)
    return frame

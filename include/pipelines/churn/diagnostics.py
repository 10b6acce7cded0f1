"""What a simple model can learn from the churn simulator: a check of the simulator, not the pipeline.

The pipeline's real features are Spark jobs over the landing data; these pandas features are the
few obvious ones (tenure, contract, plan, fee, usage and its trend, support contacts, payment
failures), computed point-in-time from the events before each snapshot, so that the tests and
docs/churn.md can measure the simulator's learnability and the business metric honestly.

    python -m include.pipelines.churn.diagnostics [--customers 5000 --weeks 26 --seed 0 --fraction 0.1]
    python -m include.pipelines.churn.diagnostics --tests 6 --families logistic,boosting
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
import pandas as pd

from include.pipelines.churn.simulator import (
    CONTRACTS,
    PLANS,
    ChurnSimulation,
    ChurnSimulatorConfig,
    PriceIncrease,
    simulate,
    snapshot_dates,
    weekly_snapshot,
)

FEATURES = ["tenure_days", "early_tenure", "contract_annual", "contract_two_year", "plan_standard", "plan_premium",
            "monthly_fee", "fee_raised", "minutes_7d", "minutes_28d", "usage_trend", "active_days_7d",
            "support_30d", "payment_failures_30d"]


def _window_counts(events: pd.DataFrame, snapshot: pd.Timestamp, days: int, value: str | None = None) -> pd.Series:
    """Per customer, the number (or the sum of ``value``) of events in ``[snapshot - days, snapshot)``."""
    recent = events[(events["event_time"] >= snapshot - pd.Timedelta(days=days)) & (events["event_time"] < snapshot)]
    grouped = recent.groupby("customer_id")
    return grouped[value].sum() if value else grouped.size()


def snapshot_features(sim: ChurnSimulation, snapshot_date: dt.date) -> pd.DataFrame:
    """The labelled snapshot of ``snapshot_date`` with :data:`FEATURES`, from events before it only."""
    snap = weekly_snapshot(sim, snapshot_date)
    at = pd.Timestamp(snapshot_date, tz="UTC")
    ids = snap["customer_id"]

    def per_customer(series: pd.Series) -> np.ndarray:
        return ids.map(series).fillna(0).to_numpy(dtype=float)

    usage = sim.usage_events
    signup = pd.to_datetime(snap["signup_date"]).dt.tz_localize("UTC")
    snap["tenure_days"] = (at - signup).dt.days.to_numpy(dtype=float)
    snap["early_tenure"] = np.exp(-snap["tenure_days"] / 90)
    snap["contract_annual"] = (snap["contract_type"] == CONTRACTS[1]).astype(float)
    snap["contract_two_year"] = (snap["contract_type"] == CONTRACTS[2]).astype(float)
    snap["plan_standard"] = (snap["plan"] == PLANS[1]).astype(float)
    snap["plan_premium"] = (snap["plan"] == PLANS[2]).astype(float)
    signup_fee = ids.map(sim.customers.set_index("customer_id")["monthly_fee"]).to_numpy()
    snap["fee_raised"] = (snap["monthly_fee"].to_numpy() > signup_fee).astype(float)
    snap["minutes_7d"] = per_customer(_window_counts(usage, at, 7, "minutes"))
    snap["minutes_28d"] = per_customer(_window_counts(usage, at, 28, "minutes"))
    # last week against the weekly mean of the four: below 1 is declining (new customers: about 1)
    snap["usage_trend"] = (4 * snap["minutes_7d"] + 10) / (snap["minutes_28d"] + 10)
    snap["active_days_7d"] = per_customer(_window_counts(usage, at, 7))
    snap["support_30d"] = per_customer(_window_counts(sim.support_contacts, at, 30))
    snap["payment_failures_30d"] = per_customer(_window_counts(sim.payment_failures, at, 30))
    return snap


def recall_at_top_fraction(y: np.ndarray, score: np.ndarray, fraction: float) -> float:
    """Share of the churners found among the ``ceil(fraction * n)`` highest-scored customers: the
    business metric, the retention team calling that share of the customers. NaN without churners."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction of contactable customers must be in (0, 1], got {fraction}")
    y = np.asarray(y)
    if y.sum() == 0:
        return float("nan")
    k = int(np.ceil(fraction * len(y)))
    top = np.argsort(-np.asarray(score), kind="stable")[:k]
    return float(y[top].sum() / y.sum())


def fraction_for_recall(y: np.ndarray, score: np.ndarray, target: float) -> float:
    """The smallest share of customers to contact, highest scores first, to reach ``target`` recall."""
    y = np.asarray(y)[np.argsort(-np.asarray(score), kind="stable")]
    found = np.cumsum(y) / y.sum()
    return float((np.searchsorted(found, target) + 1) / len(y))


def _model(family: str):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if family == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    if family == "boosting":
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    raise ValueError(f"unknown model family {family!r}: use logistic or boosting")


def learnability(sim: ChurnSimulation, train_weeks: int = 8, fraction: float = 0.1, target: float = 0.85,
                 test_date: dt.date | None = None, family: str = "logistic") -> dict:
    """A model trained on ``train_weeks`` labelled snapshots, tested on ``test_date`` (default: the last
    labelled snapshot); the training snapshots end at least 30 days before the test one, so that their
    labels were known when it was scored."""
    from sklearn.metrics import roc_auc_score

    dates = snapshot_dates(sim.config, labelled_only=True)
    test_date = test_date or dates[-1]
    if test_date not in dates:
        raise ValueError(f"test snapshot {test_date} is not a labelled snapshot of the simulation")
    train_dates = [d for d in dates if d + dt.timedelta(days=30) <= test_date][-train_weeks:]
    if not train_dates:
        raise ValueError(f"no labelled snapshot 30 days before the test one {test_date}")
    train = pd.concat([snapshot_features(sim, d) for d in train_dates], ignore_index=True)
    test = snapshot_features(sim, test_date)
    model = _model(family).fit(train[FEATURES], train["churned_30d"])
    score = model.predict_proba(test[FEATURES])[:, 1]
    y = test["churned_30d"].to_numpy()
    return {"family": family, "train_snapshots": [str(d) for d in train_dates], "test_snapshot": str(test_date),
            "test_customers": len(y), "test_churners": int(y.sum()), "auc": float(roc_auc_score(y, score)),
            f"recall_at_{fraction:g}": recall_at_top_fraction(y, score, fraction),
            f"fraction_for_recall_{target:g}": fraction_for_recall(y, score, target)}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    from include.pipelines.churn.simulator import monthly_churn_rate, parse_price_increase

    defaults = ChurnSimulatorConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=defaults.n_customers)
    p.add_argument("--weeks", type=int, default=defaults.n_weeks)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--fraction", type=float, default=0.1, help="share of customers the retention team calls")
    p.add_argument("--tests", type=int, default=1, help="test on each of the last N labelled snapshots")
    p.add_argument("--families", default="logistic", help="comma-separated: logistic, boosting")
    p.add_argument("--price-increase", type=parse_price_increase, action="append", default=[])
    args = p.parse_args(argv)
    increases: tuple[PriceIncrease, ...] = tuple(args.price_increase)
    sim = simulate(ChurnSimulatorConfig(n_customers=args.customers, n_weeks=args.weeks, seed=args.seed,
                                        price_increases=increases))
    print(f"monthly churn rate (30-day label rate over the labelled snapshots): {monthly_churn_rate(sim):.4f}")
    rows = [learnability(sim, fraction=args.fraction, test_date=d, family=f)
            for f in args.families.split(",") for d in snapshot_dates(sim.config, labelled_only=True)[-args.tests:]]
    table = pd.DataFrame(rows).drop(columns="train_snapshots")
    print(table.round(3).to_string(index=False))
    print(table.drop(columns=["test_snapshot"]).groupby("family").mean().round(3).to_string())
    return table


if __name__ == "__main__":
    main()

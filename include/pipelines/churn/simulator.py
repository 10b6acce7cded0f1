"""Subscription-churn simulator (docs/churn.md), vectorised with numpy over customers, one step a day.

One call (:func:`simulate`) generates the whole history: the customer base, a daily usage record per
active customer, support contacts, payment failures and cancellations. The same
:class:`ChurnSimulatorConfig` (seed included) always gives the same frames.

Time conventions (the label rule of docs/churn.md depends on them):

- A customer who signs up on day ``s`` produces events from day ``s``; one who cancels on day ``c``
  produces no event on day ``c`` or later (every ``event_time`` is before ``cancel_date`` 00:00 UTC).
- A weekly snapshot of date ``S`` is taken at ``S`` 00:00 UTC: it sees the events before ``S`` and holds
  the customers active then (``signup_date < S`` and no cancellation before ``S``); its label is 1 when
  the customer cancels on one of the 30 days ``S .. S + 29``, and it is known on ``S + 30``.

    python -m include.pipelines.churn.simulator --out DIR [--customers 5000 --weeks 26 --start 2026-01-05]
    python -m include.pipelines.churn.simulator --out DIR --price-increase 2026-04-06:0.15:basic,standard
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
LABEL_HORIZON_DAYS = 30  # a snapshot's label: cancelled within the 30 days after it, known 30 days later
SNAPSHOT_WEEKDAY = 0  # Monday
PLANS = ("basic", "standard", "premium")
CONTRACTS = ("monthly", "annual", "two_year")
SUPPORT_KINDS = ("technical", "billing", "account")
PAYMENT_FAILURE_KINDS = ("card_declined", "insufficient_funds", "card_expired")

# Columns of each table, in order; the dtypes are those of the frames and of the landing files.
COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"customer_id": "int64", "signup_date": "date", "plan": "str", "contract_type": "str",
                  "monthly_fee": "float64"},
    "usage_events": {"customer_id": "int64", "event_time": "datetime64[us, UTC]", "sessions": "int64",
                     "minutes": "float64"},
    "support_contacts": {"customer_id": "int64", "event_time": "datetime64[us, UTC]", "kind": "str"},
    "payment_failures": {"customer_id": "int64", "event_time": "datetime64[us, UTC]", "kind": "str"},
    "cancellations": {"customer_id": "int64", "cancel_date": "date"},
    "fee_changes": {"customer_id": "int64", "change_date": "date", "old_fee": "float64", "new_fee": "float64"},
}
EVENT_TABLES = ("usage_events", "support_contacts", "payment_failures")


@dataclass(frozen=True)
class PriceIncrease:
    """From ``start`` on, the list fee of ``plans`` is multiplied by ``1 + magnitude`` (0.15 = +15 %):
    customers already on those plans pay the new fee from ``start`` (a ``fee_changes`` row each) and
    new customers sign up at it. Among the customers whose fee went up, the daily churn hazard is
    multiplied by ``exp(hazard.price_increase * sensitivity * log(1 + magnitude) * exp(-days / hazard.
    price_increase_decay_days))``: price-sensitive customers leave, most of them in the first months."""

    start: dt.date
    magnitude: float
    plans: tuple[str, ...] = ("basic", "standard")

    def __post_init__(self) -> None:
        if not isinstance(self.start, dt.date):
            raise ValueError(f"PriceIncrease.start must be a date, got {self.start!r}")
        if not 0 < self.magnitude <= 2:
            raise ValueError(f"PriceIncrease.magnitude is a relative increase in (0, 2], got {self.magnitude}")
        unknown = sorted(set(self.plans) - set(PLANS))
        if not self.plans or unknown:
            raise ValueError(f"PriceIncrease.plans must be a non-empty subset of {PLANS}, got {self.plans!r}")


@dataclass(frozen=True)
class HazardModel:
    """The daily churn hazard is ``exp(log_base + sum of terms)``; docs/churn.md explains each term.

    Defaults give a monthly churn rate of about 4 % and a logistic regression on simple snapshot
    features an AUC of about 0.8 (tests/unit/test_churn_simulator.py checks both)."""

    log_base: float = -7.7
    contract: tuple[float, float, float] = (0.0, -1.7, -2.7)  # monthly, annual, two_year
    plan: tuple[float, float, float] = (0.3, 0.0, -0.3)  # basic, standard, premium
    early_tenure: float = 1.0  # + early_tenure * exp(-tenure_days / early_tenure_days)
    early_tenure_days: float = 90.0
    disengagement: float = 3.5  # + disengagement * d, d in [0, 1] the latent disengagement
    support: float = 0.35  # per support contact, exponentially weighted over ~30 days
    payment_failure: float = 1.2  # per payment failure, exponentially weighted over ~30 days
    fee: float = 1.5  # + fee * sensitivity * log(monthly_fee / list fee of the plan at start_date)
    price_increase: float = 12.0  # see PriceIncrease
    price_increase_decay_days: float = 90.0
    frailty_sd: float = 0.5  # unobserved per-customer log-hazard noise
    # the latent disengagement process
    disengage_per_day: float = 0.003  # chance a day that an engaged customer starts to disengage
    recover_per_day: float = 0.01  # chance a day that a disengaging customer starts to recover
    disengage_days: tuple[float, float] = (20.0, 60.0)  # d goes 0 -> 1 over this many days (uniform)

    def __post_init__(self) -> None:
        problems = [f"{name} must be a chance in [0, 1], got {getattr(self, name)}"
                    for name in ("disengage_per_day", "recover_per_day") if not 0 <= getattr(self, name) <= 1]
        problems += [f"{name} must be > 0, got {getattr(self, name)}"
                     for name in ("early_tenure_days", "price_increase_decay_days") if getattr(self, name) <= 0]
        if self.frailty_sd < 0:
            problems.append(f"frailty_sd must be >= 0, got {self.frailty_sd}")
        if len(self.contract) != 3 or len(self.plan) != 3:
            problems.append("contract and plan must have 3 coefficients each (in the order of CONTRACTS and PLANS)")
        low, high = self.disengage_days
        if not 0 < low <= high:
            problems.append(f"disengage_days must be (low, high) with 0 < low <= high, got {self.disengage_days}")
        if problems:
            raise ValueError("HazardModel: " + "; ".join(problems))


@dataclass(frozen=True)
class ChurnSimulatorConfig:
    n_customers: int = 5_000  # the active base at the start; signups keep it about stable
    start_date: dt.date = dt.date(2026, 1, 5)  # a Monday: the first snapshot date
    n_weeks: int = 26
    seed: int = 0
    price_increases: tuple[PriceIncrease, ...] = field(default_factory=tuple)
    hazard: HazardModel = field(default_factory=HazardModel)
    signups_per_month: float = 0.04  # new customers a month, as a share of n_customers
    burn_in_days: int = 90  # simulated before start_date without output, so history and states are mature
    contract_mix: tuple[float, float, float] = (0.55, 0.30, 0.15)  # monthly, annual, two_year
    plan_mix: tuple[float, float, float] = (0.45, 0.35, 0.20)  # basic, standard, premium
    list_fees: tuple[float, float, float] = (9.99, 19.99, 34.99)  # basic, standard, premium, per month

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"ChurnSimulatorConfig: {message}")

        for name in ("n_customers", "n_weeks", "seed", "burn_in_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                fail(f"{name} must be an int, got {value!r}")
        if self.n_customers < 1:
            fail(f"n_customers must be >= 1, got {self.n_customers}")
        if self.n_weeks < 1:
            fail(f"n_weeks must be >= 1, got {self.n_weeks}")
        if self.seed < 0:
            fail(f"seed must be >= 0, got {self.seed}")
        if self.burn_in_days < 0:
            fail(f"burn_in_days must be >= 0, got {self.burn_in_days}")
        if not isinstance(self.start_date, dt.date) or isinstance(self.start_date, dt.datetime):
            fail(f"start_date must be a date, got {self.start_date!r}")
        for name, n in (("contract_mix", 3), ("plan_mix", 3)):
            mix = getattr(self, name)
            if len(mix) != n or min(mix) < 0 or not math.isclose(sum(mix), 1.0, abs_tol=1e-9):
                fail(f"{name} must be {n} non-negative shares summing to 1, got {mix!r}")
        if len(self.list_fees) != 3 or min(self.list_fees) <= 0:
            fail(f"list_fees must be 3 positive fees (basic, standard, premium), got {self.list_fees!r}")
        if not 0 <= self.signups_per_month <= 1:
            fail(f"signups_per_month is a share of n_customers in [0, 1], got {self.signups_per_month}")
        if not isinstance(self.hazard, HazardModel):
            fail(f"hazard must be a HazardModel, got {self.hazard!r}")
        if not all(isinstance(p, PriceIncrease) for p in self.price_increases):
            fail(f"price_increases must be PriceIncrease objects, got {self.price_increases!r}")
        for p in self.price_increases:
            if not self.start_date <= p.start <= self.end_date:
                fail(f"price increase starting {p.start} lies outside the simulated {self.start_date} to "
                     f"{self.end_date}")
        if len({p.start for p in self.price_increases}) != len(self.price_increases):
            fail("two price increases start on the same day")

    @property
    def n_days(self) -> int:
        return 7 * self.n_weeks

    @property
    def end_date(self) -> dt.date:
        """Last simulated day (inclusive)."""
        return self.start_date + dt.timedelta(days=self.n_days - 1)


@dataclass(frozen=True)
class ChurnSimulation:
    config: ChurnSimulatorConfig
    customers: pd.DataFrame  # every customer active on start_date or signed up later; fee at signup
    usage_events: pd.DataFrame
    support_contacts: pd.DataFrame
    payment_failures: pd.DataFrame
    cancellations: pd.DataFrame
    fee_changes: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        if name not in COLUMNS:
            raise KeyError(f"no churn table {name!r}; the tables are {sorted(COLUMNS)}")
        return getattr(self, name)


def simulate(cfg: ChurnSimulatorConfig) -> ChurnSimulation:
    """Generate the customer base and the event history of ``cfg`` (see the module docstring)."""
    return _Simulator(cfg).run()


class _Simulator:
    """The day loop; every per-customer quantity is an array over all customers ever created."""

    def __init__(self, cfg: ChurnSimulatorConfig) -> None:
        self.cfg, hz = cfg, cfg.hazard
        streams = np.random.SeedSequence(cfg.seed).spawn(3)
        self.rng_static, self.rng_day = (np.random.default_rng(s) for s in streams[:2])
        # times of day: one stream per table, so that a scenario changing one table moves no other
        self.rng_time = {t: np.random.default_rng(s) for t, s in zip(EVENT_TABLES, streams[2].spawn(3), strict=True)}
        rng = self.rng_static
        self.first_day = -cfg.burn_in_days  # day indexes are relative to start_date
        # signups: the base at the start of the burn-in, then a Poisson flow that replaces churners
        days = np.arange(self.first_day, cfg.n_days)
        per_day = rng.poisson(cfg.n_customers * cfg.signups_per_month / 30.4, len(days))
        initial_tenure = np.minimum(rng.exponential(700, cfg.n_customers), 3_650).astype(np.int64) + 1
        signup_day = np.concatenate([self.first_day - initial_tenure, np.repeat(days, per_day)])
        signup_day.sort(kind="stable")  # customer ids follow signup order
        n = self.n = len(signup_day)
        self.signup_day = signup_day
        self.plan = rng.choice(3, n, p=cfg.plan_mix)
        self.contract = rng.choice(3, n, p=cfg.contract_mix)
        # price sensitivity in [0, 1]: basic customers are the most sensitive, premium ones the least
        sens_a, sens_b = np.array([3.0, 2.0, 1.5]), np.array([2.0, 3.0, 4.0])
        self.sensitivity = rng.beta(sens_a[self.plan], sens_b[self.plan])
        self.discount = rng.choice([0.0, 0.1, 0.2], n, p=[0.7, 0.2, 0.1])
        self.sessions_per_day = rng.gamma(2.0, np.array([1.5, 2.5, 3.5])[self.plan] / 2.0)
        self.minutes_per_session = rng.gamma(4.0, 6.0, n)
        self.failure_prob = rng.beta(0.6, 20.0, n)  # chance that a monthly payment fails
        self.billing_dom = rng.integers(1, 29, n)
        self.frailty = rng.normal(0.0, hz.frailty_sd, n)
        self.disengage_rate = 1.0 / rng.uniform(*hz.disengage_days, n)
        self.fee = np.zeros(n)
        self.signup_fee = np.zeros(n)
        self.cancel_day = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        self.d = np.zeros(n)  # latent disengagement, 0 (engaged) to 1
        self.disengaging = np.zeros(n, dtype=bool)
        self.recent_support = np.zeros(n)  # exponentially weighted counts, time constant 30 days
        self.recent_failures = np.zeros(n)
        self.increase_shock = np.zeros(n)  # log-hazard of the last price increase at its start
        self.increase_day = np.zeros(n, dtype=np.int64)
        self.list_fees = np.array(cfg.list_fees, dtype=float)  # raised by price increases
        self.reference_fees = self.list_fees.copy()
        self.events: dict[str, list[tuple[np.ndarray, ...]]] = {t: [] for t in (*EVENT_TABLES, "fee_changes")}

    def run(self) -> ChurnSimulation:
        cfg = self.cfg
        increases = {(p.start - cfg.start_date).days: p for p in cfg.price_increases}
        bounds = np.searchsorted(self.signup_day, np.arange(self.first_day, cfg.n_days + 1), side="right")
        self.fee[: bounds[0]] = self._signup_fees(np.arange(bounds[0]))
        for i, day in enumerate(range(self.first_day, cfg.n_days)):
            joined = np.arange(bounds[i - 1] if i else 0, bounds[i])
            if i:
                self.fee[joined] = self._signup_fees(joined)
            self.signup_fee[joined] = self.fee[joined]
            if day in increases:
                self._raise_prices(day, increases[day], bounds[i])
            self._step(day, bounds[i])
        return self._frames()

    def _signup_fees(self, idx: np.ndarray) -> np.ndarray:
        return np.round(self.list_fees[self.plan[idx]] * (1 - self.discount[idx]), 2)

    def _raise_prices(self, day: int, p: PriceIncrease, n_signed: int) -> None:
        factor = 1 + p.magnitude
        self.list_fees = self.list_fees * np.where(np.isin(np.array(PLANS), p.plans), factor, 1.0)
        alive = (np.arange(self.n) < n_signed) & (self.cancel_day > day)
        hit = np.flatnonzero(alive & np.isin(self.plan, [PLANS.index(x) for x in p.plans]))
        old = self.fee[hit].copy()
        self.fee[hit] = np.round(old * factor, 2)
        self.increase_shock[hit] = self.cfg.hazard.price_increase * self.sensitivity[hit] * math.log(factor)
        self.increase_day[hit] = day
        if day >= 0:
            self.events["fee_changes"].append((hit, np.full(len(hit), day), old, self.fee[hit]))

    def _step(self, day: int, n_signed: int) -> None:
        hz, rng = self.cfg.hazard, self.rng_day
        idx = np.flatnonzero(self.cancel_day[:n_signed] > day)  # active this morning
        tenure = day - self.signup_day[idx]
        # 1. cancellations, from yesterday's state: a customer cancelling today has no event today
        decay = np.exp(-(day - self.increase_day[idx]) / hz.price_increase_decay_days)
        log_h = (hz.log_base + np.array(hz.contract)[self.contract[idx]]
                 + hz.early_tenure * np.exp(-tenure / hz.early_tenure_days)
                 + hz.disengagement * self.d[idx] + hz.support * self.recent_support[idx]
                 + hz.payment_failure * self.recent_failures[idx]
                 + np.array(hz.plan)[self.plan[idx]]
                 + hz.fee * self.sensitivity[idx] * np.log(self.fee[idx] / self.reference_fees[self.plan[idx]])
                 + self.increase_shock[idx] * decay + self.frailty[idx])
        cancels = (rng.random(len(idx)) < np.exp(log_h)) & (tenure > 0)
        self.cancel_day[idx[cancels]] = day
        idx, tenure = idx[~cancels], tenure[~cancels]
        m = len(idx)
        # 2. the latent disengagement: engaged customers start to drift away, some recover
        start = ~self.disengaging[idx] & (rng.random(m) < hz.disengage_per_day)
        recover = self.disengaging[idx] & (rng.random(m) < hz.recover_per_day)
        self.disengaging[idx[start]] = True
        self.disengaging[idx[recover]] = False
        step = np.where(self.disengaging[idx], self.disengage_rate[idx], -0.05)
        self.d[idx] = np.clip(self.d[idx] + step, 0.0, 1.0)
        d = self.d[idx]
        # 3. usage: fewer and shorter sessions as a customer disengages, more at weekends
        weekend = 1.25 if (self.cfg.start_date + dt.timedelta(days=day)).weekday() >= 5 else 1.0
        sessions = rng.poisson(self.sessions_per_day[idx] * (1 - 0.85 * d) * weekend)
        minutes = rng.gamma(2.0 * np.maximum(sessions, 1), self.minutes_per_session[idx] * (1 - 0.4 * d) / 2.0)
        used = sessions > 0
        # 4. payment failures on the billing day of the month
        billing = self.billing_dom[idx] == (self.cfg.start_date + dt.timedelta(days=day)).day
        failed = billing & (tenure > 0) & (rng.random(m) < self.failure_prob[idx])
        # 5. support contacts: technical ones from disengagement, billing ones after a failure or increase
        recently_raised = (day - self.increase_day[idx] < 30) & (self.increase_shock[idx] > 0)
        technical = 0.01 * (1 + 4 * d)
        billing_rate = 0.003 + 0.15 * self.recent_failures[idx] + 0.02 * recently_raised * self.sensitivity[idx]
        contacts = rng.poisson(technical + billing_rate + 0.003)
        self.recent_support *= math.exp(-1 / 30)
        self.recent_failures *= math.exp(-1 / 30)
        self.recent_support[idx] += contacts
        self.recent_failures[idx] += failed
        if day < 0:
            return
        self.events["usage_events"].append((idx[used], np.full(used.sum(), day), sessions[used],
                                            np.maximum(np.round(minutes[used], 1), 0.1)))
        self.events["payment_failures"].append((idx[failed], np.full(failed.sum(), day),
                                                rng.integers(0, 3, failed.sum())))
        who = np.repeat(idx, contacts)
        p_tech = np.repeat(technical / (technical + billing_rate + 0.003), contacts)
        u = rng.random(len(who))
        kind = np.where(u < p_tech, 0, np.where(u < p_tech + (1 - p_tech) * 0.8, 1, 2))
        self.events["support_contacts"].append((who, np.full(len(who), day), kind))

    def _dates(self, days: np.ndarray) -> np.ndarray:
        start = np.datetime64(self.cfg.start_date, "D")
        return np.array((start + days.astype("timedelta64[D]")).astype(object), dtype=object)

    def _event_times(self, table: str, days: np.ndarray) -> pd.Series:
        # seconds within the day: drawn from separate streams, so event times never change the history
        seconds = np.clip(self.rng_time[table].normal(SECONDS_PER_DAY * 0.6, 14_000, len(days)), 1, SECONDS_PER_DAY - 1)
        stamp = (pd.Timestamp(self.cfg.start_date, tz="UTC")
                 + pd.to_timedelta(days * SECONDS_PER_DAY + seconds.astype(np.int64), unit="s"))
        return pd.Series(stamp, dtype="datetime64[us, UTC]")

    def _frames(self) -> ChurnSimulation:
        cfg = self.cfg
        keep = (self.cancel_day >= 0) & (self.signup_day < cfg.n_days)  # active on start_date or later
        ids = np.flatnonzero(keep)
        remap = np.full(self.n, -1, dtype=np.int64)
        remap[ids] = np.arange(len(ids))  # ids 0.. in signup order, over the customers that appear
        customers = pd.DataFrame({
            "customer_id": remap[ids],
            "signup_date": self._dates(self.signup_day[ids]),
            "plan": np.array(PLANS, dtype=object)[self.plan[ids]],
            "contract_type": np.array(CONTRACTS, dtype=object)[self.contract[ids]],
            "monthly_fee": self.signup_fee[ids],
        })
        cancelled = ids[self.cancel_day[ids] < cfg.n_days]
        cancellations = pd.DataFrame({"customer_id": remap[cancelled],
                                      "cancel_date": self._dates(self.cancel_day[cancelled])})
        cancellations = cancellations.sort_values(["cancel_date", "customer_id"], ignore_index=True)
        frames: dict[str, pd.DataFrame] = {}
        for table in EVENT_TABLES:
            parts = self.events[table]
            cols = [np.concatenate([p[j] for p in parts]) if parts else np.array([], dtype=np.int64)
                    for j in range(4 if table == "usage_events" else 3)]
            customer, day = remap[cols[0]], cols[1].astype(np.int64)
            frame = pd.DataFrame({"customer_id": customer, "event_time": self._event_times(table, day)})
            if table == "usage_events":
                frame["sessions"], frame["minutes"] = cols[2].astype(np.int64), cols[3].astype(np.float64)
            else:
                kinds = SUPPORT_KINDS if table == "support_contacts" else PAYMENT_FAILURE_KINDS
                frame["kind"] = np.array(kinds, dtype=object)[cols[2].astype(np.int64)]
            frames[table] = frame.sort_values(["event_time", "customer_id"], kind="stable", ignore_index=True)
        changes = self.events["fee_changes"]
        who, day, old, new = (np.concatenate([c[j] for c in changes]) if changes else np.array([])
                              for j in range(4))
        fee_changes = pd.DataFrame({"customer_id": remap[who.astype(np.int64)],
                                    "change_date": self._dates(day.astype(np.int64)),
                                    "old_fee": old.astype(np.float64), "new_fee": new.astype(np.float64)})
        sim = ChurnSimulation(cfg, customers, frames["usage_events"], frames["support_contacts"],
                              frames["payment_failures"], cancellations, fee_changes)
        log.info("simulated %d customers, %d usage records, %d cancellations over %d weeks",
                 len(customers), len(sim.usage_events), len(cancellations), cfg.n_weeks)
        return sim


# ---- snapshots and labels ---------------------------------------------------------------------------

def snapshot_dates(cfg: ChurnSimulatorConfig, labelled_only: bool = False) -> list[dt.date]:
    """The Mondays from ``start_date`` to ``end_date``; with ``labelled_only``, those whose 30-day label
    window lies inside the simulated history (``S + 30 <= end_date + 1``)."""
    first = cfg.start_date + dt.timedelta(days=(SNAPSHOT_WEEKDAY - cfg.start_date.weekday()) % 7)
    last = cfg.end_date - dt.timedelta(days=LABEL_HORIZON_DAYS - 1) if labelled_only else cfg.end_date
    return [first + dt.timedelta(weeks=w) for w in range(max(0, (last - first).days // 7 + 1))]


def fees_on(sim: ChurnSimulation, day: dt.date) -> pd.Series:
    """Each customer's monthly fee in force on ``day`` (its signup fee, or its last change on or before)."""
    fee = sim.customers.set_index("customer_id")["monthly_fee"].copy()
    changes = sim.fee_changes[sim.fee_changes["change_date"] <= day]
    if len(changes):
        last = changes.sort_values("change_date").groupby("customer_id")["new_fee"].last()
        fee.loc[last.index] = last
    return fee


def active_customers(sim: ChurnSimulation, snapshot_date: dt.date) -> pd.DataFrame:
    """The customers active at ``snapshot_date`` 00:00 UTC, with the monthly fee in force that day: what
    the weekly customer extract of that date holds. No cancellation date: that is the future."""
    c = sim.customers
    cancel = c["customer_id"].map(sim.cancellations.set_index("customer_id")["cancel_date"])
    active = (c["signup_date"] < snapshot_date) & (cancel.isna() | (cancel >= snapshot_date))
    out = c[active.to_numpy()].reset_index(drop=True)
    out["monthly_fee"] = out["customer_id"].map(fees_on(sim, snapshot_date)).to_numpy()
    return out


def weekly_snapshot(sim: ChurnSimulation, snapshot_date: dt.date) -> pd.DataFrame:
    """The customers active at ``snapshot_date`` and their label: ``churned_30d`` is 1 when the customer
    cancels on one of the 30 days ``snapshot_date .. snapshot_date + 29``; ``label_known_on`` is
    ``snapshot_date + 30``, the first day the label may be used. ValueError when that window is not
    inside the simulated history (the label is not known yet)."""
    if snapshot_date.weekday() != SNAPSHOT_WEEKDAY:
        raise ValueError(f"snapshot date {snapshot_date} is not a Monday")
    horizon_end = snapshot_date + dt.timedelta(days=LABEL_HORIZON_DAYS)
    if not sim.config.start_date <= snapshot_date or horizon_end > sim.config.end_date + dt.timedelta(days=1):
        raise ValueError(f"snapshot {snapshot_date}: its label window {snapshot_date} to "
                         f"{horizon_end - dt.timedelta(days=1)} is not inside the simulated history "
                         f"{sim.config.start_date} to {sim.config.end_date}")
    snap = active_customers(sim, snapshot_date)
    cancels = sim.cancellations
    within = cancels[(cancels["cancel_date"] >= snapshot_date) & (cancels["cancel_date"] < horizon_end)]
    snap.insert(0, "snapshot_date", snapshot_date)
    snap["churned_30d"] = snap["customer_id"].isin(within["customer_id"]).astype(np.int64)
    snap["label_known_on"] = horizon_end
    return snap


def monthly_churn_rate(sim: ChurnSimulation) -> float:
    """Cancellations per active customer per 30 days, averaged over the labelled snapshots."""
    rates = [weekly_snapshot(sim, s)["churned_30d"].mean() for s in snapshot_dates(sim.config, labelled_only=True)]
    if not rates:
        raise ValueError(f"{sim.config.n_weeks} weeks hold no labelled snapshot: simulate at least 5 weeks")
    return float(np.mean(rates))


# ---- landing files ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChurnLandingSummary:
    days: int  # daily event files (usage, support contacts, payment failures, cancellations) per table
    weeks: int  # weekly customer extracts
    label_files: int  # weekly label files (snapshots whose 30 days have passed)
    files: int


def landing_source(table: str, prefix: str = "churn_") -> str:
    return f"{prefix}{table}"


def write_landing_files(sim: ChurnSimulation, root: Path | None = None, prefix: str = "churn_") -> ChurnLandingSummary:
    """Deliver the simulation as landing files under ``<root>/landing/`` (root: BATCHML_DATA_ROOT by
    default), one parquet file each, written atomically (include/storage.py):

    - ``<prefix>usage_events/<D>.parquet``, ``<prefix>support_contacts/<D>.parquet``,
      ``<prefix>payment_failures/<D>.parquet``: the events of day D (every day, possibly empty);
    - ``<prefix>cancellations/<D>.parquet``: the cancellations of day D (every day, possibly empty);
    - ``<prefix>customers/<S>.parquet``: the weekly customer extract of Monday S (:func:`active_customers`);
    - ``<prefix>labels/<S + 30>.parquet``: on the day it becomes known, the label of snapshot S
      (snapshot_date, customer_id, churned_30d), for the snapshots whose 30 days lie in the history.
    """
    from include.storage import landing_file, write_parquet_atomic  # the data lake's paths and atomic writes

    cfg, files = sim.config, 0
    days = [cfg.start_date + dt.timedelta(days=i) for i in range(cfg.n_days)]
    for table in (*EVENT_TABLES, "cancellations"):
        frame = sim.table(table)
        key = frame["cancel_date"] if table == "cancellations" else frame["event_time"].dt.date
        groups = {day: part for day, part in frame.groupby(key, sort=False)}
        empty = frame.iloc[:0]
        for day in days:
            write_parquet_atomic(groups.get(day, empty).reset_index(drop=True),
                                 landing_file(landing_source(table, prefix), day, root))
            files += 1
    weeks = snapshot_dates(cfg)
    for snapshot in weeks:
        write_parquet_atomic(active_customers(sim, snapshot), landing_file(landing_source("customers", prefix),
                                                                           snapshot, root))
        files += 1
    labelled = snapshot_dates(cfg, labelled_only=True)
    for snapshot in labelled:
        label = weekly_snapshot(sim, snapshot)[["snapshot_date", "customer_id", "churned_30d"]]
        write_parquet_atomic(label, landing_file(landing_source("labels", prefix),
                                                 snapshot + dt.timedelta(days=LABEL_HORIZON_DAYS), root))
        files += 1
    log.info("landed %d files: %d days of events, %d weekly extracts, %d label files",
             files, len(days), len(weeks), len(labelled))
    return ChurnLandingSummary(len(days), len(weeks), len(labelled), files)


# ---- command line -----------------------------------------------------------------------------------

def parse_price_increase(text: str) -> PriceIncrease:
    """``YYYY-MM-DD:magnitude[:plan,plan]``, e.g. ``2026-04-06:0.15:basic,standard``."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"price increase {text!r}: expected YYYY-MM-DD:magnitude[:plan,plan]")
    try:
        plans = tuple(parts[2].split(",")) if len(parts) == 3 else PriceIncrease.__dataclass_fields__["plans"].default
        return PriceIncrease(dt.date.fromisoformat(parts[0]), float(parts[1]), plans)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"price increase {text!r}: {exc}") from exc


def main(argv: list[str] | None = None) -> ChurnLandingSummary:
    defaults = ChurnSimulatorConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="data root; files go to OUT/landing/ "
                   "(default: BATCHML_DATA_ROOT)")
    p.add_argument("--customers", type=int, default=defaults.n_customers)
    p.add_argument("--weeks", type=int, default=defaults.n_weeks)
    p.add_argument("--start", type=dt.date.fromisoformat, default=defaults.start_date)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--price-increase", type=parse_price_increase, action="append", default=[])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = ChurnSimulatorConfig(n_customers=args.customers, n_weeks=args.weeks, start_date=args.start,
                                   seed=args.seed, price_increases=tuple(args.price_increase))
    except ValueError as exc:
        p.error(str(exc))
    began = time.perf_counter()
    sim = simulate(cfg)
    summary = write_landing_files(sim, args.out)
    print(f"simulated {len(sim.customers):,} customers, {cfg.start_date} to {cfg.end_date}: "
          f"{len(sim.usage_events):,} usage records, {len(sim.cancellations):,} cancellations; "
          f"{summary.files} landing files ({time.perf_counter() - began:.1f}s)")
    return summary


if __name__ == "__main__":
    main()

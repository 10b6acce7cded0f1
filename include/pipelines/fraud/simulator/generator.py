"""Card-transaction simulator (the design of shared/SIMULATOR.md), vectorised with numpy.

The whole history is generated in one call so that transaction ids follow time order across
days; the same :class:`SimulatorConfig` (seed included) always gives the same frame.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400
TRANSACTION_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
LABEL_COLUMNS = ["transaction_id", "tx_fraud", "tx_fraud_scenario"]

DriftKind = Literal["amount_shift", "night_shift", "terminal_wave"]


@dataclass(frozen=True)
class DriftScenario:
    """A change of behaviour injected from ``start`` (inclusive) to ``end`` (exclusive, open if None).

    - ``amount_shift``: every amount is multiplied by ``magnitude`` (1.5 = +50 %).
    - ``night_shift``: a share ``magnitude`` (0..1) of transactions is moved to 00:00-06:00.
    - ``terminal_wave``: ``magnitude`` extra terminals are compromised each day (scenario 2).
    """

    kind: DriftKind
    start: dt.date
    magnitude: float
    end: dt.date | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("amount_shift", "night_shift", "terminal_wave"):
            raise ValueError(f"unknown drift kind {self.kind!r}")
        if self.kind == "night_shift" and not 0 <= self.magnitude <= 1:
            raise ValueError(f"night_shift magnitude is a share in [0, 1], got {self.magnitude}")
        if self.magnitude < 0:
            raise ValueError(f"drift magnitude must be >= 0, got {self.magnitude}")

    def active_days(self, start_date: dt.date, n_days: int) -> np.ndarray:
        """Boolean mask over the simulated day indexes on which the scenario applies."""
        days = np.array([start_date + dt.timedelta(days=i) for i in range(n_days)])
        mask = days >= self.start
        if self.end is not None:
            mask &= days < self.end
        return mask


@dataclass(frozen=True)
class SimulatorConfig:
    n_customers: int = 5_000
    n_terminals: int = 10_000
    n_days: int = 183
    start_date: dt.date = dt.date(2026, 1, 1)
    radius: float = 5.0
    seed: int = 0
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    large_amount_threshold: float = 220.0
    drift: tuple[DriftScenario, ...] = field(default_factory=tuple)

    @property
    def end_date(self) -> dt.date:
        """Last simulated day (inclusive)."""
        return self.start_date + dt.timedelta(days=self.n_days - 1)


@dataclass(frozen=True)
class Simulation:
    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame  # TRANSACTION_COLUMNS + tx_fraud, tx_fraud_scenario, ds


def customer_profiles(n: int, rng: np.random.Generator) -> pd.DataFrame:
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    mean_amount = rng.uniform(5, 100, n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "x": x,
            "y": y,
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": rng.uniform(0, 4, n),
        }
    )


def terminal_profiles(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"terminal_id": np.arange(n), "x": rng.uniform(0, 100, n), "y": rng.uniform(0, 100, n)})


def available_terminals(
    customers: pd.DataFrame, terminals: pd.DataFrame, radius: float, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Terminals strictly closer than ``radius`` to each customer, as CSR arrays (indptr, indices)."""
    cxy = customers[["x", "y"]].to_numpy()
    txy = terminals[["x", "y"]].to_numpy()
    indices, counts = [], []
    for lo in range(0, len(cxy), chunk):  # chunked: the full matrix would be n_customers x n_terminals
        d2 = ((cxy[lo : lo + chunk, None, :] - txy[None, :, :]) ** 2).sum(axis=2)
        rows, cols = np.nonzero(d2 < radius**2)
        indices.append(cols)
        counts.append(np.bincount(rows, minlength=min(chunk, len(cxy) - lo)))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return indptr, np.concatenate(indices)


def simulate(cfg: SimulatorConfig) -> Simulation:
    """Generate customers, terminals and the labelled transaction history of ``cfg``."""
    seeds = np.random.SeedSequence(cfg.seed).spawn(5)
    rng_cust, rng_term, rng_tx, rng_s2, rng_s3 = (np.random.default_rng(s) for s in seeds)
    customers = customer_profiles(cfg.n_customers, rng_cust)
    terminals = terminal_profiles(cfg.n_terminals, rng_term)
    indptr, term_idx = available_terminals(customers, terminals, cfg.radius)

    tx = _draw_transactions(cfg, customers, indptr, term_idx, rng_tx)
    _apply_fraud_scenarios(cfg, tx, rng_s2, rng_s3)
    log.info(
        "simulated %d transactions over %d days (fraud rate %.4f)", len(tx), cfg.n_days, tx["tx_fraud"].mean()
    )
    return Simulation(customers, terminals, tx)


def _draw_transactions(
    cfg: SimulatorConfig,
    customers: pd.DataFrame,
    indptr: np.ndarray,
    term_idx: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    n_cust = cfg.n_customers
    counts = rng.poisson(customers["mean_nb_tx_per_day"].to_numpy(), size=(cfg.n_days, n_cust))
    day = np.repeat(np.arange(cfg.n_days), counts.sum(axis=1))
    cust = np.concatenate([np.repeat(np.arange(n_cust), row) for row in counts])
    n = len(cust)

    seconds = rng.normal(SECONDS_PER_DAY / 2, 20_000, n).astype(np.int64)
    mean, std = customers["mean_amount"].to_numpy()[cust], customers["std_amount"].to_numpy()[cust]
    amount = rng.normal(mean, std)
    redraw = rng.uniform(0, 2 * mean)
    amount = np.round(np.where(amount < 0, redraw, amount), 2)

    n_avail = np.diff(indptr)[cust]
    pick = np.floor(rng.uniform(0, 1, n) * np.maximum(n_avail, 1)).astype(np.int64)
    terminal = np.where(n_avail > 0, term_idx[np.minimum(indptr[cust] + pick, len(term_idx) - 1)], -1)

    for scenario in cfg.drift:
        active = scenario.active_days(cfg.start_date, cfg.n_days)[day]
        if scenario.kind == "amount_shift":
            amount = np.where(active, np.round(amount * scenario.magnitude, 2), amount)
        elif scenario.kind == "night_shift":
            moved = active & (rng.uniform(0, 1, n) < scenario.magnitude)
            seconds = np.where(moved, rng.integers(1, 6 * 3600, n), seconds)

    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY) & (terminal >= 0)
    frame = pd.DataFrame(
        {"day": day[keep], "seconds": seconds[keep], "customer_id": cust[keep], "terminal_id": terminal[keep],
         "tx_amount": amount[keep]}
    )
    frame = frame.sort_values(["day", "seconds", "customer_id", "terminal_id"], kind="stable", ignore_index=True)
    start = pd.Timestamp(cfg.start_date, tz="UTC")
    frame["tx_datetime"] = start + pd.to_timedelta(frame["day"] * SECONDS_PER_DAY + frame["seconds"], unit="s")
    frame["tx_datetime"] = frame["tx_datetime"].astype("datetime64[us, UTC]")
    frame["transaction_id"] = np.arange(len(frame), dtype=np.int64)
    frame["tx_fraud"] = np.zeros(len(frame), dtype=np.int64)
    frame["tx_fraud_scenario"] = np.zeros(len(frame), dtype=np.int64)
    return frame


def _apply_fraud_scenarios(
    cfg: SimulatorConfig, tx: pd.DataFrame, rng_s2: np.random.Generator, rng_s3: np.random.Generator
) -> None:
    """Scenarios 1 to 3 of the design, in order, each overwriting the label of the one before."""
    # 1. large amounts, judged before scenario 3 multiplies some amounts
    large = tx["tx_amount"].to_numpy() > cfg.large_amount_threshold
    fraud = large.astype(np.int64)
    scenario = np.where(large, 1, 0)

    # 2. compromised terminals: every transaction on them for the next N days
    per_day = np.full(cfg.n_days, cfg.compromised_terminals_per_day)
    for drift in cfg.drift:
        if drift.kind == "terminal_wave":
            per_day = per_day + np.where(drift.active_days(cfg.start_date, cfg.n_days), int(drift.magnitude), 0)
    compromised = np.zeros((cfg.n_terminals, cfg.n_days), dtype=bool)
    for d in range(cfg.n_days):
        for term in rng_s2.choice(cfg.n_terminals, size=per_day[d], replace=False):
            compromised[term, d : d + cfg.terminal_compromise_days] = True
    day = tx["day"].to_numpy()
    hit = compromised[tx["terminal_id"].to_numpy(), day]
    fraud[hit], scenario[hit] = 1, 2

    # 3. compromised customers: a third of their transactions over the next N days, amount x 5
    amount = tx["tx_amount"].to_numpy().copy()
    order = np.lexsort((day, tx["customer_id"].to_numpy()))
    cust_sorted = tx["customer_id"].to_numpy()[order]
    day_sorted = day[order]
    bounds = np.searchsorted(cust_sorted, np.arange(cfg.n_customers + 1))
    for d in range(cfg.n_days):
        for cust in rng_s3.choice(cfg.n_customers, size=cfg.compromised_customers_per_day, replace=False):
            lo, hi = bounds[cust], bounds[cust + 1]
            days_c = day_sorted[lo:hi]
            a, b = np.searchsorted(days_c, d), np.searchsorted(days_c, d + cfg.customer_compromise_days)
            candidates = order[lo + a : lo + b]
            chosen = rng_s3.choice(candidates, size=len(candidates) // 3, replace=False)
            amount[chosen] = np.round(amount[chosen] * 5, 2)
            fraud[chosen], scenario[chosen] = 1, 3

    tx["tx_amount"] = amount
    tx["tx_fraud"] = fraud
    tx["tx_fraud_scenario"] = scenario
    dates = np.array([cfg.start_date + dt.timedelta(days=i) for i in range(cfg.n_days)], dtype=object)
    tx["ds"] = dates[day]
    tx.drop(columns=["day", "seconds"], inplace=True)

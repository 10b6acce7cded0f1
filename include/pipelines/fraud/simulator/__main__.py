"""Simulate a transaction history and write its daily landing files.

    python -m include.pipelines.fraud.simulator --days 60 --start 2026-01-01 [--customers 5000 --terminals 10000 --seed 0]
    python -m include.pipelines.fraud.simulator --days 90 --drift amount_shift:2026-03-01:1.5
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path

from include.pipelines.fraud.simulator.generator import DriftScenario, SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_landing_files


def parse_drift(text: str) -> DriftScenario:
    """``kind:start[:magnitude[:end]]``, e.g. ``night_shift:2026-03-01:0.3``."""
    parts = text.split(":")
    if len(parts) < 3:
        raise argparse.ArgumentTypeError(f"drift {text!r}: expected kind:YYYY-MM-DD:magnitude[:YYYY-MM-DD]")
    end = dt.date.fromisoformat(parts[3]) if len(parts) > 3 else None
    try:
        return DriftScenario(parts[0], dt.date.fromisoformat(parts[1]), float(parts[2]), end)  # type: ignore[arg-type]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"drift {text!r}: {exc}") from exc


def main(argv: list[str] | None = None) -> None:
    defaults = SimulatorConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=defaults.n_days)
    p.add_argument("--start", type=dt.date.fromisoformat, default=defaults.start_date)
    p.add_argument("--customers", type=int, default=defaults.n_customers)
    p.add_argument("--terminals", type=int, default=defaults.n_terminals)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--drift", type=parse_drift, action="append", default=[])
    p.add_argument("--root", type=Path, default=None, help="data root (default: BATCHML_DATA_ROOT)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cfg = SimulatorConfig(
        n_customers=args.customers, n_terminals=args.terminals, n_days=args.days, start_date=args.start,
        seed=args.seed, drift=tuple(args.drift),
    )
    began = time.perf_counter()
    sim = simulate(cfg)
    summary = write_landing_files(sim.transactions, args.root)
    print(
        f"simulated {summary.transactions:,} transactions, {cfg.start_date} to {cfg.end_date}: "
        f"{summary.days} days of transaction and label files "
        f"({time.perf_counter() - began:.1f}s)"
    )


if __name__ == "__main__":
    main()

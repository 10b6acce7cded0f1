"""Our drift computation against Evidently's on the same arrays: time, and whether the numbers and the
verdicts agree, for one monitoring day of 1 and 10 million rows.

Set-up (not timed), either
- ``--root data`` (default): the data root of a `make demo` run; the reference is the champion's stored
  reference.json, the current values are the newest feature rows tiled to the wanted size
  (bench/demo_lake.py) and scored with the champion; or
- ``--synthetic``: no data root needed. A reference fitted (``fit_references``, as training does) on
  200,000 synthetic rows of the model's inputs and a score, and a day drawn from the same generator
  with a realistic shift in some columns (larger amounts, riskier terminals, busier customers) and
  none in the others (``synthetic_frame``): counts with many ties, 0/1 flags, zero-inflated risks,
  amounts to the cent.
Each column's reference values for Evidently are the stored 5,000-value ``sample``, the values our KS
test uses.

Timed (best of ``--repeat`` runs for ours):
- ours: ``column_drift`` for every monitored column and the score (PSI in the stored bins, KS against
  the sample), in this process, as ``monitor_day`` runs it;
- with ``--baseline REV``: the same ``column_drift`` with include/drift/stats.py and reference.py as
  they were at git revision REV (the before figure, measured side by side in the same run);
- Evidently 0.7.23, in its own environment (bench/evidently_worker.py, started with subprocess after
  the arrays are written to a temporary folder as .npy): its ``psi`` and ``ks`` stat tests called
  directly, and a ``Report`` of ``ValueDrift(method="psi")`` and ``ValueDrift(method="ks")`` metrics.
  Imports, array loading and writing are not timed, and all sides are warmed up on the first 1,000
  rows before they are timed (our ``ks`` imports scipy.stats on its first call).

Evidently is not a dependency of the project; its environment is separate and git-ignored:

    python3.11 -m venv bench/.venv-evidently
    bench/.venv-evidently/bin/pip install -r bench/requirements-evidently.txt
    make demo && source scripts/airflow-env.sh && python bench/bench_drift_library.py --root data
    source scripts/airflow-env.sh && python bench/bench_drift_library.py --synthetic --rows 1000000

(EVIDENTLY_PYTHON names another interpreter with Evidently installed.) Markdown tables go to stdout,
progress to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_lake import REPO  # noqa: E402  (after the path is set)

WORKER = REPO / "bench" / "evidently_worker.py"
EVIDENTLY_PYTHON = Path(os.environ.get("EVIDENTLY_PYTHON", REPO / "bench" / ".venv-evidently" / "bin" / "python"))
SYNTHETIC_REFERENCE_ROWS = 200_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def arguments(description: str = __doc__, evidently: bool = True) -> argparse.Namespace:
    """The options of this bench (and of bench_drift.py, ``evidently=False``)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO / "data", help="data root of a `make demo` run")
    p.add_argument("--synthetic", action="store_true", help="a synthetic reference and day, no data root")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--version", help="model version to measure (default: the model of the last day; --root only)")
    p.add_argument("--baseline", metavar="REV", help="also time column_drift with the drift statistics of "
                   "git revision REV (include/drift/stats.py and reference.py)")
    p.add_argument("--repeat", type=int, default=3, help="our timings are the best of this many runs")
    if evidently:
        p.add_argument("--no-evidently", action="store_true", help="ours (and the baseline) only")
    args = p.parse_args()
    if not args.synthetic:
        os.environ["BATCHML_DATA_ROOT"] = str(args.root.resolve())  # MLflow and the warehouse follow it
    return args


def synthetic_frame(columns: list[str], n: int, seed: int, shifted: bool = False):
    """``n`` rows shaped like the fraud model's inputs and score, from the column names: 0/1 flags
    (``tx_during_*``), transaction counts over a window (``*_nb_tx_<d>d``, Poisson), zero-inflated
    terminal risks (``*risk*``), amounts to the cent (``*amount*``: log-normal; ratios and z-scores as
    such), the score (Beta). ``shifted``: the day drifts in amounts, terminal risk and customer counts
    (a realistic fraud wave), not in the other columns."""
    import re

    import pandas as pd

    rng = np.random.default_rng(seed)
    out = {}
    for c in columns:
        window = re.search(r"_(\d+)d$", c)
        days = int(window.group(1)) if window else 1
        if c.startswith("tx_during"):
            out[c] = (rng.random(n) < (2 / 7 if "weekend" in c else 0.15)).astype(float)
        elif "_nb_tx_" in c:
            rate = (3.0 if c.startswith("customer") else 40.0) * days ** 0.9
            out[c] = rng.poisson(rate * (1.15 if shifted and c.startswith("customer") else 1.0), n).astype(float)
        elif "risk" in c:
            fraud = rng.random(n) < (0.12 if shifted else 0.08)
            out[c] = np.where(fraud, np.round(rng.beta(1, 8 * days ** 0.3, n), 4), 0.0)
        elif "zscore" in c:
            out[c] = np.round(rng.standard_t(5, n) + (0.15 if shifted else 0.0), 3)
        elif "ratio" in c or "to_max" in c:
            out[c] = np.round(rng.lognormal(0.1 if shifted else 0.0, 0.5, n), 3)
        elif "amount" in c:
            sigma = 0.9 / max(days, 1) ** 0.25  # averages over longer windows spread less
            out[c] = np.round(rng.lognormal(np.log(55) + (0.3 if shifted else 0.0), sigma, n), 2)
        else:
            out[c] = np.round(rng.normal(0.2 if shifted else 0.0, 1.0, n), 3)
    out["score"] = np.round(rng.beta(0.6, 25 if shifted else 30, n), 6)
    return pd.DataFrame(out)


class Source:
    """The reference and the days to measure: a `make demo` data root, or synthetic."""

    def __init__(self, args, cfg):
        from include.pipelines.fraud.features.baseline import MODEL_INPUTS

        self.inputs = list(MODEL_INPUTS)
        monitored = [c for c in MODEL_INPUTS if c not in cfg.exclude_columns]
        if args.synthetic:
            from include.drift.reference import fit_references

            self.model = None
            training = synthetic_frame(self.inputs, SYNTHETIC_REFERENCE_ROWS, seed=0)
            self.reference = fit_references(training, [*monitored, "score"])
            self.title = (f"synthetic reference of {SYNTHETIC_REFERENCE_ROWS:,} rows, days shifted in amounts, "
                          "terminal risk and customer counts")
        else:
            from bench.demo_lake import demo_model
            from include.drift.monitor import load_reference

            self.model = demo_model(args.root, args.version)
            stored = load_reference(self.model.run_id)
            self.reference = {**{c: stored["features"][c] for c in monitored}, "score": stored["score"]}
            self.title = f"model {self.model.name} v{self.model.version} of {args.root}"
        self.root = args.root

    def day(self, n: int):
        if self.model is None:
            return synthetic_frame(self.inputs, n, seed=1, shifted=True)
        from bench.demo_lake import tiled_features

        frame = tiled_features(self.root, n)
        frame["score"] = self.model.scorer.predict(None, frame[self.inputs])
        return frame


def baseline_modules(rev: str, folder: Path):
    """include/drift/reference.py and stats.py of git revision ``rev``, imported as a package of their
    own (``baseline_drift``) from ``folder``."""
    package = folder / "baseline_drift"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("reference", "stats"):
        text = subprocess.run(["git", "show", f"{rev}:include/drift/{name}.py"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout
        (package / f"{name}.py").write_text(text.replace("include.drift.reference", "baseline_drift.reference"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("baseline_drift.reference"), importlib.import_module("baseline_drift.stats")


def our_drift(columns: list[str], reference: dict, frame, cfg, baseline=None) -> tuple[float, dict[str, dict]]:
    """Seconds of ``column_drift`` over ``columns``, and its result per column; with ``baseline`` (the
    modules of ``baseline_modules``), column_drift runs on those instead of this tree's."""
    from include.drift import monitor

    results = {}
    with contextlib.ExitStack() as swap:
        if baseline is not None:
            ref_module, stats_module = baseline
            swap.enter_context(mock.patch.object(monitor, "ReferenceDistribution", ref_module.ReferenceDistribution))
            swap.enter_context(mock.patch.object(monitor, "psi", stats_module.psi))
            swap.enter_context(mock.patch.object(monitor, "ks", stats_module.ks))
        t0 = time.perf_counter()
        for c in columns:
            results[c] = monitor.column_drift(c, reference[c], frame[c].to_numpy(dtype=float), cfg)
        return time.perf_counter() - t0, results


def best_of(repeat: int, *args, **kwargs) -> tuple[float, dict[str, dict]]:
    our_drift(*args[:2], args[2].iloc[:1000], *args[3:], **kwargs)  # untimed warm-up (imports scipy.stats)
    runs = [our_drift(*args, **kwargs) for _ in range(repeat)]
    return min(r[0] for r in runs), runs[0][1]


def evidently_drift(folder: Path) -> dict:
    """Run the worker in the Evidently environment on the arrays in ``folder``; its JSON result."""
    subprocess.run([str(EVIDENTLY_PYTHON), str(WORKER), str(folder)], check=True)
    return json.loads((folder / "evidently.json").read_text())


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def timing_table(n: int, ours: float, before: float | None, ev: dict | None) -> str:
    rows = [("ours: `column_drift` (PSI in the stored bins + KS)", ours)]
    if before is not None:
        rows.append(("before (`--baseline`): the same `column_drift` on the old stats.py + reference.py", before))
    if ev is not None:
        rows += [("Evidently: `psi` + `ks` stat tests, called directly", ev["stattests_seconds"]),
                 ("Evidently: `Report` of `ValueDrift` psi + ks (with `Dataset.from_pandas`)", ev["report_seconds"])]
    lines = [f"{n:,} current rows", "", "| computation, all columns | s | × ours |", "|---|---:|---:|"]
    lines += [f"| {name} | {s:.3f} | {s / ours:.1f} |" for name, s in rows]
    return "\n".join(lines)


def agreement_table(ours: dict[str, dict], ev: dict, cfg) -> tuple[str, list[str]]:
    """Per column: PSI and KS side by side with their verdicts; plus the checks of the KS figures."""
    lines = ["| column | kind | our PSI (level) | Evidently PSI (bins) | PSI ≥ 0.1 agrees | our KS stat | "
             "scipy KS stat | our KS p | Evidently KS p | KS drift ours / Evidently | drifted (ours) |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---|---|"]
    same_stat, same_p, report_matches, numeric = 0, 0, 0, 0
    for c, r in ours.items():
        e = ev["columns"][c]
        report_matches += e["report_psi"] == e["psi"] and e.get("report_ks") == e["ks_p_value"]
        psi_agrees = (r["psi"] >= cfg.psi_warn) == e["psi_drifted"]
        if r["kind"] == "numeric":
            numeric += 1
            same_stat += r["ks_statistic"] == e["scipy_ks_statistic"]
            same_p += r["ks_p_value"] == e["ks_p_value"]
            our_ks = r["ks_p_value"] < cfg.ks_p_value and r["ks_statistic"] > cfg.ks_statistic
            ks_cells = (f"{fmt(r['ks_statistic'])} | {fmt(e['scipy_ks_statistic'])} | {fmt(r['ks_p_value'])} | "
                        f"{fmt(e['ks_p_value'])} | {'yes' if our_ks else 'no'} / {'yes' if e['ks_drifted'] else 'no'}")
        else:
            ks_cells = "— | — | — | — | —"
        lines.append(f"| {c} | {r['kind']} | {fmt(r['psi'])} ({r['psi_level']}) | {fmt(e['psi'])} ({e['psi_bins']}) | "
                     f"{'yes' if psi_agrees else '**no**'} | {ks_cells} | {'yes' if r['drifted'] else 'no'} |")
    checks = [f"KS statistic identical (==) to scipy's `ks_2samp` on the same arrays in the Evidently environment: "
              f"{same_stat}/{numeric} numeric columns",
              f"KS p-value identical (==) to Evidently's `ks` test: {same_p}/{numeric}",
              f"Evidently's `Report` values identical to its stat tests called directly: {report_matches}/{len(ours)} columns"]
    return "\n".join(lines), checks


def main() -> int:
    args = arguments()
    if not args.no_evidently and not EVIDENTLY_PYTHON.exists():
        sys.exit(f"no Evidently environment at {EVIDENTLY_PYTHON}: see bench/requirements-evidently.txt")

    from include.drift.config import load_monitoring_config

    cfg = load_monitoring_config()
    source = Source(args, cfg)
    reference = source.reference
    columns = list(reference)
    print(f"{source.title}; {len(columns) - 1} features + the score; {os.cpu_count()} cores; "
          f"load average before {os.getloadavg()[0]:.1f}\n")

    with tempfile.TemporaryDirectory(prefix="bench-drift-library-") as tmp:
        folder = Path(tmp)
        baseline = baseline_modules(args.baseline, folder) if args.baseline else None
        (folder / "reference").mkdir()
        (folder / "current").mkdir()
        kinds = {"numeric": [c for c in columns if reference[c]["kind"] == "numeric"],
                 "categorical": [c for c in columns if reference[c]["kind"] == "categorical"]}
        (folder / "columns.json").write_text(json.dumps(kinds))
        for c in columns:
            np.save(folder / "reference" / f"{c}.npy", np.asarray(reference[c]["sample"], dtype=float))

        ev = None
        for n in args.rows:
            log(f"{n:,} rows: building the day")
            frame = source.day(n)
            log(f"{n:,} rows: our drift")
            ours, results = best_of(args.repeat, columns, reference, frame, cfg)
            before = None
            if baseline is not None:
                log(f"{n:,} rows: the drift of {args.baseline}")
                before, old = best_of(args.repeat, columns, reference, frame, cfg, baseline=baseline)
                ours = min(ours, best_of(args.repeat, columns, reference, frame, cfg)[0])  # both sides of it
            for c in columns:
                np.save(folder / "current" / f"{c}.npy", frame[c].to_numpy(dtype=float))
            del frame  # the worker loads its own copy
            gc.collect()
            if not args.no_evidently:
                log(f"{n:,} rows: Evidently (load average {os.getloadavg()[0]:.1f})")
                ev = evidently_drift(folder)
            print(timing_table(n, ours, before, ev), "\n")
            checks = []
            if ev is not None:
                table, checks = agreement_table(results, ev, cfg)
                print(table, "\n")
            if baseline is not None:
                same = sum(results[c] == old[c] for c in columns)
                checks.append(f"`column_drift` results (PSI, levels, KS statistic and p-value, verdict, "
                              f"proportions) identical (==) to those of {args.baseline}: {same}/{len(columns)} columns")
            print("\n".join(f"- {line}" for line in checks))
            print(f"- load average (1 min) after: {os.getloadavg()[0]:.1f}\n")
        if ev is not None:
            print(f"Evidently {ev['evidently']} (pandas {ev['pandas']}, numpy {ev['numpy']}, scipy {ev['scipy']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

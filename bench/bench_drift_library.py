"""Our drift computation against Evidently's on the same arrays: time, and whether the numbers and the
verdicts agree, for one monitoring day of 1 and 10 million rows.

Set-up (not timed), as in bench_drift.py: the data root of a `make demo` run; the reference is the
champion's stored reference.json, the current values are the newest feature rows tiled to the wanted
size (bench/demo_lake.py) and scored with the champion. Each column's reference values for Evidently
are the stored 5,000-value ``sample``, the values our KS test uses.

Timed:
- ours: ``column_drift`` for every monitored column and the score (PSI in the stored bins, KS against
  the sample), in this process, as ``monitor_day`` runs it;
- Evidently 0.7.23, in its own environment (bench/evidently_worker.py, started with subprocess after
  the arrays are written to a temporary folder as .npy): its ``psi`` and ``ks`` stat tests called
  directly, and a ``Report`` of ``ValueDrift(method="psi")`` and ``ValueDrift(method="ks")`` metrics.
  Imports, array loading and writing are not timed, and both sides are warmed up on the first 1,000
  rows before they are timed (our ``ks`` imports scipy.stats on its first call).

Evidently is not a dependency of the project; its environment is separate and git-ignored:

    python3.11 -m venv bench/.venv-evidently
    bench/.venv-evidently/bin/pip install -r bench/requirements-evidently.txt
    make demo && source scripts/airflow-env.sh && python bench/bench_drift_library.py --root data

(EVIDENTLY_PYTHON names another interpreter with Evidently installed.) Markdown tables go to stdout,
progress to stderr.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.demo_lake import REPO, arguments  # noqa: E402  (after the path is set)

WORKER = REPO / "bench" / "evidently_worker.py"
EVIDENTLY_PYTHON = Path(os.environ.get("EVIDENTLY_PYTHON", REPO / "bench" / ".venv-evidently" / "bin" / "python"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def our_drift(columns: list[str], reference: dict, frame, cfg) -> tuple[float, dict[str, dict]]:
    """Seconds of ``column_drift`` over ``columns``, and its result per column."""
    from include.drift.monitor import column_drift

    results = {}
    t0 = time.perf_counter()
    for c in columns:
        results[c] = column_drift(c, reference[c], frame[c].to_numpy(dtype=float), cfg)
    return time.perf_counter() - t0, results


def evidently_drift(folder: Path) -> dict:
    """Run the worker in the Evidently environment on the arrays in ``folder``; its JSON result."""
    subprocess.run([str(EVIDENTLY_PYTHON), str(WORKER), str(folder)], check=True)
    return json.loads((folder / "evidently.json").read_text())


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.2e}"


def timing_table(n: int, ours: float, ev: dict) -> str:
    rows = [("ours: `column_drift` (PSI in the stored bins + KS)", ours),
            ("Evidently: `psi` + `ks` stat tests, called directly", ev["stattests_seconds"]),
            ("Evidently: `Report` of `ValueDrift` psi + ks (with `Dataset.from_pandas`)", ev["report_seconds"])]
    lines = [f"{n:,} current rows", "", "| computation, all columns | s | × ours |", "|---|---:|---:|"]
    lines += [f"| {name} | {s:.2f} | {s / ours:.1f} |" for name, s in rows]
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
    args = arguments(__doc__, with_version=True)
    if not EVIDENTLY_PYTHON.exists():
        sys.exit(f"no Evidently environment at {EVIDENTLY_PYTHON}: see bench/requirements-evidently.txt")

    from bench.demo_lake import demo_model, tiled_features
    from include.drift.config import load_monitoring_config
    from include.drift.monitor import load_reference
    from include.features.baseline import MODEL_INPUTS

    cfg = load_monitoring_config()
    model = demo_model(args.root, args.version)
    stored = load_reference(model.run_id)
    reference = {**{c: stored["features"][c] for c in MODEL_INPUTS if c not in cfg.exclude_columns},
                 "score": stored["score"]}
    columns = list(reference)
    print(f"model {model.name} v{model.version}; {len(columns) - 1} features + the score; "
          f"{os.cpu_count()} cores; load average before {os.getloadavg()[0]:.1f}\n")

    with tempfile.TemporaryDirectory(prefix="bench-drift-library-") as tmp:
        folder = Path(tmp)
        (folder / "reference").mkdir()
        (folder / "current").mkdir()
        kinds = {"numeric": [c for c in columns if reference[c]["kind"] == "numeric"],
                 "categorical": [c for c in columns if reference[c]["kind"] == "categorical"]}
        (folder / "columns.json").write_text(json.dumps(kinds))
        for c in columns:
            np.save(folder / "reference" / f"{c}.npy", np.asarray(reference[c]["sample"], dtype=float))

        for n in args.rows:
            log(f"{n:,} rows: tiling and scoring")
            frame = tiled_features(args.root, n)
            frame["score"] = model.scorer.predict(None, frame[MODEL_INPUTS])
            log(f"{n:,} rows: our drift")
            our_drift(columns, reference, frame.iloc[:1000], cfg)  # untimed warm-up (imports scipy.stats)
            ours, results = our_drift(columns, reference, frame, cfg)
            for c in columns:
                np.save(folder / "current" / f"{c}.npy", frame[c].to_numpy(dtype=float))
            del frame  # the worker loads its own copy
            gc.collect()
            log(f"{n:,} rows: Evidently (load average {os.getloadavg()[0]:.1f})")
            ev = evidently_drift(folder)
            table, checks = agreement_table(results, ev, cfg)
            print(timing_table(n, ours, ev), "\n")
            print(table, "\n")
            print("\n".join(f"- {line}" for line in checks))
            print(f"- load average (1 min) after: {os.getloadavg()[0]:.1f}\n")
        print(f"Evidently {ev['evidently']} (pandas {ev['pandas']}, numpy {ev['numpy']}, scipy {ev['scipy']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

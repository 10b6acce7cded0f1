"""Evidently's half of bench/bench_drift_library.py. It runs in the separate environment
bench/.venv-evidently (bench/requirements-evidently.txt), never in the project's .venv, and is started
by bench_drift_library.py; it imports nothing from the project.

    bench/.venv-evidently/bin/python bench/evidently_worker.py DIR

DIR holds ``columns.json`` ({"numeric": [...], "categorical": [...]}, the kinds of our stored
reference) and one float64 array per column in ``reference/<column>.npy`` (the reference sample) and
``current/<column>.npy`` (the day). The worker writes ``DIR/evidently.json``.

Timed, after an untimed warm-up of both on the first 1,000 rows (the import of Evidently, the loading
of the arrays and first-call costs are not timed):

- ``stattests``: Evidently's registered stat tests ``psi`` (all columns) and ``ks`` (numeric columns)
  called directly on the two pandas Series of each column: the statistic alone, the counterpart of our
  ``column_drift``;
- ``report``: ``Report([ValueDrift(column=c, method="psi"), ValueDrift(column=c, method="ks"), ...])``
  run on ``Dataset.from_pandas`` of the current and reference frames: the public API of Evidently 0.7,
  which also computes what its HTML widgets draw (histograms, index-binned means).

Not timed: scipy's ``ks_2samp`` statistic of each numeric column (Evidently's KS test returns only the
p-value) and the number of PSI bins Evidently used, both for the agreement table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy


def main(folder: Path) -> int:
    from evidently import DataDefinition, Dataset, Report, __version__
    from evidently.legacy.calculations.stattests import ks_stat_test, psi_stat_test
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.core import ColumnType
    from evidently.metrics import ValueDrift
    from scipy.stats import ks_2samp

    kinds = json.loads((folder / "columns.json").read_text())
    numeric, categorical = kinds["numeric"], kinds["categorical"]
    columns = [*numeric, *categorical]
    reference = pd.DataFrame({c: np.load(folder / "reference" / f"{c}.npy") for c in columns})
    current = pd.DataFrame({c: np.load(folder / "current" / f"{c}.npy") for c in columns})
    ctype = {**dict.fromkeys(numeric, ColumnType.Numerical), **dict.fromkeys(categorical, ColumnType.Categorical)}

    def stattests(ref_frame, cur_frame) -> tuple[float, dict]:
        per_column = {}
        t0 = time.perf_counter()
        for c in columns:
            ref, cur = ref_frame[c], cur_frame[c]
            p = psi_stat_test(ref, cur, ctype[c], None)
            k = ks_stat_test(ref, cur, ctype[c], None) if c in numeric else None
            per_column[c] = {"psi": float(p.drift_score), "psi_drifted": bool(p.drifted),
                             "psi_threshold": p.actual_threshold,
                             "ks_p_value": None if k is None else float(k.drift_score),
                             "ks_drifted": None if k is None else bool(k.drifted),
                             "ks_threshold": None if k is None else k.actual_threshold}
        return time.perf_counter() - t0, per_column

    def report(ref_frame, cur_frame):
        metrics = [ValueDrift(column=c, method="psi") for c in columns]
        metrics += [ValueDrift(column=c, method="ks") for c in numeric]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        t0 = time.perf_counter()
        snapshot = Report(metrics).run(Dataset.from_pandas(cur_frame, definition),
                                       Dataset.from_pandas(ref_frame, definition))
        return time.perf_counter() - t0, snapshot

    # untimed warm-up on the first 1,000 rows: first-call costs are not what is measured
    stattests(reference, current.iloc[:1000])
    report(reference, current.iloc[:1000])
    stattests_seconds, per_column = stattests(reference, current)
    report_seconds, snapshot = report(reference, current)

    # the Report's values, to check that they are the stat tests' values
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        per_column[cfg["column"]][f"report_{cfg['method']}"] = float(m["value"])
    for c in columns:  # not timed: what the agreement table needs beyond Evidently's results
        ref_pct, _ = get_binned_data(reference[c], current[c], ctype[c], 30)  # 30: psi's n_bins, unused by its binning
        per_column[c]["psi_bins"] = len(ref_pct)
        if c in numeric:
            per_column[c]["scipy_ks_statistic"] = float(ks_2samp(reference[c], current[c]).statistic)

    out = {"evidently": __version__, "pandas": pd.__version__, "numpy": np.__version__,
           "scipy": scipy.__version__, "rows": len(current), "stattests_seconds": stattests_seconds,
           "report_seconds": report_seconds, "columns": per_column}
    (folder / "evidently.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

"""Model quality of the training DAG's families on the handbook's evaluation protocol, over rolling test
weeks and simulator seeds, so that no figure rests on one lucky week.

Protocol (shared/SIMULATOR.md, "Evaluation protocol"): train on 14 labelled days, skip the 7-day label
delay, test on the next 7 days with the cards already known to be compromised removed
(``include.training.dataset.evaluation_rows``). The newest block is the handbook's week (train
2018-07-18..31, gap 2018-08-01..07, test 2018-08-08..14, simulation from 2018-04-01); ``--weeks`` N
blocks are that one shifted back by 0, 7, ..., 7(N-1) days, plus one older block (7N days back) that
only serves the champion (below). Metrics (``include.training.metrics.evaluate``): AUC ROC, average
precision and CP@100; mean and sample standard deviation over every (seed, week).

Data, per seed: ``simulate`` at default scale (5,000 customers, 10,000 terminals), published to raw
partitions and read back by an in-process Spark session the way the feature job reads them; Spark computes
``baseline_features`` with every group of ``include.pipelines.fraud.features.groups`` on all days that have the full
37-day lookback. The result (features, label, day) is cached as parquet in bench/results/quality/ (git
ignored), keyed by seed, scale and a hash of include/pipelines/fraud/features/baseline.py, include/pipelines/fraud/features/groups.py and
include/pipelines/fraud/simulator/generator.py: a rerun skips simulation and Spark.

Models: each family of include/pipelines/fraud/training.yaml with its configured ``params`` (no tuning unless
``--tune``), fitted by ``include.training.tuning.fit_and_score`` with the configured class weight and
seed, training.yaml's ``threads``. Besides the families:

- ensemble: the ``mean_ensemble`` model of training.yaml, the mean of its members' predicted
  probabilities, computed from the members' fits of the same week (what ``MeanEnsemble`` computes; its
  "fit s" is the sum of theirs);
- champion: the training DAG registers the family with the best primary metric on the block's own
  evaluation week (``include.training.pipeline.select_challenger``). To stay honest the benchmark picks
  the family on the PREVIOUS (one week older) block's evaluation and reports that family's model of the
  current week; the gate's margin and guardrails are not modelled.

Tables: (1) production inputs (``MODEL_INPUTS``), (2) the 15 baseline inputs and the production gain,
(3) a feature-group ablation with xgboost, (4) the handbook week alone next to the handbook's published
figures, (5, ``--tune``) Optuna tuning on ``window.folds`` prequential folds (the block shifted back by
``test_days``) against the configured parameters, (6) what the data allows: the test frauds by
scenario, the share no point-in-time feature can see, and the average precision of an oracle that ranks
every other fraud first (``ceiling``; ``--ceiling-only`` prints just that, without training). The tables are printed as markdown and saved with
every per-fit record as JSON (and the markdown) in bench/results/quality/.

    source scripts/airflow-env.sh && python bench/bench_quality.py             # 2 seeds x 8 weeks
    source scripts/airflow-env.sh && python bench/bench_quality.py --quick     # smoke check, ~3 min

Run time on 2 shared cores: about 2 min of simulation and Spark per seed (cached after the first run)
and 1.5-2 min of training per (seed, week), ablation included, so 35-40 min for the default (25-30 with
the features cached or ``--skip-ablation``); ``--tune`` multiplies the training time by the trial budget
times the number of folds (hours).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.config import LABEL_DELAY_DAYS, REPO_ROOT
from include.pipelines.fraud.features.baseline import (
    BASELINE_COLUMNS,
    MODEL_INPUTS,
    TRANSACTION_LOOKBACK_DAYS,
    baseline_features,
)
from include.pipelines.fraud.features.groups import GROUP_COLUMNS, MODEL_GROUPS, column_names
from include.pipelines.fraud.simulator.generator import SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_raw_partitions
from include.storage import remove_tree, write_parquet_atomic
from include.training.config import ENSEMBLE, ModelSpec, TrainingConfig, WindowConfig, load_training_config
from include.training.dataset import ID_COLUMNS, LABEL, evaluation_rows
from include.training.metrics import evaluate
from include.training.tuning import best_trial, fit_and_score, tune
from include.training.windows import Block

if TYPE_CHECKING:
    import pandas as pd

RESULTS = REPO_ROOT / "bench" / "results" / "quality"
START = dt.date(2018, 4, 1)
HANDBOOK_TEST_END = dt.date(2018, 8, 14)
N_DAYS = (HANDBOOK_TEST_END - START).days + 1  # 136
TEST_DAYS = 7
SCENARIO = "tx_fraud_scenario"  # never a model input: it only sorts the frauds for the ceiling
CODE = ("include/pipelines/fraud/features/baseline.py", "include/pipelines/fraud/features/groups.py", "include/pipelines/fraud/simulator/generator.py")
ALL_GROUPS = tuple(GROUP_COLUMNS)
BASELINE_INPUTS = ["tx_amount", *BASELINE_COLUMNS]
METRICS = {"auc_roc": "AUC ROC", "average_precision": "AP", "card_precision": "CP@100"}
# Handbook (Fraud Detection Handbook, baseline features, same protocol), its best published figures
PUBLISHED = {"XGBoost (handbook)": (0.869, 0.687, 0.303), "feed-forward network (handbook)": (0.876, 0.675, 0.303)}
PRODUCTION, BASELINE = "production", "baseline"


@dataclass(frozen=True)
class Scale:
    customers: int
    terminals: int


# --- data ------------------------------------------------------------------------------------------

@functools.cache  # once per run: the code imported at start-up is the code that computes the features
def code_hash() -> str:
    digest = hashlib.sha256()
    for path in CODE:
        digest.update(path.encode() + b"\0" + (REPO_ROOT / path).read_bytes())
    return digest.hexdigest()[:12]


def feature_days(sim: SimulatorConfig) -> tuple[dt.date, dt.date]:
    """Every simulated day whose features have the full lookback."""
    return sim.start_date + dt.timedelta(days=TRANSACTION_LOOKBACK_DAYS), sim.end_date


def compute_examples(sim: SimulatorConfig, work: Path) -> pd.DataFrame:
    """Simulate, publish raw partitions, and compute every feature group in Spark; one row per transaction."""
    import pandas as pd

    from include.spark import get_session

    t0 = time.perf_counter()
    transactions = simulate(sim).transactions
    write_raw_partitions(transactions, work)
    log(f"  simulated {len(transactions):,} transactions ({sim.start_date}..{sim.end_date}) in "
        f"{time.perf_counter() - t0:.0f}s")
    start, end = feature_days(sim)
    t0 = time.perf_counter()
    # the window functions of every group over ~1 M rows: more driver heap than local mode's 1 GB default
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 4g pyspark-shell")
    spark = get_session(f"bench-quality seed {sim.seed}")
    try:
        raw = spark.read.parquet(str(work / "raw" / "transactions"))
        # every label that had arrived by the last day: the terminal windows read none younger than the delay
        labels = spark.read.parquet(str(work / "raw" / "labels")).select("transaction_id", LABEL)
        out = work / "features"
        baseline_features(raw, labels, start, end, groups=ALL_GROUPS).write.parquet(str(out))
    finally:
        spark.stop()
    features = pd.read_parquet(out)
    log(f"  features of {start}..{end} ({len(features):,} rows, groups {', '.join(ALL_GROUPS)}) in Spark in "
        f"{time.perf_counter() - t0:.0f}s")
    examples = features.drop(columns="ds").merge(transactions[["transaction_id", LABEL, SCENARIO]],
                                                 on="transaction_id", how="left", validate="one_to_one")
    if examples[LABEL].isna().any():
        raise RuntimeError("a feature row has no simulated label")
    examples[LABEL] = examples[LABEL].astype("int8")
    examples.insert(len(ID_COLUMNS), "ds", examples["tx_datetime"].dt.date)
    return examples.sort_values("transaction_id", ignore_index=True)  # the DAG's row order


def load_examples(seed: int, scale: Scale) -> pd.DataFrame:
    """The cached examples of ``seed``; computed (simulation and Spark) and cached when absent."""
    import pandas as pd

    sim = SimulatorConfig(n_customers=scale.customers, n_terminals=scale.terminals, n_days=N_DAYS,
                          start_date=START, seed=seed)
    path = RESULTS / f"examples-seed{seed}-{scale.customers}c-{scale.terminals}t-{code_hash()}.parquet"
    if path.exists():
        log(f"seed {seed}: cached examples {path.relative_to(REPO_ROOT)}")
        examples = pd.read_parquet(path)
        examples["ds"] = pd.to_datetime(examples["ds"]).dt.date
        if SCENARIO not in examples:  # cached before the ceiling needed it: the simulation is seconds
            scenarios = simulate(sim).transactions[["transaction_id", SCENARIO]]
            examples = examples.merge(scenarios, on="transaction_id", how="left", validate="one_to_one")
        return examples
    log(f"seed {seed}: simulating and computing features (cached as {path.relative_to(REPO_ROOT)})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"_work-seed{seed}-", dir=RESULTS))
    try:
        examples = compute_examples(sim, work)
    finally:
        remove_tree(work)
    write_parquet_atomic(examples, path)
    return examples


# --- protocol --------------------------------------------------------------------------------------

def rolling_blocks(weeks: int, window: WindowConfig) -> list[Block]:
    """Week k = the handbook block shifted back 7k days; k = 0..weeks (the last only picks the champion)."""
    return [Block.ending(HANDBOOK_TEST_END - dt.timedelta(days=TEST_DAYS * k), window) for k in range(weeks + 1)]


def tuning_folds(block: Block, window: WindowConfig) -> list[Block]:
    """The prequential folds of ``block``, as plan_training lays them out: shifted back by test_days each."""
    return [Block.ending(block.test_end - dt.timedelta(days=j * window.test_days), window)
            for j in range(1, window.folds + 1)]


def check_history(blocks: list[Block], first_feature_day: dt.date) -> None:
    earliest = min(b.train_start for b in blocks)
    if earliest < first_feature_day:
        raise SystemExit(f"the oldest training window starts {earliest}, before {first_feature_day} (the first day "
                         f"with the full {TRANSACTION_LOOKBACK_DAYS}-day lookback after {START}): ask for fewer "
                         "weeks or shorter windows")


def rows(examples: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    return examples[(examples["ds"] >= start) & (examples["ds"] <= end)]


# --- runs ------------------------------------------------------------------------------------------

@dataclass
class Runner:
    """Fits each (seed, week, model, inputs) once and keeps a flat list of records."""

    cfg: TrainingConfig
    records: list[dict[str, Any]]

    def __post_init__(self) -> None:
        self._done: dict[tuple, dict[str, Any]] = {}

    def fit(self, seed: int, week: int, spec: ModelSpec, inputs_name: str, inputs: list[str], train: pd.DataFrame,
            test: pd.DataFrame, params: dict[str, Any] | None = None, **extra: Any) -> tuple[dict, np.ndarray]:
        key = (seed, week, spec.name, tuple(inputs), json.dumps(params, sort_keys=True, default=str))
        if key in self._done:
            record = {**self._done[key], "inputs": inputs_name}  # the same fit under another table's name
            self.records.append(record)
            return record, record["_scores"]
        t0 = time.perf_counter()
        _, scored = fit_and_score(spec, spec.params if params is None else params, train, test, self.cfg.seed,
                                  inputs=inputs, threads=self.cfg.threads)
        seconds = time.perf_counter() - t0
        record = self.record(seed, week, spec.name, spec.family, inputs_name, scored, fit_seconds=seconds, **extra)
        record["_scores"] = scored["score"].to_numpy()
        self._done[key] = record
        return record, record["_scores"]

    def record(self, seed: int, week: int, model: str, family: str, inputs_name: str, scored: pd.DataFrame,
               **extra: Any) -> dict[str, Any]:
        m = evaluate(scored, threshold=0.5, k=self.cfg.metrics.top_k)
        record = {"seed": seed, "week": week, "model": model, "family": family, "inputs": inputs_name,
                  **{k: m[k] for k in (*METRICS, "n_transactions", "n_frauds")}, **extra}
        self.records.append(record)
        return record


def run_seed(runner: Runner, seed: int, examples: pd.DataFrame, blocks: list[Block], specs: list[ModelSpec],
             ablation: dict[str, list[str]], tune_window: WindowConfig | None, ceiling_only: bool = False) -> None:
    cfg = runner.cfg
    ablation_spec = next((s for s in specs if s.family == "xgboost"), None)
    for week, block in enumerate(blocks):
        t0 = time.perf_counter()
        train = rows(examples, block.train_start, block.train_end)
        test = evaluation_rows(examples, block, LABEL_DELAY_DAYS)
        current = week < len(blocks) - 1  # the oldest block only picks the champion of the one after it
        if current:
            runner.records.append({"seed": seed, "week": week, "model": "ceiling", "inputs": "oracle",
                                   **ceiling(test)})
        if current and ceiling_only:
            continue
        for inputs_name, inputs in ((PRODUCTION, MODEL_INPUTS), (BASELINE, BASELINE_INPUTS)):
            fitted = {spec.name: runner.fit(seed, week, spec, inputs_name, inputs, train, test)
                      for spec in specs if spec.family != ENSEMBLE}
            for spec in specs:
                members = [m["name"] for m in spec.params.get("members", [])] if spec.family == ENSEMBLE else []
                if members and all(m in fitted for m in members):
                    # the mean of the members' scores is what MeanEnsemble computes from the same fits
                    runner.record(seed, week, spec.name, spec.family, inputs_name,
                                  test.assign(score=np.mean([fitted[m][1] for m in members], axis=0)),
                                  fit_seconds=sum(fitted[m][0]["fit_seconds"] for m in members), members=members)
        if not current and ceiling_only:
            continue
        if current and ablation and ablation_spec is not None:
            for name, inputs in ablation.items():
                runner.fit(seed, week, ablation_spec, f"ablation:{name}", inputs, train, test)
        if current and tune_window is not None:
            folds = [(rows(examples, b.train_start, b.train_end), evaluation_rows(examples, b, LABEL_DELAY_DAYS))
                     for b in tuning_folds(block, tune_window)]
            for spec in (s for s in specs if s.family != ENSEMBLE):  # an ensemble has nothing to tune
                t1 = time.perf_counter()
                trials = tune(spec, folds, cfg.metrics, trials=cfg.trials_for(spec),
                              safety_timeout_seconds=cfg.safety_timeout_seconds, seed=cfg.seed, threads=cfg.threads,
                              inputs=MODEL_INPUTS)
                best = best_trial(trials)
                runner.fit(seed, week, spec, "tuned", MODEL_INPUTS, train, test, params=best.params,
                           tuning_seconds=time.perf_counter() - t1, trials=len(trials), best_params=best.params)
        log(f"  seed {seed} week {week} (test {block.test_start}..{block.test_end}): train {len(train):,} rows "
            f"({int(train[LABEL].sum())} frauds), test {len(test):,} rows ({int(test[LABEL].sum())} frauds), "
            f"{time.perf_counter() - t0:.0f}s")


def ceiling(test: pd.DataFrame) -> dict[str, float]:
    """What no point-in-time feature can reach. A compromised terminal (scenario 2) turns all its
    transactions into fraud, and nothing but their labels shows it: amounts and customers are as
    usual. Its frauds are invisible while no fraud of the terminal is known yet (no fraud in its
    delayed 30-day window: the first 7 days of a compromise, or longer on a quiet terminal). Oracle:
    every other fraud ranked above every genuine transaction, the invisible ones at random among the
    genuine; its average precision bounds what features can add."""
    from sklearn.metrics import average_precision_score

    fraud = test[LABEL].to_numpy() == 1
    blind = fraud & (test[SCENARIO].to_numpy() == 2) & (test["terminal_nb_fraud_30d"].to_numpy() == 0)
    score = np.where(fraud & ~blind, 2.0, np.random.default_rng(0).random(len(test)))
    return {"n_frauds": int(fraud.sum()), "blind_frauds": int(blind.sum()), "blind_share": float(blind.sum() / fraud.sum()),
            "scenario_1": int((fraud & (test[SCENARIO].to_numpy() == 1)).sum()),
            "scenario_2": int((fraud & (test[SCENARIO].to_numpy() == 2)).sum()),
            "scenario_3": int((fraud & (test[SCENARIO].to_numpy() == 3)).sum()),
            "average_precision": float(average_precision_score(fraud, score))}


def ceiling_table(records: list[dict], weeks: int) -> str:
    rs = [r for r in select(records, model="ceiling") if r["week"] < weeks]
    body = [[f"{statistics.fmean(r['n_frauds'] for r in rs):.0f}",
             *[f"{statistics.fmean(r[f'scenario_{i}'] for r in rs):.0f}" for i in (1, 2, 3)],
             f"{statistics.fmean(r['blind_frauds'] for r in rs):.0f}", fmt([r["blind_share"] for r in rs]),
             fmt([r["average_precision"] for r in rs])]]
    return markdown(["test frauds / week", "scenario 1", "scenario 2", "scenario 3", "invisible (scenario 2, "
                     "no known fraud at the terminal)", "invisible share", "oracle AP ceiling"], body, ())


def add_champions(records: list[dict[str, Any]], specs: list[ModelSpec], primary: str, weeks: int) -> None:
    """For week k, the family that select_challenger would pick on week k + 1, and its model of week k."""
    from include.training.pipeline import _primary

    names = {s.name for s in specs}
    index = {(r["seed"], r["week"], r["inputs"], r["model"]): r for r in records if r["model"] in names}
    for seed in sorted({r["seed"] for r in records}):
        for inputs_name in (PRODUCTION, BASELINE):
            for week in range(weeks):
                older = [{"model": n, "metrics": index[(seed, week + 1, inputs_name, n)]} for n in sorted(names)]
                pick = max(older, key=lambda s: (_primary(s, primary), s["model"]))["model"]
                chosen = index[(seed, week, inputs_name, pick)]
                records.append({**{k: v for k, v in chosen.items() if k not in ("_scores", "fit_seconds")},
                                "model": "champion", "picked": pick})


# --- tables ----------------------------------------------------------------------------------------

def select(records: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if x == x]
    if not v:
        return float("nan"), float("nan")
    return statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else float("nan")


def fmt(values: list[float], digits: int = 3, signed: bool = False) -> str:
    mean, std = mean_std(values)
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def paired(a: list[dict], b: list[dict], metric: str) -> list[float]:
    """a - b per (seed, week)."""
    other = {(r["seed"], r["week"]): r[metric] for r in b}
    return [r[metric] - other[(r["seed"], r["week"])] for r in a if (r["seed"], r["week"]) in other]


def markdown(header: list[str], body: list[list[str]], text_columns: tuple[int, ...] = (0,)) -> str:
    rule = "|" + "|".join("---" if i in text_columns or i - len(header) in text_columns else "---:"
                          for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def model_rows(records: list[dict], inputs_name: str, specs: list[ModelSpec], weeks: int) -> list[tuple[str, list]]:
    current = [r for r in records if r["inputs"] == inputs_name and r["week"] < weeks]
    out = [(s.name, select(current, model=s.name)) for s in specs]
    return out + ([("champion", select(current, model="champion"))] if select(current, model="champion") else [])


def quality_table(records: list[dict], inputs_name: str, specs: list[ModelSpec], weeks: int) -> str:
    body = []
    for name, rs in model_rows(records, inputs_name, specs, weeks):
        if name == "champion":
            picks = Counter(r["picked"] for r in rs)
            note = "picked " + ", ".join(f"{m} {n}x" for m, n in picks.most_common())
            seconds = "—"
        else:
            note = f"mean of {', '.join(rs[0]['members'])}" if rs[0].get("members") else rs[0]["family"]
            seconds = f"{statistics.fmean(r['fit_seconds'] for r in rs):.1f}"
        body.append([name, *[fmt([r[m] for r in rs]) for m in METRICS], seconds, str(len(rs)), note])
    return markdown(["model", *[f"{h} (mean ± std)" for h in METRICS.values()], "fit s", "n", "note"], body, (0, -1))


def gain_lines(records: list[dict], specs: list[ModelSpec], weeks: int) -> str:
    champ = {i: [r for r in select(records, model="champion", inputs=i) if r["week"] < weeks] for i in (PRODUCTION,
                                                                                                          BASELINE)}
    if not champ[PRODUCTION]:
        return ""
    lines = [f"Champion, production minus baseline inputs (paired by seed and week): "
             f"ΔAP {fmt(paired(champ[PRODUCTION], champ[BASELINE], 'average_precision'), signed=True)}, "
             f"ΔCP@100 {fmt(paired(champ[PRODUCTION], champ[BASELINE], 'card_precision'), signed=True)}."]
    best_name, best = max(model_rows(records, BASELINE, specs, weeks),
                          key=lambda x: mean_std([r["average_precision"] for r in x[1]])[0])
    lines.append(f"Champion (production) minus the best baseline-input model by mean AP ({best_name}): "
                 f"ΔAP {fmt(paired(champ[PRODUCTION], best, 'average_precision'), signed=True)}, "
                 f"ΔCP@100 {fmt(paired(champ[PRODUCTION], best, 'card_precision'), signed=True)} "
                 "(issue 17 goals: ΔAP >= +0.05, ΔCP@100 >= +0.02).")
    return "\n".join(lines)


def ablation_table(records: list[dict], names: list[str], weeks: int) -> str:
    runs = {n: [r for r in select(records, inputs=f"ablation:{n}") if r["week"] < weeks] for n in names}
    base = runs["baseline"]
    body = [[n, *[fmt([r[m] for r in rs]) for m in METRICS],
             fmt(paired(rs, base, "average_precision"), signed=True), fmt(paired(rs, base, "card_precision"), signed=True),
             f"{statistics.fmean(r['fit_seconds'] for r in rs):.1f}"]
            for n, rs in runs.items()]
    return markdown(["inputs", *METRICS.values(), "ΔAP vs baseline", "ΔCP@100 vs baseline", "fit s"], body)


def handbook_table(records: list[dict], specs: list[ModelSpec]) -> str:
    body = []
    for name in [s.name for s in specs] + ["champion"]:
        cells = []
        for inputs_name in (BASELINE, PRODUCTION):
            r = select(records, seed=0, week=0, inputs=inputs_name, model=name)
            cells += [f"{r[0][m]:.3f}" for m in METRICS] if r else ["—"] * 3
        picks = [select(records, seed=0, week=0, inputs=i, model=name) for i in (BASELINE, PRODUCTION)]
        label = (f"champion ({' / '.join(p[0]['picked'] if p else '—' for p in picks)})"
                 if name == "champion" else name)
        body.append([label, *cells])
    body += [[name, *[f"{v:.3f}" for v in figures], "—", "—", "—"] for name, figures in PUBLISHED.items()]
    header = ["model (champion: baseline / production pick)",
              *[f"{h} {i}" for i in ("baseline", "production") for h in METRICS.values()]]
    return markdown(header, body)


def tuning_table(records: list[dict], specs: list[ModelSpec], weeks: int) -> str:
    body = []
    for spec in specs:
        tuned = select(records, inputs="tuned", model=spec.name)
        plain = [r for r in select(records, inputs=PRODUCTION, model=spec.name) if r["week"] < weeks]
        body.append([spec.name, f"{statistics.fmean(r['trials'] for r in tuned):.1f}",
                     f"{statistics.fmean(r['tuning_seconds'] for r in tuned):.0f}",
                     fmt([r["average_precision"] for r in tuned]),
                     fmt(paired(tuned, plain, "average_precision"), signed=True),
                     fmt(paired(tuned, plain, "card_precision"), signed=True),
                     fmt(paired(tuned, plain, "auc_roc"), signed=True)])
    return markdown(["model", "trials", "tuning s", "AP tuned", "ΔAP vs configured", "ΔCP@100", "ΔAUC"], body)


# --- main ------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="simulator seeds (default 0 1; 0 with --quick)")
    p.add_argument("--weeks", type=int, default=None, help="rolling test weeks (default 8; 2 with --quick)")
    p.add_argument("--families", nargs="+", default=None, metavar="NAME",
                   help="model names or families of training.yaml (default: all)")
    p.add_argument("--quick", action="store_true", help="500 customers, 1,000 terminals, seed 0, 2 weeks")
    p.add_argument("--skip-ablation", action="store_true", help="leave out the feature-group ablation")
    p.add_argument("--tune", action="store_true", help="also tune each family with its Optuna budget (slow)")
    p.add_argument("--ceiling-only", action="store_true", help="only the test sets' make-up and the oracle ceiling "
                   "(no model is trained; seconds with the examples cached)")
    args = p.parse_args(argv)
    began = time.perf_counter()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1])
    weeks = args.weeks if args.weeks is not None else (2 if args.quick else 8)
    scale = Scale(500, 1_000) if args.quick else Scale(5_000, 10_000)
    if weeks < 1:
        p.error("--weeks must be >= 1")

    cfg = load_training_config()
    specs = [s for s in cfg.models if not args.families or s.name in args.families or s.family in args.families]
    if not specs:
        p.error(f"--families {args.families} matches none of {[(s.name, s.family) for s in cfg.models]}")
    window = WindowConfig(train_days=14, gap_days=LABEL_DELAY_DAYS, test_days=TEST_DAYS, folds=cfg.window.folds)
    blocks = rolling_blocks(weeks, window)
    needed = blocks + ([f for b in blocks[:-1] for f in tuning_folds(b, window)] if args.tune else [])
    check_history(needed, feature_days(SimulatorConfig(n_days=N_DAYS, start_date=START))[0])
    ablation: dict[str, list[str]] = {}
    if not args.skip_ablation:
        ablation = {"baseline": BASELINE_INPUTS,
                    **{f"+ {g}": [*BASELINE_INPUTS, *GROUP_COLUMNS[g]] for g in ALL_GROUPS},
                    "+ all groups": [*BASELINE_INPUTS, *column_names(ALL_GROUPS)],
                    f"+ MODEL_GROUPS ({', '.join(MODEL_GROUPS) or 'none'})": MODEL_INPUTS}

    command = " ".join(["python bench/bench_quality.py", shlex.join(sys.argv[1:] if argv is None else argv)]).strip()
    header = (f"`{command}`\n\n{os.cpu_count()} cores, threads {cfg.threads}; "
              f"{scale.customers:,} customers, {scale.terminals:,} terminals, seeds {seeds}, {weeks} test weeks "
              f"{blocks[weeks - 1].test_start}..{blocks[0].test_end} (plus {blocks[weeks].test_start}.."
              f"{blocks[weeks].test_end} for the champion's pick), train {window.train_days} days, "
              f"gap {window.gap_days}, test {window.test_days}; models {[s.name for s in specs]} with their "
              f"training.yaml params, seed {cfg.seed}; features hash {code_hash()}; "
              f"MODEL_INPUTS = tx_amount + baseline + {list(MODEL_GROUPS)}")
    log(header)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"quality-{stamp}{'-quick' if args.quick else ''}"
    meta = {"command": command, "cores": os.cpu_count(), "threads": cfg.threads, "seeds": seeds, "weeks": weeks,
            "scale": scale.__dict__, "features_hash": code_hash(), "model_groups": list(MODEL_GROUPS),
            "blocks": [b.as_dict() for b in blocks]}

    def save(records: list[dict], **extra: Any) -> None:
        out.with_suffix(".json").write_text(json.dumps(
            {**meta, **extra, "records": [{k: v for k, v in r.items() if k != "_scores"} for r in records]},
            indent=1, default=str))

    runner = Runner(cfg, [])
    for seed in seeds:
        examples = load_examples(seed, scale)
        run_seed(runner, seed, examples, blocks, specs, ablation, window if args.tune else None, args.ceiling_only)
        del examples
        save(runner.records, partial=f"after seed {seed}")  # a run cut short keeps its fits
    records = runner.records
    n = f"{len(seeds)} seed(s) x {weeks} week(s)"
    ceiling_section = (f"## 6. What the data allows: the test sets' frauds and an oracle ceiling, {n}\n\n"
                       + ceiling_table(records, weeks))
    if args.ceiling_only:
        print("\n" + "\n\n".join([header, ceiling_section]))
        return 0
    add_champions(records, specs, cfg.metrics.primary, weeks)

    sections = [
        f"## 1. Production inputs (MODEL_INPUTS, {len(MODEL_INPUTS)} columns), {n}\n\n"
        + quality_table(records, PRODUCTION, specs, weeks),
        f"## 2. Baseline inputs (tx_amount + the 15 handbook features), {n}\n\n"
        + quality_table(records, BASELINE, specs, weeks) + "\n\n" + gain_lines(records, specs, weeks),
    ]
    if ablation and any(s.family == "xgboost" for s in specs):
        sections.append(f"## 3. Feature-group ablation, xgboost, {n}\n\n" + ablation_table(records, list(ablation), weeks))
    if 0 in seeds:
        note = "" if not args.quick else "\n\n(--quick: another scale; not comparable with the handbook's figures)"
        sections.append(f"## 4. The handbook week, seed 0 (train {blocks[0].train_start}..{blocks[0].train_end}, "
                        f"test {blocks[0].test_start}..{blocks[0].test_end})\n\n" + handbook_table(records, specs) + note)
    if args.tune:
        sections.append(f"## 5. Tuning ({window.folds} prequential folds, training.yaml budget) vs configured params, "
                        f"production inputs, {n}\n\n" + tuning_table(records, specs, weeks))
    sections.append(ceiling_section)
    wall = time.perf_counter() - began
    report = "\n\n".join([header, *sections, f"Wall time {wall / 60:.1f} min."])
    print("\n" + report)

    out.with_suffix(".md").write_text(report + "\n")
    save(records, wall_seconds=wall, tables=sections)
    log(f"saved {out.with_suffix('.md').relative_to(REPO_ROOT)} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

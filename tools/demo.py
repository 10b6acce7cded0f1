"""`make demo`: the reference pipeline end to end on simulated card transactions, through a real
Airflow (scheduler, DAG processor, triggerer and API server as local processes, LocalExecutor) and
the real engines (Spark, Great Expectations, MLflow, the warehouse through SQLAlchemy).

1. Simulate ``--days`` of history and ``--nights`` more days; a drift scenario (``--drift``) starts on
   night ``--drift-night``. Every day's landing files are written up front; ingest reads one day.
2. Start a Spark Connect server (``--spark connect``, the default: the Spark tasks run their jobs on it
   and pay no JVM start; ``--spark submit`` runs a spark-submit application per task) and the Airflow
   services on ``--port`` (the UI shows the runs as they happen).
3. History: one ``ingest`` run over the whole range (params ``start``/``end``); its Asset event
   triggers one ``features`` run over the range (one Spark application); then ``training`` as of the
   last day with the logistic baseline only (param ``models``): a quick first champion.
   ``scoring`` and ``monitoring`` stay paused until there is one.
4. Nights, one day at a time: the demo triggers ``ingest`` for the day; the Asset schedules do the
   rest (features -> scoring -> monitoring, and training when monitoring emits ``drift_alert``). The
   gate decides whether the retrained model becomes champion; later nights are scored by whichever
   version is champion then.
5. A summary: rows scored per night with the model version, the PSI table per night, the alerts and
   the gate decisions, the top flags with their reasons, the slice table, live performance and the
   shadow challenger. The DAGs are paused again and the services stopped; ``make airflow`` shows the
   run history.

**The shadow challenger** (``--shadow-days N``, N > 0; docs/shadow.md): the demo runs with a training
configuration of its own (the pipeline's, with ``shadow.days: N``; BATCHML_TRAINING_CONFIG), so that a
challenger the gate approves waits in shadow instead of being promoted. The first champion is trained
as of ``history end - 8`` and a challenger (``--challenger``, xgboost) as of the next day; the gate's
approval puts it behind the alias ``shadow``. The history days after the first champion are then
scored by both (a ``features_baseline`` Asset event starts ``scoring``, whose ``predictions_fraud``
event starts ``shadow_scoring``); the labels of the last 7 arrive on the nights, and neither model saw
them (training as of D reads labels up to D - 7). Every night, monitoring measures both on the labels
that arrive and ``review_shadow`` promotes or refuses the challenger once it has N label days (one by
default: the first night's monitoring decides, before any retraining it may start replaces the shadow).
``--shadow-days 0`` trains the first champion on the last history day and shows no shadow.

    python -m tools.demo --days 80 --nights 2 --drift amount_shift --drift-night 2 --shadow-days 1 --trials 1

``--days`` must leave the first champion's reference window (as_of - 34 .. as_of - 21) clear of the
37-day warm-up of the terminal windows, or every night reports drift against a reference computed on
truncated windows. The weekly time schedule of training (Sundays 03:00) is not part of the demo.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import textwrap
import time
from pathlib import Path

from include.assets import FEATURES_BASELINE
from include.config import LABEL_DELAY_DAYS, REPO_ROOT, data_root, mlflow_tracking_uri
from include.pipelines.fraud.simulator.generator import DriftScenario, SimulatorConfig, simulate
from include.pipelines.fraud.simulator.landing import write_landing_files
from include.run_days import event_extra
from include.storage import as_date, day_range, landing_file, parquet_row_count, partition_file
from tools.local_airflow import AirflowAPI, LocalAirflow
from tools.supervisor import ServiceError

DEFAULT_MAGNITUDE = {"amount_shift": 1.5, "night_shift": 0.3, "terminal_wave": 20}
MIN_HISTORY_DAYS = 72  # first training as of day 71: its reference window starts on day 37
DAGS = ("ingest", "features", "training", "scoring", "monitoring", "shadow_scoring")
# With a shadow challenger the first champion is trained this many days before the history ends and the
# challenger the day after it: the last 7 history days (whose labels arrive on the first 7 nights) are
# then unseen by both (training as of D reads labels up to D - LABEL_DELAY_DAYS) and scored by both.
SHADOW_LEAD_DAYS = LABEL_DELAY_DAYS + 1
# The first champion is the logistic baseline alone (quick to train); every later run, the drift
# retraining included, trains all the families of training.yaml and must beat it through the gate.
FIRST_MODEL = "logistic"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=80, help="days of history before the nights")
    p.add_argument("--nights", type=int, default=2, help="nightly cycles after the first training")
    p.add_argument("--drift", choices=[*DEFAULT_MAGNITUDE, "none"], default="amount_shift")
    p.add_argument("--drift-night", type=int, default=2, help="the night (1-based) the drift starts")
    p.add_argument("--magnitude", type=float, help=f"drift magnitude (default per kind: {DEFAULT_MAGNITUDE})")
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1))
    # half the simulator's default scale (5,000 / 10,000): the story is the same, and the demo fits in
    # 10 minutes on 2 cores; `make demo CUSTOMERS=5000 TERMINALS=10000` runs the full scale
    p.add_argument("--customers", type=int, default=2500)
    p.add_argument("--terminals", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=int(os.environ.get("BATCHML_DEMO_PORT", 8080)))
    p.add_argument("--shadow-days", type=int, default=1,
                   help="label days of shadow evidence before the challenger's review (training.yaml shadow.days "
                        "in the demo's own training configuration); 0: no shadow challenger")
    p.add_argument("--challenger", default="xgboost", help="the model trained as the shadow challenger")
    p.add_argument("--trials", type=int, help="at most this many Optuna trials per model family (default: the "
                   "training configuration's; `make demo` passes 1 to stay under 10 minutes on 2 cores)")
    p.add_argument("--spark", choices=("connect", "submit"), default="connect",
                   help="connect: the Spark tasks run their jobs on one Spark Connect server the demo starts "
                        "(no JVM start per task); submit: a spark-submit application per task, through the "
                        "spark_default connection as configured (airflow_settings.yaml, or the environment)")
    p.add_argument("--shadow-backfill", action="store_true",
                   help="after the nights, point the alias shadow at the newest version and score the nights with "
                        "it in shadow (shadow_scoring, params start/end), then rerun monitoring on them: the shadow's "
                        "mechanics on a run too short for --shadow-days (the production-path test)")
    p.add_argument("--no-simulate", action="store_true",
                   help="run on the landing files already under the data root (delivered by someone else, or "
                        "simulated beforehand with more days than the demo runs) instead of simulating them")
    args = p.parse_args(argv)
    lead = SHADOW_LEAD_DAYS if args.shadow_days > 0 else 0
    if args.shadow_days < 0:
        p.error(f"--shadow-days {args.shadow_days}: must be >= 0")
    if args.trials is not None and args.trials < 1:
        p.error(f"--trials {args.trials}: must be >= 1")
    if args.days < MIN_HISTORY_DAYS + lead:
        p.error(f"--days {args.days}: at least {MIN_HISTORY_DAYS + lead} days of history are needed for a reference "
                "window past the feature warm-up" + (f" (the first champion is trained {lead} days before the "
                                                     "history ends, for the shadow challenger)" if lead else ""))
    if args.nights < 1 or (args.drift != "none" and not 1 <= args.drift_night <= args.nights):
        p.error(f"--nights must be >= 1 and --drift-night ({args.drift_night}) a night in 1..{args.nights}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    root, home = data_root(), Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow"))
    began = time.perf_counter()
    history_end = args.start + dt.timedelta(days=args.days - 1)
    drift = () if args.drift == "none" else (DriftScenario(
        args.drift, history_end + dt.timedelta(days=args.drift_night),
        args.magnitude if args.magnitude is not None else DEFAULT_MAGNITUDE[args.drift]),)
    cfg = SimulatorConfig(n_customers=args.customers, n_terminals=args.terminals, n_days=args.days + args.nights,
                          start_date=args.start, seed=args.seed, drift=drift)
    if (root / "warehouse.db").exists() or (root / "mlflow").exists():
        print(f"demo: {root} already holds a pipeline's state (registry, warehouse); the demo starts from an "
              "empty data root: `make clean`, or point BATCHML_DATA_ROOT elsewhere", file=sys.stderr)
        return 2
    history = day_range(cfg.start_date, history_end)
    nights = day_range(history_end + dt.timedelta(days=1), cfg.end_date)
    if args.no_simulate:
        missing = [d.isoformat() for d in history + nights if not landing_file("transactions", d, root).exists()]
        if missing:
            print(f"demo: --no-simulate, but no landing file for {missing[0]} ({len(missing)} day(s) missing) "
                  f"under {root / 'landing'}", file=sys.stderr)
            return 2
        print(f"[1/6] landing files of {history[0]}..{nights[-1]} already under {root / 'landing'}", flush=True)
    else:
        simulate_landing(cfg, root)
    env = {"BATCHML_TIME_SCHEDULES": "off"}  # the simulated dates lie in the past: no clock schedule may run
    if args.shadow_days > 0 or args.trials is not None:  # the services and this process read the same one
        env["BATCHML_TRAINING_CONFIG"] = os.environ["BATCHML_TRAINING_CONFIG"] = str(
            demo_training_config(root, args.shadow_days, args.trials))
    airflow = LocalAirflow(home, port=args.port, env=env)
    # a kill of the demo stops the services too: the supervisor turns SIGTERM into SystemExit(143)
    print(f"[2/6] starting the Airflow scheduler, DAG processor, triggerer and API server (logs in {airflow.logs})",
          flush=True)
    try:
        with contextlib.ExitStack() as services:
            if args.spark == "connect":
                env["AIRFLOW_CONN_SPARK_DEFAULT"] = start_spark_connect(services, root)
            started = now()
            services.enter_context(airflow)
            api = airflow.api()
            user, password = airflow.admin_password()
            print(f"      watch the runs at http://localhost:{args.port} (user {user}, password {password})",
                  flush=True)
            api.wait_for_dags(list(DAGS), since=started)  # parsed with the clock schedules off
            for dag_id in DAGS:  # no champion yet: scoring, its shadow and monitoring wait for the first training
                api.set_paused(dag_id, dag_id in ("scoring", "monitoring", "shadow_scoring"))
            try:
                load_history(api, history, root)
                lead = SHADOW_LEAD_DAYS if args.shadow_days > 0 else 0
                champion_as_of = history_end - dt.timedelta(days=lead)
                train(api, champion_as_of, "[4/6] first champion, the quick baseline", models=[FIRST_MODEL],
                      leaderboard=True)
                for dag_id in ("scoring", "monitoring", "shadow_scoring"):
                    api.set_paused(dag_id, False)
                if lead:
                    challenger_as_of = champion_as_of + dt.timedelta(days=1)
                    train(api, challenger_as_of, f"      the shadow challenger (shadow.days {args.shadow_days} in "
                          f"{os.environ['BATCHML_TRAINING_CONFIG']})", models=[args.challenger])
                    backfill_in_shadow(api, day_range(champion_as_of + dt.timedelta(days=1), history_end), root)
                run_nights(api, nights, root)
                if args.shadow_backfill:
                    shadow_backfill(api, nights, root)
            finally:
                for dag_id in DAGS:  # no run for the real calendar's dates once the demo is over
                    api.set_paused(dag_id, True)
        print_summary(nights)
    except ServiceError as exc:
        print(f"demo stopped: {exc}\n      task logs: {home / 'logs'}; service logs: {airflow.logs}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - began:.0f}s. The run history is in the Airflow UI: make airflow "
          f"(DAGs are paused again). Drift reports: {root / 'reports' / 'drift'}; Data Docs: "
          f"{root / 'gx' / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}\n"
          f"MLflow: make mlflow (tracking store {mlflow_tracking_uri()})")
    return 0


def start_spark_connect(services: contextlib.ExitStack, root: Path) -> str:
    """A Spark Connect server for the demo's length (tools.spark_connect), and the spark_default
    connection URI that points the Spark tasks at it."""
    from tools.spark_connect import connect_server, server_log

    log = server_log(root)
    began = time.perf_counter()
    server = services.enter_context(connect_server(log))
    print(f"      Spark Connect server at {server.url} for the Spark tasks ({time.perf_counter() - began:.0f}s; "
          f"log {log}; --spark submit runs a spark-submit application per task instead)", flush=True)
    return server.airflow_conn


def demo_training_config(root: Path, shadow_days: int, trials: int | None) -> Path:
    """The pipeline's training configuration (include.training.config.config_path: the shipped file, or the
    one BATCHML_TRAINING_CONFIG names) with ``shadow.days`` set and, with ``trials``, every family's search
    budget at most ``trials``; validated and written under the data root (git-ignored), for the Airflow
    services and this process alike."""
    import yaml

    from include.schema import read_yaml
    from include.training.config import config_path, parse_training_config

    source = config_path()
    raw = read_yaml(source)
    raw["shadow"] = {**(raw.get("shadow") or {}), "days": shadow_days}
    changes = f"shadow.days {shadow_days}"
    if trials is not None:
        raw["tuning"] = {**(raw.get("tuning") or {}), "trials": trials}
        for model in raw.get("models") or []:
            if isinstance(model, dict) and isinstance(model.get("trials"), int):
                model["trials"] = min(model["trials"], trials)
        changes += f", at most {trials} tuning trial(s) per family"
    target = root / "demo" / "training.yaml"
    parse_training_config(raw, source=f"{source} with {changes}")  # fails here, not in a task
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"# make demo: {source} with {changes} (tools/demo.py)\n" + yaml.safe_dump(raw, sort_keys=False))
    return target


def simulate_landing(cfg: SimulatorConfig, root: Path) -> None:
    drift = "; ".join(f"{d.kind} x{d.magnitude:g} from {d.start}" for d in cfg.drift) or "none"
    print(f"[1/6] simulating {cfg.n_days} days ({cfg.start_date}..{cfg.end_date}), {cfg.n_customers:,} customers, "
          f"{cfg.n_terminals:,} terminals, seed {cfg.seed}; drift: {drift}", flush=True)
    sim = simulate(cfg)
    write_landing_files(sim.transactions, root)
    print(f"      {len(sim.transactions):,} transactions, fraud rate {sim.transactions['tx_fraud'].mean():.2%}, "
          f"landing files in {root / 'landing'}", flush=True)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_history(api: AirflowAPI, days: list[dt.date], root: Path) -> None:
    print(f"[3/6] history {days[0]}..{days[-1]}: one ingest run over the range (GX checkpoints per day), then "
          "the features run its Asset event triggers (one Spark application)", flush=True)
    t0, since = time.perf_counter(), now()
    run = api.trigger("ingest", {"start": days[0].isoformat(), "end": days[-1].isoformat()})
    api.wait_run("ingest", run["dag_run_id"])
    tx = sum(parquet_row_count(partition_file("raw", "transactions", d, root)) for d in days)
    print(f"      ingest: {len(days)} days, {tx:,} transactions published ({time.perf_counter() - t0:.0f}s)", flush=True)
    t0 = time.perf_counter()
    api.wait_triggered_run("features", since)
    rows = sum(parquet_row_count(partition_file("features", "baseline", d, root)) for d in days)
    print(f"      features: {len(days)} partitions, {rows:,} rows, checks passed ({time.perf_counter() - t0:.0f}s)",
          flush=True)


def report_training(as_of: dt.date, seconds: float, leaderboard: bool) -> dict:
    """Print the gate's decision of the training run as of ``as_of`` (and the leaderboard); return it."""
    from include import warehouse
    from include.training import pipeline
    from include.training.config import load_training_config

    cfg = load_training_config()
    # the training run's own decision, not a promotion on shadow evidence decided by monitoring that day
    decision = warehouse.gate_decision_for(cfg.registered_model, as_of) or {}
    print(f"      trained in {seconds:.0f}s; gate: {decision.get('decision')} version "
          f"{decision.get('challenger_version')}: {decision.get('reason')}", flush=True)
    if leaderboard:
        print("      leaderboard on the evaluation window:")
        board = pipeline.format_leaderboard(pipeline.leaderboard(as_of.isoformat(), cfg), cfg.metrics.top_k)
        print(textwrap.indent(board, "      "), flush=True)
    return decision


def describe_training(as_of: dt.date, models: list[str] | None = None) -> str:
    from include.training.config import load_training_config
    from include.training.windows import plan_training

    cfg = load_training_config()
    e = plan_training(as_of, cfg.window).evaluation
    names = models or [m.name for m in cfg.models]
    return (f"training as of {as_of} ({', '.join(names)}; train {e.train_start}..{e.train_end}, "
            f"evaluate {e.test_start}..{e.test_end})")


def train(api: AirflowAPI, as_of: dt.date, title: str, models: list[str] | None = None,
          leaderboard: bool = False) -> dict:
    print(f"{title}: {describe_training(as_of, models)}", flush=True)
    t0 = time.perf_counter()
    run = api.trigger("training", {"as_of": as_of.isoformat(), "models": models})
    api.wait_run("training", run["dag_run_id"])
    return report_training(as_of, time.perf_counter() - t0, leaderboard)


def _model_name() -> str:
    from include.training.config import load_training_config

    return load_training_config().registered_model


def backfill_in_shadow(api: AirflowAPI, days: list[dt.date], root: Path) -> None:
    """Score ``days`` with the champion and, through the predictions Asset, with the shadow: one scoring
    run with params start/end. Monitoring waits paused: no label of these days has arrived yet (the nights'
    runs measure both models on them as the labels land)."""
    from include import registry, warehouse

    name = _model_name()
    shadow = registry.alias_version(name, registry.SHADOW)
    if shadow is None:
        print("      no version behind the alias shadow (the gate's decision above says why): no shadow to show",
              flush=True)
        return
    print(f"      the history days after the first champion, {days[0]}..{days[-1]} (the labels of the last 7 arrive on "
          f"the nights), scored by the champion, and in shadow by v{shadow.version}: a features_baseline Asset event "
          "starts scoring, whose predictions event starts shadow_scoring", flush=True)
    t0, since = time.perf_counter(), now()
    # An Asset event, not a manual run: the first Asset-triggered run of a DAG consumes every event since the
    # DAG was parsed (Airflow's event window), so a manual backfill here would leave the history's features
    # event for the first night's scoring run, which would score these days again. This run consumes it now
    # (the days before the first champion stay unscored) and the nights' runs consume only their own day.
    api.set_paused("monitoring", True)  # its first night monitors these days, once their labels start to arrive
    try:
        api.announce(FEATURES_BASELINE.name, event_extra(days))
        api.wait_triggered_run("scoring", since)
        api.wait_triggered_run("shadow_scoring", since)
    finally:
        api.set_paused("monitoring", False)
    champion = warehouse.prediction_days_between(days[0], days[-1])
    shadow_rows = sum(parquet_row_count(partition_file("predictions", "fraud_shadow", d, root)) for d in days
                      if partition_file("predictions", "fraud_shadow", d, root).exists())
    versions = sorted({str(s["model_version"]) for s in champion}, key=int)
    print(f"      scored {sum(s['rows'] for s in champion):,} rows by v{', v'.join(versions)} (table predictions) and "
          f"{shadow_rows:,} in shadow by v{shadow.version} (table shadow_predictions) ({time.perf_counter() - t0:.0f}s)",
          flush=True)


def shadow_night(day: dt.date) -> str:
    """The night's shadow line: both models' realised average precision on the labels that arrived
    (performance_days, by label-arrival day) and where the shadow's review stands."""
    from include import registry, warehouse
    from include.training import shadow
    from include.training.config import load_training_config

    cfg = load_training_config()
    scored = day - dt.timedelta(days=LABEL_DELAY_DAYS)
    rows = {r["role"]: r for r in warehouse.performance_between(scored, scored, cfg.registered_model)
            if r["realised_at"] is not None}
    parts = [f"{role} v{r['model_version']} AP {_num(r['average_precision'])}" for role, r in sorted(rows.items())]
    line = f"labels of {scored}: " + (", ".join(parts) if parts else "no realised figures")
    current = registry.alias_version(cfg.registered_model, registry.SHADOW)
    reviewed = [p for p in warehouse.promotion_history(cfg.registered_model)
                if p["decision"] in (shadow.PROMOTED, shadow.REFUSED) and str(p.get("as_of")) <= day.isoformat()]
    tags = (current.tags or {}) if current is not None else {}
    if tags.get("gate_decision") == shadow.AWAITING and tags.get("as_of"):  # the version's gate decision
        e = shadow.evidence(cfg, str(current.version), as_date(tags["as_of"]) + dt.timedelta(days=1), day)
        line += (f"; review of v{current.version}: {min(e['days'], cfg.shadow.days)} of {cfg.shadow.days} label "
                 f"days, {e['frauds']} of {cfg.shadow.min_frauds} frauds")
    if reviewed and (current is None or str(reviewed[-1]["challenger_version"]) != str(current.version)):
        last = reviewed[-1]
        line += f"; v{last['challenger_version']} {last['decision'].replace('_', ' ')}"
    return line


def run_nights(api: AirflowAPI, nights: list[dt.date], root: Path) -> None:
    """One nightly cycle per day: the demo triggers ingest, the Asset schedules chain the rest."""
    from include import warehouse

    print(f"[5/6] {len(nights)} nightly cycles {nights[0]}..{nights[-1]}: ingest -> features -> scoring -> "
          "monitoring (-> training on a drift alert), chained by Asset events", flush=True)
    for i, day in enumerate(nights, 1):
        t0, since = time.perf_counter(), now()
        run = api.trigger("ingest", {"start": day.isoformat(), "end": day.isoformat()})
        api.wait_run("ingest", run["dag_run_id"])
        for dag_id in ("features", "scoring", "monitoring", "shadow_scoring"):
            api.wait_triggered_run(dag_id, since)
        tx = parquet_row_count(partition_file("raw", "transactions", day, root))
        scored = warehouse.prediction_days_between(day, day)
        drifted = [r for r in warehouse.drift_between(day, day) if r["drifted"]]
        alerts = warehouse.alerts_between(day, day)
        emitted = any(a["triggered_training"] for a in alerts)
        print(f"      night {i}/{len(nights)} {day}  transactions {tx:>6,}  scored "
              + ", ".join(f"{s['rows']:,} by v{s['model_version']}" for s in scored)
              + f"  drifted columns {len(drifted):>2}  alerts {len(alerts)}"
              + ("  -> drift_alert emitted" if emitted else "  (episode already handled)" if alerts else "")
              + f"  {time.perf_counter() - t0:.0f}s", flush=True)
        print(f"        shadow: {shadow_night(day)}", flush=True)
        if emitted:
            print(f"      drift_alert scheduled {describe_training(day)}", flush=True)
            t0 = time.perf_counter()
            api.wait_triggered_run("training", since)
            report_training(day, time.perf_counter() - t0, leaderboard=False)


def shadow_backfill(api: AirflowAPI, nights: list[dt.date], root: Path) -> None:
    """``--shadow-backfill``: the alias shadow on the newest version, the nights scored with it in shadow
    (shadow_scoring, params start/end), then monitoring rerun on them (both models' performance rows)."""
    from include import registry
    from include.training import tracking

    name = _model_name()
    newest = max(int(v.version) for v in tracking.client().search_model_versions(f"name = '{name}'"))
    start, end = nights[0].isoformat(), nights[-1].isoformat()
    print(f"      shadow backfill: alias shadow -> v{newest}; shadow_scoring and monitoring over {start}..{end}",
          flush=True)
    t0 = time.perf_counter()
    registry.set_alias(name, registry.SHADOW, str(newest))
    for dag_id in ("shadow_scoring", "monitoring"):
        run = api.trigger(dag_id, {"start": start, "end": end})
        api.wait_run(dag_id, run["dag_run_id"])
    print(f"      shadow backfill done ({time.perf_counter() - t0:.0f}s)", flush=True)


def print_summary(nights: list[dt.date]) -> None:
    from include import warehouse
    from include.drift.config import load_monitoring_config
    from include.training.config import load_training_config

    start, end = nights[0], nights[-1]
    print("[6/6] summary")
    print("      rows scored per night (warehouse table predictions):")
    print("      | day | model version | rows | flagged | mean score |\n      |---|---|---|---|---|")
    for s in warehouse.prediction_days_between(start, end):
        print(f"      | {s['ds']} | {s['model_version']} | {s['rows']:,} | {s['flagged']:,} | {s['mean_score']:.4f} |")

    drift = warehouse.drift_between(start, end)
    columns = list(dict.fromkeys(r["column_name"] for r in drift))
    psi = {(r["ds"], r["column_name"]): r for r in drift}
    cfg = load_monitoring_config()  # the levels check_drift used: the monitoring configuration's
    print("\n      PSI per night against the scoring version's reference (* drifted: PSI >= "
          f"{cfg.psi_alert:g}, or >= {cfg.psi_warn:g} with KS):")
    print("      | column | " + " | ".join(d.strftime("%m-%d") for d in nights) + " |")
    print("      |---|" + "---|" * len(nights))
    for c in columns:
        cells = [psi.get((d, c)) for d in nights]
        print(f"      | {c} | " + " | ".join(
            "" if r is None or r["psi"] is None else f"{r['psi']:.3f}{'*' if r['drifted'] else ''}" for r in cells)
            + " |")

    print("\n      alerts:")
    for a in warehouse.alerts_between(start, end) or [{"ds": "-", "kind": "none", "message": "", "model_version": "",
                                                       "triggered_training": False}]:
        print(f"      - {a['ds']} {a['kind']} (v{a['model_version']}): {a['message']}"
              + ("  [triggered training]" if a["triggered_training"] else ""))
    model_name = load_training_config().registered_model
    history = warehouse.promotion_history(model_name)
    print("\n      gate decisions (warehouse table promotions):")
    for p in history:
        print(f"      - as of {p['as_of']}: {p['decision']} v{p['challenger_version']} "
              f"(champion then: {p['champion_version'] or 'none'}){' -> champion' if p['promoted'] else ''}: "
              f"{p['reason']}")
    print_top_flags(warehouse.top_flags(end, limit=5), end)
    print_slices(history)
    print_performance(warehouse.performance_between(start - dt.timedelta(days=LABEL_DELAY_DAYS), end, model_name))
    print_shadow(nights, model_name, history)


def _num(v, fmt: str = "{:.4f}") -> str:
    return "n/a" if v is None or v != v else fmt.format(v)


def print_top_flags(flags: list[dict], day: dt.date) -> None:
    """The highest-scored flagged transactions of ``day`` with their top reasons (docs/reasons.md)."""
    print(f"\n      top flags of the last night ({day}) and why (warehouse table prediction_reasons; "
          "contribution in log-odds of fraud):")
    if not flags:
        print(f"      no flagged transaction on {day}")
        return
    print("      | transaction | score | version | reasons (feature = value, +contribution) |\n      |---|---|---|---|")
    for f in flags:
        why = "; ".join(f"{r['feature']} = {r['value']:.4g}, {r['contribution']:+.2f}" for r in f["reasons"])
        print(f"      | {f['transaction_id']} | {f['score']:.4f} | v{f['model_version']} | {why or 'no reasons stored'} |")


def print_slices(history: list[dict]) -> None:
    """The slice bands of the newest gate decision that has them (``promotions.metrics_json``; docs/slices.md)."""
    from include.ml_monitor.data import read_json

    for p in reversed(history):  # history is oldest first: the newest decision with slices
        metrics, why = read_json(p.get("metrics_json") or "null")
        rows = metrics.get("slices") if not why and isinstance(metrics, dict) else None
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            break
    else:
        print("\n      slices: no gate decision with a slice table yet")
        return
    primary = p["primary_metric"]
    print(f"\n      slices of the newest gate decision (as of {p['as_of']}, v{p['challenger_version']} vs champion "
          f"{'v' + p['champion_version'] if p['champion_version'] else 'none'}; {primary}, tolerance "
          f"{metrics.get('slice_tolerance')}, min_positives {metrics.get('slice_min_positives')}):")
    print("      | band | frauds | challenger | champion | drop | verdict |\n      |---|---|---|---|---|---|")
    for r in rows:
        print(f"      | {r.get('slice')}={r.get('band')} | {_num(r.get('n_frauds'), '{:,}')} | {_num(r.get(primary))} | "
              f"{_num(r.get(f'champion_{primary}'))} | {_num(r.get('drop'))} | {r.get('verdict')} |")


def print_performance(rows: list[dict]) -> None:
    """Live performance per label-arrival day (``performance_days``; docs/ml-monitor.md): realised on the
    arrived labels, or the estimate from the scores (CBPE) for the days whose labels have not arrived."""
    print("\n      live performance (warehouse table performance_days; labels arrive "
          f"{LABEL_DELAY_DAYS} days after scoring):")
    if not rows:
        print("      no performance rows yet (monitoring writes them once the champion has scored)")
        return
    print("      | labels on | scored | version | AUC ROC | AP | precision | recall | expected cost | |\n"
          "      |---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["ds"], r["role"])):
        est = r["estimated"]
        figures = [r[("est_" if est else "") + k] for k in
                   ("auc_roc", "average_precision", "precision_at_threshold", "recall_at_threshold", "expected_cost")]
        note = ("estimate" + (f" ({r['estimate_note']})" if r.get("estimate_note") else "") if est
                else f"{_num(r['n_frauds'], '{:,}')} frauds of {_num(r['n_labelled'], '{:,}')}")
        print(f"      | {r['ds']} | {r['scored_day']} | v{r['model_version']}{'' if r['role'] == 'champion' else ' ' + r['role']}"
              " | " + " | ".join(_num(v) for v in figures[:4]) + f" | {_num(figures[4], '{:,.0f}')} | {note} |")


def print_shadow(nights: list[dt.date], model_name: str, history: list[dict]) -> None:
    """The shadow challenger (docs/shadow.md): the version behind the alias now, both models' realised
    figures by label-arrival day on the nights (performance_days, roles champion and shadow), and the
    training decisions that went through shadow, with their reasons (the review's outcome among them)."""
    from include import registry, warehouse
    from include.training import shadow

    current = registry.alias_version(model_name, registry.SHADOW)
    print(f"\n      shadow challenger: alias shadow -> {'v' + str(current.version) if current else 'none'} now")
    delay = dt.timedelta(days=LABEL_DELAY_DAYS)
    rows = warehouse.performance_between(nights[0] - delay, nights[-1], model_name)
    by_day: dict[dt.date, dict[str, dict]] = {}
    for r in rows:
        if r["realised_at"] is not None:
            by_day.setdefault(r["ds"], {})[r["role"]] = r
    days = [d for d in sorted(by_day) if "shadow" in by_day[d]]
    if not days:
        print("      no realised shadow figures on the nights (labels arrive "
              f"{LABEL_DELAY_DAYS} days after scoring; --shadow-days scores the last history days in shadow)")
    else:
        print("      realised on the labels arriving each night (warehouse table performance_days):")
        print("      | labels on | scored | frauds | champion | AUC ROC | AP | CP@100 | shadow | AUC ROC | AP | CP@100 |\n"
              "      |---|---|---|---|---|---|---|---|---|---|---|")
        for d in days:
            c, s = by_day[d].get("champion"), by_day[d]["shadow"]
            figures = [f"v{r['model_version']} | " + " | ".join(_num(r[k]) for k in
                                                                ("auc_roc", "average_precision", "card_precision"))
                       if r else "n/a | | |" for r in (c, s)]
            print(f"      | {d} | {s['scored_day']} | {_num(s['n_frauds'], '{:,}')} | {figures[0]} | {figures[1]} |")
    went = [p for p in history if p["decision"] in (shadow.AWAITING, shadow.PROMOTED, shadow.REFUSED)
            or p.get("dag_run_id") == warehouse.SHADOW_REVIEW]
    for p in went:
        print(f"      - as of {p['as_of']}: v{p['challenger_version']} {p['decision']}: {p['reason']}")


if __name__ == "__main__":
    sys.exit(main())

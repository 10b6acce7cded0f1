"""The production path, really exercised: the whole cycle (`make demo`'s driver: history ingest,
features, first training, a nightly cycle whose drift triggers retraining, scoring, monitoring)
through a real Airflow scheduler, with

- the Airflow metadata database and the warehouse on the machine's PostgreSQL server,
- a real ``mlflow server`` process on loopback, backed by PostgreSQL, serving the artifacts,
- a Spark standalone master and worker on loopback (from the pyspark package), the feature and
  scoring jobs submitted to it through the ``spark_default`` connection.

Only configuration differs from the embedded default: environment variables (README, "From one
machine to production"), the same code and the same DAGs. The assertions read each service
directly: run states from PostgreSQL's ``dag_run`` table, rows from the PostgreSQL warehouse,
versions and aliases from the MLflow server's REST API, applications from the Spark master.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.production_stack import DAG_IDS, NIGHT, training_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.production]


def _fetch(url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


def test_the_demo_runs_through_the_production_services(production, reliability):
    case = reliability.case("production path", "the full cycle on PostgreSQL, an mlflow server and Spark standalone",
                            expected="history, first champion, a drifted night, retraining, scoring and monitoring all "
                                     "succeed with configuration changes only")
    out = production["out"]
    assert out.returncode == 0, f"demo failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    assert "drift_alert emitted" in out.stdout, out.stdout[-3000:]
    case.observed = f"demo exited 0 in {production['seconds']:.0f}s; " + next(
        line.strip() for line in out.stdout.splitlines() if "night 1/1" in line)


def test_the_metadata_database_is_postgresql(production, reliability):
    case = reliability.case("production path", "Airflow metadata on PostgreSQL",
                            expected="every DAG's runs are recorded in PostgreSQL and succeeded; no SQLite file exists")
    runs = _fetch(production["airflow_db"], "SELECT dag_id, state, count(*) AS n FROM dag_run GROUP BY dag_id, state")
    states = {(r["dag_id"], r["state"]): r["n"] for r in runs}
    assert {dag for dag, state in states if state == "success"} == {*DAG_IDS, "shadow_scoring"}, states
    assert not [key for key in states if key[1] != "success"], states
    assert states[("training", "success")] == 2, "the first champion and the drift-triggered retraining"
    home, lake = Path(production["config"]["AIRFLOW_HOME"]), Path(production["config"]["BATCHML_DATA_ROOT"])
    assert not list(home.glob("*.db")) and not (lake / "warehouse.db").exists() and not (lake / "mlflow").exists()
    case.observed = "dag_run in PostgreSQL: " + ", ".join(f"{d} {n}x {s}" for (d, s), n in sorted(states.items()))


def test_the_warehouse_is_postgresql(production, reliability):
    case = reliability.case("production path", "warehouse on PostgreSQL",
                            expected="predictions of the night (one row per transaction), drift rows, the alert and "
                                     "both gate decisions in PostgreSQL")
    import pandas as pd

    lake = Path(production["config"]["BATCHML_DATA_ROOT"])
    raw = pd.read_parquet(lake / "raw" / "transactions" / f"ds={NIGHT}" / "data.parquet")
    wh = production["warehouse"]
    scored = _fetch(wh, "SELECT count(*) AS n, count(DISTINCT transaction_id) AS ids FROM predictions WHERE ds = :ds",
                    ds=NIGHT.isoformat())[0]
    assert scored["n"] == scored["ids"] == len(raw)
    drifted = _fetch(wh, "SELECT column_name FROM drift_metrics WHERE ds = :ds AND drifted", ds=NIGHT.isoformat())
    assert "tx_amount" in {r["column_name"] for r in drifted}
    alerts = _fetch(wh, "SELECT kind, triggered_training FROM alerts WHERE ds = :ds", ds=NIGHT.isoformat())
    assert any(a["triggered_training"] for a in alerts), alerts
    decisions = _fetch(wh, "SELECT as_of, decision FROM promotions ORDER BY as_of")
    assert [str(d["as_of"]) for d in decisions] == ["2026-04-13", NIGHT.isoformat()], decisions
    case.observed = (f"{scored['n']:,} predictions = raw rows; drifted columns {sorted(r['column_name'] for r in drifted)}; "
                     f"decisions {[(str(d['as_of']), d['decision']) for d in decisions]}")


def test_models_live_in_the_mlflow_server(production, reliability):
    case = reliability.case("production path", "models tracked and registered in an mlflow server on PostgreSQL",
                            expected="versions, the champion alias and their artifacts served by the server")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=production["tracking"], registry_uri=production["tracking"])
    model = training_config_dict()["registered_model"]
    versions = client.search_model_versions(f"name = '{model}'")
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.version in {v.version for v in versions}
    # the artifacts went through the server into its artifact destination, not into the data root
    artifacts = production["tmp"] / "mlflow-artifacts"
    assert any(artifacts.rglob("MLmodel")), "the server stored the logged models"
    stored = _fetch(production["mlflow_db"], "SELECT count(*) AS n FROM model_versions")
    assert stored[0]["n"] == len(versions)
    case.observed = f"{len(versions)} versions in the server's PostgreSQL store, champion v{champion.version}"


def test_spark_jobs_ran_on_the_standalone_cluster(production, reliability):
    case = reliability.case("production path", "Spark jobs submitted to a standalone master through spark_default",
                            expected="the feature and scoring applications completed on the master")
    import httpx

    status = httpx.get(production["spark"]["status"], timeout=10).json()
    names = [app["name"] for app in status["completedapps"]]
    assert any(n.startswith("build_features") for n in names) and any(n.startswith("score") for n in names), names
    case.observed = f"completed applications on {production['spark']['master']}: {sorted(set(names))}"


def test_a_real_scheduler_fires_the_scoring_deadline(production, reliability):
    case = reliability.case("production path", "scoring DeadlineAlert fired by the scheduler",
                            expected="a scoring run still going 6 s after it was queued gets a deadline_missed "
                                     "alert row; the run itself goes on and succeeds")
    rows = _fetch(production["warehouse"], "SELECT ds, message FROM alerts WHERE kind = 'deadline_missed'")
    assert rows, "no deadline_missed alert was recorded"
    assert all("scoring run" in r["message"] and "has not finished by its deadline" in r["message"] for r in rows)
    case.observed = f"{len(rows)} deadline_missed row(s), e.g. {rows[0]['message'][:160]}"


def test_reasons_slices_and_live_performance_reach_the_production_stores(production, reliability, monkeypatch):
    case = reliability.case("production path", "reasons, slice table and live performance on PostgreSQL",
                            expected="3 ranked reasons per flagged prediction (lake = warehouse), every configured "
                                     "slice band with a verdict in both gate decisions, performance_days rows "
                                     "returned by the ML monitor")
    import pandas as pd

    from include.config import LABEL_DELAY_DAYS
    from include.training.config import SlicesConfig

    wh, lake = production["warehouse"], Path(production["config"]["BATCHML_DATA_ROOT"])
    cfg = training_config_dict()
    model = cfg["registered_model"]

    # (a) reasons: exactly ranks 1..3 for every flagged prediction, none for the others, lake = warehouse
    days = [r["ds"] for r in _fetch(wh, "SELECT DISTINCT ds FROM predictions ORDER BY ds")]
    assert days == [NIGHT], days
    reasons_seen = 0
    for day in days:
        preds = pd.DataFrame(_fetch(wh, "SELECT transaction_id, flagged, model_version FROM predictions WHERE ds = :ds",
                                    ds=day.isoformat()))
        why = pd.DataFrame(_fetch(wh, "SELECT transaction_id, model_name, model_version, rank, feature, value, "
                                      "contribution FROM prediction_reasons WHERE ds = :ds", ds=day.isoformat()))
        flagged = set(preds.loc[preds.flagged, "transaction_id"])
        assert 0 < len(flagged) < len(preds), f"{day}: {len(flagged)} of {len(preds)} flagged"
        assert set(why.transaction_id) == flagged, f"{day}: reasons for unflagged or missing for flagged rows"
        ranks = why.groupby("transaction_id")["rank"].apply(sorted)
        assert all(r == [1, 2, 3] for r in ranks), ranks[ranks.apply(lambda r: r != [1, 2, 3])].head()
        assert len(why) == 3 * len(flagged)
        # ranked by contribution, largest first; the features are model inputs monitored that night
        ordered = why.sort_values(["transaction_id", "rank"])
        steps = ordered.groupby("transaction_id")["contribution"].diff().dropna()
        assert (steps <= 1e-12).all(), f"{day}: a lower rank has a larger contribution"
        inputs = {r["column_name"] for r in _fetch(wh, "SELECT column_name FROM drift_metrics WHERE ds = :ds AND "
                                                       "kind <> 'score' AND column_name <> 'score'", ds=day.isoformat())}
        assert set(why.feature) <= inputs, set(why.feature) - inputs
        assert why.value.notna().all() and why.contribution.notna().all()
        assert set(why.model_name) == {model}
        assert set(why.model_version) == set(preds.loc[preds.flagged, "model_version"])
        stored = pd.read_parquet(lake / "reasons" / "fraud" / f"ds={day}" / "data.parquet")
        cols = ["transaction_id", "model_name", "model_version", "rank", "feature", "value", "contribution"]
        assert set(cols) <= set(stored.columns), stored.columns
        pd.testing.assert_frame_equal(
            stored[cols].astype({"model_version": str}).sort_values(["transaction_id", "rank"]).reset_index(drop=True),
            ordered[cols].astype({"model_version": str}).reset_index(drop=True), check_dtype=False)
        reasons_seen += len(flagged)

    # (b) slices: both gate decisions carry every configured band, frauds adding up, a verdict each
    slices = SlicesConfig(**cfg["slices"])
    wanted = {(s.name, b) for s in slices.definitions for b in s.bands}
    decisions = _fetch(wh, "SELECT as_of, champion_version, decision, metrics_json FROM promotions ORDER BY as_of")
    assert len(decisions) == 2, decisions
    verdicts = []
    for d in decisions:
        metrics = json.loads(d["metrics_json"])
        rows = metrics["slices"]
        bands = {(r["slice"], r["band"]) for r in rows}
        assert wanted <= bands and not {b for _, b in bands - wanted} - {"missing"}, (d["as_of"], bands ^ wanted)
        assert metrics["slice_tolerance"] == slices.tolerance
        assert metrics["slice_min_positives"] == slices.min_positives
        frauds = metrics["challenger"].get("n_frauds")
        for spec in slices.definitions:
            mine = [r for r in rows if r["slice"] == spec.name]
            assert all(float(r["n_frauds"]).is_integer() and r["n_frauds"] >= 0 for r in mine), mine
            if frauds is not None:
                assert sum(r["n_frauds"] for r in mine) == frauds, (d["as_of"], spec.name, frauds, mine)
            if metrics["challenger"].get("n_transactions") is not None:
                assert sum(r["n_transactions"] for r in mine) == metrics["challenger"]["n_transactions"]
        for r in rows:
            assert r["verdict"] in ("holds", "refused") or r["verdict"].startswith("not gated"), r
            if d["champion_version"] is None:  # the first model: reported, not gated
                assert r["verdict"] == "not gated: no champion to compare with", r
            if d["decision"] == "promote":
                assert r["verdict"] != "refused", r
            elif r["verdict"] in ("holds", "refused"):
                assert r["n_frauds"] >= slices.min_positives and r["drop"] is not None, r
            if r["auc_roc"] is not None:
                assert 0.0 <= r["auc_roc"] <= 1.0, r
        verdicts.append(f"{d['as_of']}: " + ", ".join(f"{r['slice']}={r['band']} {r['verdict']}" for r in rows))
    assert decisions[0]["champion_version"] is None and decisions[1]["champion_version"] is not None, decisions

    # (c) live performance: one row per scored day, keyed by the day its labels arrive. Realised figures
    # (with the version's offline reference) only where the labels arrived by the demo's last night, the
    # estimate half written on the scoring night: with one scored night there is no labelled history of
    # the version to calibrate its scores on, so the estimate half holds the reason instead of figures.
    everything = _fetch(wh, "SELECT * FROM performance_days WHERE model_name = :m ORDER BY scored_day, role", m=model)
    perf = [r for r in everything if r["role"] == "champion"]  # the shadow's rows: test_the_shadow_challenger_...
    delay = dt.timedelta(days=LABEL_DELAY_DAYS)
    assert [r["scored_day"] for r in perf] == days, perf
    scored_versions = {r["model_version"] for r in _fetch(wh, "SELECT DISTINCT model_version FROM predictions")}
    estimates = ["est_" + k for k in ("precision_at_threshold", "recall_at_threshold", "auc_roc", "average_precision",
                                       "expected_cost", "expected_frauds")]
    for r in perf:
        assert r["ds"] == r["scored_day"] + delay and r["role"] == "champion", r
        assert r["model_version"] in scored_versions and 0.0 < r["threshold"] < 1.0, r
        labelled = r["ds"] <= NIGHT
        assert r["estimated"] is (not labelled) and (r["realised_at"] is not None) is labelled, r
        if labelled:
            assert r["n_labelled"] > 0 and 0 <= r["n_frauds"] <= r["n_labelled"], r
            assert 0.0 <= r["auc_roc"] <= 1.0 and 0.0 <= r["average_precision"] <= 1.0, r
            assert 0.0 <= json.loads(r["reference_json"])["average_precision"] <= 1.0, r
        else:
            assert all(r[k] is None for k in ("n_labelled", "n_frauds", "auc_roc", "average_precision", "verdict")), r
        assert r["estimated_at"] is not None, r
        if r["estimate_note"]:
            skipped = re.fullmatch(rf"(\d+) labelled frauds of version {r['model_version']} in the (\d+) days to "
                                   rf"{r['scored_day'] - delay} \(needs (\d+)\) to calibrate its scores", r["estimate_note"])
            assert skipped and int(skipped[1]) < int(skipped[3]), r["estimate_note"]
            assert all(r[k] is None for k in estimates) and r["calibration"] is None, r
        else:
            assert r["n_scored"] == len(pd.read_parquet(lake / "predictions" / "fraud" / f"ds={r['scored_day']}"))
            assert 0.0 < r["est_expected_frauds"] < r["n_scored"] and r["est_expected_cost"] >= 0.0, r
            assert all(0.0 <= r[k] <= 1.0 for k in estimates[:4]), r
            assert 0.0 <= json.loads(r["reference_json"])["average_precision"] <= 1.0, r

    from include.ml_monitor.data import as_json, gather

    for key in ("BATCHML_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "BATCHML_DATA_ROOT", "BATCHML_TRAINING_CONFIG"):
        monkeypatch.setenv(key, production["config"][key])
    shown = as_json(gather(days=30, end=NIGHT, model_name=model, registry_timeout_s=30))
    assert "performance" not in shown["errors"], shown["errors"]
    assert [(r["scored_day"], r["ds"], r["role"]) for r in shown["performance"]] == \
        [(r["scored_day"].isoformat(), r["ds"].isoformat(), r["role"]) for r in everything], shown["performance"]
    for mine, theirs in zip(everything, shown["performance"], strict=True):
        for k in ("model_version", "estimated", "estimate_note", "n_labelled", "n_frauds", *estimates):
            assert theirs[k] == (pytest.approx(mine[k]) if isinstance(mine[k], float) else mine[k]), (k, theirs)
        assert theirs["reference"] == {k: v for k, v in json.loads(mine["reference_json"] or "{}").items()
                                       if isinstance(v, int | float) and not isinstance(v, bool)}, theirs
    case.observed = (f"{reasons_seen:,} flagged predictions x 3 reasons (lake = warehouse); "
                     f"performance_days {[(str(r['scored_day']), r['estimate_note'] or 'estimated') for r in perf]}; "
                     + " | ".join(verdicts))[:1500]


def test_the_shadow_challenger_on_the_production_stack(production, reliability):
    case = reliability.case("production path", "the shadow challenger on PostgreSQL, an mlflow server and Spark "
                                               "standalone",
                            expected="the alias shadow on the retrained version, a shadow_scoring run through the "
                                     "scheduler publishing one shadow_predictions row per transaction of the night "
                                     "(lake = warehouse), and the night's performance_days row with role shadow "
                                     "written by monitoring")
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from include.config import LABEL_DELAY_DAYS

    out, wh, lake = production["out"].stdout, production["warehouse"], Path(production["config"]["BATCHML_DATA_ROOT"])
    model = training_config_dict()["registered_model"]
    newest = re.search(r"shadow backfill: alias shadow -> v(\d+)", out)
    assert newest, out[-3000:]
    version = newest[1]

    # through the scheduler: the manual run over the night published (plan, score, checkpoint, publish, estimate)
    tasks = _fetch(production["airflow_db"], "SELECT r.run_type, t.task_id, t.state FROM task_instance t JOIN dag_run r "
                                             "ON r.dag_id = t.dag_id AND r.run_id = t.run_id "
                                             "WHERE t.dag_id = 'shadow_scoring'")
    manual = {t["task_id"]: t["state"] for t in tasks if t["run_type"] == "manual"}
    assert manual and set(manual.values()) == {"success"}, tasks
    assert {"plan", "publish", "estimate"} <= set(manual), manual
    # the night's Asset-triggered run came before any shadow: skipped at plan, green
    nightly = [t for t in tasks if t["run_type"] == "asset_triggered" and t["task_id"] == "plan"]
    assert nightly and {t["state"] for t in nightly} == {"skipped"}, tasks

    raw = pd.read_parquet(lake / "raw" / "transactions" / f"ds={NIGHT}" / "data.parquet")
    shadow = pd.DataFrame(_fetch(wh, "SELECT transaction_id, score, model_version FROM shadow_predictions WHERE ds = :ds",
                                 ds=NIGHT.isoformat()))
    champion = pd.DataFrame(_fetch(wh, "SELECT transaction_id, score, model_version FROM predictions WHERE ds = :ds",
                                   ds=NIGHT.isoformat()))
    assert len(shadow) == shadow.transaction_id.nunique() == len(raw), (len(shadow), len(raw))
    assert set(shadow.model_version) == {version} and set(champion.model_version) == {"1"}, \
        (set(shadow.model_version), set(champion.model_version))
    both = champion.merge(shadow, on="transaction_id", suffixes=("_champion", "_shadow"))
    assert len(both) == len(raw) and not (both.score_champion == both.score_shadow).all(), "another model's scores"
    stored = pd.read_parquet(lake / "predictions" / "fraud_shadow" / f"ds={NIGHT}" / "data.parquet")
    assert sorted(stored.transaction_id) == sorted(shadow.transaction_id)
    assert stored.set_index("transaction_id").score.sort_index().tolist() == \
        pytest.approx(shadow.set_index("transaction_id").score.sort_index().tolist())

    # monitoring's rerun of the night: the shadow's half in performance_days (the estimate: its labels arrive
    # 7 days later, and the version has no labelled days to calibrate on) and in the night's report
    rows = _fetch(wh, "SELECT * FROM performance_days WHERE model_name = :m AND role = 'shadow'", m=model)
    assert [(r["scored_day"], r["ds"], r["model_version"]) for r in rows] == \
        [(NIGHT, NIGHT + dt.timedelta(days=LABEL_DELAY_DAYS), version)], rows
    assert rows[0]["estimated"] and rows[0]["realised_at"] is None and rows[0]["estimated_at"] is not None, rows
    assert rows[0]["n_scored"] in (None, len(raw)) and (rows[0]["estimate_note"] or rows[0]["est_auc_roc"] is not None)
    report = json.loads((lake / "reports" / "drift" / f"ds={NIGHT}" / "report.json").read_text())
    assert report["shadow"] and report["shadow"]["estimate"]["model_version"] == version, report.get("shadow")

    # the review monitoring ran removed the alias: the version is the champion since the drift retraining
    client = mlflow.MlflowClient(tracking_uri=production["tracking"], registry_uri=production["tracking"])
    assert client.get_model_version_by_alias(model, "champion").version == version
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(model, "shadow")
    took = re.search(r"shadow backfill done \((\d+)s\)", out)
    case.observed = (f"shadow v{version}: {len(shadow):,} shadow_predictions rows = raw rows, champion v1 scored the "
                     f"night; manual shadow_scoring tasks {manual}; performance_days shadow row "
                     f"{rows[0]['ds']} ({rows[0]['estimate_note'] or 'estimated'}); added {took and took[1]} s")

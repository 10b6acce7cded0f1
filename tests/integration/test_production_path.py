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
    assert {dag for dag, state in states if state == "success"} == set(DAG_IDS), states
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

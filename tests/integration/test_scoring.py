"""Scoring with the real Spark job (mapInArrow, broadcast scorer), the real predictions checkpoint,
and the warehouse on SQLite and on the PostgreSQL server of the machine."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include import registry, warehouse
from include.jobs.score import run as score_job
from include.pipelines.fraud.features.baseline import MODEL_INPUTS
from include.run_days import NothingToDo
from include.scoring import PREDICTIONS, BeforeFirstChampion, model_for_day, plan_scoring, publish_predictions
from include.storage import partition_file, staging_dir
from include.training import pipeline
from include.training.config import parse_training_config
from include.training.train import train_family
from include.validation.datasets import validate_partitions
from tests.conftest import SMALL
from tests.postgres import fresh_database
from tests.training_config import small_config_dict

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TRAINED_AS_OF = (SMALL.end_date - dt.timedelta(days=3)).isoformat()
DAYS = [(SMALL.end_date - dt.timedelta(days=i)).isoformat() for i in (2, 1)]


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, data_root, monkeypatch):
    """The test's warehouse on SQLite, then on a fresh database of the local PostgreSQL server."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_database() as url:
        monkeypatch.setenv("BATCHML_WAREHOUSE_URL", url)
        yield url


def _champion(cfg):
    pipeline.prepare(TRAINED_AS_OF, cfg)
    decision = pipeline.run_gate(pipeline.select_challenger([train_family("logistic", TRAINED_AS_OF, cfg)], cfg), cfg)
    return pipeline.promote(decision, cfg)


def _score(spark, plans, root, run_id):
    staging = staging_dir(run_id, "scoring", root=root)
    score_job(spark, plans, staging)
    validate_partitions("predictions", [p["ds"] for p in plans], staging=staging, root=root)
    return publish_predictions(staging, plans, root)


def test_scoring_is_idempotent_with_lineage(spark, feature_lake, warehouse_url):
    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    _champion(cfg)
    plans = plan_scoring(DAYS, cfg.registered_model)
    assert {p["model"]["version"] for p in plans} == {"1"} and plans[0]["model"]["source"] == "promotions"
    _assert_global_attributions(cfg.registered_model, plans[0]["model"]["run_id"])

    first = _score(spark, plans, feature_lake, "run-1")
    for day in DAYS:
        features = pd.read_parquet(partition_file("features", "baseline", day, feature_lake))
        preds = pd.read_parquet(partition_file(*PREDICTIONS, day, feature_lake))
        assert first["rows"][day] == len(features) == len(preds)
        assert set(preds["transaction_id"]) == set(features["transaction_id"])
        assert preds["score"].between(0, 1).all() and (preds["model_version"] == "1").all()
        # the Spark job's scores are the registered model's own scores
        import mlflow

        model = mlflow.pyfunc.load_model(f"models:/{cfg.registered_model}/1")
        expected = pd.Series(model.predict(features[MODEL_INPUTS]), index=features["transaction_id"])
        got = preds.set_index("transaction_id")["score"]
        assert got.sort_index().to_numpy() == pytest.approx(expected.sort_index().to_numpy())
        assert warehouse.prediction_counts(dt.date.fromisoformat(day)) == {"rows": len(features),
                                                                           "distinct_transactions": len(features)}
        _assert_day_summary(day, preds)
    before = pd.read_parquet(partition_file(*PREDICTIONS, DAYS[0], feature_lake)).drop(columns="scored_at")

    # rerun: same rows, no duplicates, in the lake and in the warehouse
    _score(spark, plan_scoring(DAYS, cfg.registered_model), feature_lake, "run-2")
    after = pd.read_parquet(partition_file(*PREDICTIONS, DAYS[0], feature_lake)).drop(columns="scored_at")
    pd.testing.assert_frame_equal(before.sort_values("transaction_id", ignore_index=True),
                                  after.sort_values("transaction_id", ignore_index=True))
    for day in DAYS:
        counts = warehouse.prediction_counts(dt.date.fromisoformat(day))
        assert counts["rows"] == counts["distinct_transactions"] == first["rows"][day]
        _assert_day_summary(day, pd.read_parquet(partition_file(*PREDICTIONS, day, feature_lake)))


def _assert_global_attributions(name: str, run_id: str) -> None:
    """Training logged the version's global attributions (table and summary plot) and its card shows them."""
    import mlflow

    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(run_id, "explain")} >= {
        "explain/attributions.png", "explain/global_attributions.json"}
    table = mlflow.artifacts.load_dict(f"runs:/{run_id}/explain/global_attributions.json")
    assert sorted(table["data"][i][0] for i in range(len(table["data"]))) == sorted(MODEL_INPUTS)
    card = client.get_model_version(name, "1").description
    assert "## What drives the scores" in card and "| 1 | " in card


def _assert_day_summary(day: str, preds: pd.DataFrame) -> None:
    """The day's one prediction_days row (written with the predictions) is what its predictions add up to."""
    (row,) = warehouse.prediction_days_between(dt.date.fromisoformat(day), dt.date.fromisoformat(day))
    bins = pd.cut(preds["score"], [i / 10 for i in range(10)] + [float("inf")], right=False, labels=False)
    assert (row["model_version"], row["rows"], row["flagged"]) == ("1", len(preds), int(preds["flagged"].sum()))
    assert row["mean_score"] == pytest.approx(preds["score"].mean())
    assert row["bins"] == bins.value_counts().reindex(range(10), fill_value=0).tolist()


def test_backfill_uses_the_champion_of_the_day(data_root, feature_lake):
    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    _champion(cfg)  # version 1, trained as of TRAINED_AS_OF
    later = SMALL.end_date.isoformat()
    pipeline.prepare(later, cfg)
    summary = train_family("logistic", later, cfg)
    version = str(registry.register(cfg.registered_model, summary).version)
    warehouse.record_decision({
        "model_name": cfg.registered_model, "as_of": SMALL.end_date, "challenger_version": version,
        "challenger_run_id": summary["run_id"], "champion_version": "1", "decision": "promote", "promoted": True,
        "reason": "test", "primary_metric": "average_precision"})
    registry.promote(cfg.registered_model, version)
    assert model_for_day(cfg.registered_model, DAYS[0]).version == "1"  # before the second promotion
    # before the first promotion no model was champion: such days are left unscored (a history load's
    # features reach scoring too), and a range with no champion at all is skipped with the reason
    with pytest.raises(BeforeFirstChampion, match=f"the first promotion of 'fraud-detector' was made as of {TRAINED_AS_OF}"):
        model_for_day(cfg.registered_model, TRAINED_AS_OF)
    plans = plan_scoring([TRAINED_AS_OF, DAYS[0]], cfg.registered_model)
    assert [p["ds"] for p in plans] == [DAYS[0]]
    with pytest.raises(NothingToDo, match=f"no model was champion on ds={TRAINED_AS_OF}: the first promotion of "
                                          f"'fraud-detector' was as of {TRAINED_AS_OF} .*these days stay unscored"):
        plan_scoring([TRAINED_AS_OF], cfg.registered_model)
    # a promotion as of D takes effect from D + 1: D was scored before that training ran
    assert model_for_day(cfg.registered_model, later).version == "1"
    after = (SMALL.end_date + dt.timedelta(days=1)).isoformat()
    assert model_for_day(cfg.registered_model, after).version == version


def test_no_champion_fails_clearly(data_root, feature_lake):
    with pytest.raises(registry.NoChampionError, match="no model to score ds=2026-04-17: registered model "
                                                       "'fraud-detector' has no champion"):
        from include.training import tracking

        tracking.client()
        registry.ensure_registered_model("fraud-detector")
        plan_scoring([DAYS[0]], "fraud-detector")


def test_scoring_dag_end_to_end(data_root, feature_lake):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("scoring")
    conf = {"start": DAYS[0], "end": DAYS[-1]}

    # no champion yet: plan fails with the reason, nothing downstream runs
    run = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["plan"] == "failed"
    assert {states[t] for t in ("score", "validate_predictions", "publish")} == {"upstream_failed"}

    cfg = parse_training_config({**small_config_dict(), "models": [small_config_dict()["models"][0]]})
    _champion(cfg)
    run = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    for day in DAYS:
        preds = pd.read_parquet(partition_file(*PREDICTIONS, day, feature_lake))
        assert len(preds) == warehouse.prediction_counts(dt.date.fromisoformat(day))["rows"] > 0


def test_arrow_path_scores_as_each_family_predicts(spark, tmp_path):
    """The job's mapInArrow path (float32 matrix straight from Arrow, the estimator's numpy entry
    point) writes, row for row, the scores of the fitted model's own pandas ``predict``, for every
    family of training.yaml, the ensemble included: one job, one day per family."""
    import numpy as np

    from include.jobs.score import BATCH_SCHEMA
    from include.scoring import PREDICTION_COLUMNS
    from include.training.models import build_estimator, sample_weights
    from include.training.scorer import FraudScorer

    cfg = parse_training_config(small_config_dict())
    n = 3_000
    frame, y, features = _synthetic_features(tmp_path, n)
    scorers, plans = {}, []
    for i, spec in enumerate(cfg.models):
        estimator = build_estimator(spec.family, spec.params, cfg.seed, cfg.threads)
        scorers[spec.name] = FraudScorer(estimator.fit(frame[MODEL_INPUTS], y, sample_weights(y, spec.class_weight)),
                                         MODEL_INPUTS)
        plans.append({"ds": f"2026-04-{i + 1:02d}", "features": str(features), "model": {
            "name": "fraud-detector", "version": str(i + 1), "run_id": spec.name, "uri": spec.name, "threshold": 0.5}})
    out = tmp_path / "staging"
    score_job(spark, plans, out, scorers)
    assert BATCH_SCHEMA.startswith("transaction_id long, tx_datetime timestamp")
    for plan in plans:
        got = pd.read_parquet(next((out / f"ds={plan['ds']}").glob("*.parquet"))).sort_values("transaction_id")
        assert list(got.columns) == PREDICTION_COLUMNS and len(got) == n
        assert [str(t) for t in got.dtypes[:6]] == ["int64", "datetime64[us, UTC]", "int64", "int64", "float64", "int8"]
        expected = scorers[plan["model"]["uri"]].predict(None, frame)
        np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=0, atol=1e-12,
                                   err_msg=f"family of {plan['model']['run_id']}")
        assert (got["flagged"].to_numpy() == (expected >= 0.5)).all()
        assert (got["tx_datetime"].to_numpy() == frame["tx_datetime"].to_numpy()).all()


def _synthetic_features(tmp_path, n: int, seed: int = 3):
    """A feature file of ``n`` rows shaped as the feature job writes them (counts and 0/1 flags as
    integers, the rest floats), labels that follow the amount, and the file's path."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"transaction_id": np.arange(n, dtype=np.int64),
                          "tx_datetime": pd.Timestamp("2026-04-01", tz="UTC") + pd.to_timedelta(np.arange(n), "s"),
                          "customer_id": rng.integers(0, 50, n), "terminal_id": rng.integers(0, 80, n)})
    for column in MODEL_INPUTS:
        frame[column] = (rng.poisson(4, n) if "nb_tx" in column or "during" in column else rng.gamma(2.0, 20.0, n))
    y = (frame["tx_amount"].to_numpy() + rng.normal(0, 20, n) > 80).astype(int)
    features = tmp_path / "features.parquet"
    frame.to_parquet(features, row_group_size=1_000)
    return frame, y, features


def test_reasons_of_the_flagged_rows_only(spark, data_root, tmp_path):
    """The job stages the top 3 reasons of each flagged row, and of no other, as include.training.explain
    gives them; two runs stage the same reasons; publish puts them in the warehouse and the lake, in the
    predictions' transaction; the rebuild reloads them from the lake."""
    import numpy as np
    from sqlalchemy import delete, select

    from include.scoring import REASON_COLUMNS, REASONS
    from include.training.explain import explain_rows
    from include.training.models import build_estimator, sample_weights
    from include.training.scorer import FraudScorer

    cfg = parse_training_config(small_config_dict())
    frame, y, features = _synthetic_features(tmp_path, 2_000, seed=5)
    scorers, plans = {}, []
    for i, spec in enumerate(s for s in cfg.models if s.family in ("logistic_regression", "xgboost")):
        estimator = build_estimator(spec.family, spec.params, cfg.seed, cfg.threads)
        scorers[spec.name] = FraudScorer(estimator.fit(frame[MODEL_INPUTS], y, sample_weights(y, spec.class_weight)),
                                         MODEL_INPUTS)
        plans.append({"ds": f"2026-04-{i + 1:02d}", "features": str(features), "model": {
            "name": "fraud-detector", "version": str(i + 1), "run_id": spec.name, "uri": spec.name, "threshold": 0.5}})
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        score_job(spark, plans, out, scorers)

    def staged(out, kind, day):
        folder = out / kind / f"ds={day}" if kind else out / f"ds={day}"
        return pd.read_parquet(next(folder.glob("*.parquet")))

    for plan in plans:
        day, scorer = plan["ds"], scorers[plan["model"]["uri"]]
        preds, reasons = staged(runs[0], "", day), staged(runs[0], REASONS[0], day)
        assert list(reasons.columns) == REASON_COLUMNS
        flagged = preds.loc[preds["flagged"] == 1, "transaction_id"].sort_values().to_numpy()
        assert 0 < len(flagged) < len(preds), "the test needs flagged and unflagged rows"
        assert sorted(set(reasons["transaction_id"])) == flagged.tolist()  # the flagged rows, and only they
        assert (reasons.groupby("transaction_id")["rank"].apply(list) == [[1, 2, 3]] * len(flagged)).all()
        assert (reasons["model_version"] == plan["model"]["version"]).all()
        # what explain gives for those rows, from the same float32 inputs
        rows = frame.set_index("transaction_id").loc[flagged, MODEL_INPUTS].to_numpy(np.float32)
        expected = explain_rows(scorer.estimator, rows, MODEL_INPUTS)
        got = reasons.sort_values(["transaction_id", "rank"])
        assert got["feature"].tolist() == expected["feature"].ravel().tolist()
        np.testing.assert_allclose(got["value"], expected["value"].ravel(), rtol=0, atol=0)
        np.testing.assert_allclose(got["contribution"], expected["contribution"].ravel(), rtol=0, atol=1e-9)
        # stable: a second run stages the same reasons, row for row
        pd.testing.assert_frame_equal(reasons, staged(runs[1], REASONS[0], day))

    publish_predictions(runs[0], plans, data_root)

    def warehouse_reasons():
        with warehouse.engine().connect() as conn:
            rows = conn.execute(select(warehouse.prediction_reasons)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows]).sort_values(["ds", "transaction_id", "rank"], ignore_index=True)

    published = warehouse_reasons()
    for plan in plans:
        lake = pd.read_parquet(partition_file(*REASONS, plan["ds"], data_root))
        pd.testing.assert_frame_equal(lake, staged(runs[0], REASONS[0], plan["ds"]))
        mine = published[published["ds"] == dt.date.fromisoformat(plan["ds"])]
        pd.testing.assert_frame_equal(mine[REASON_COLUMNS].reset_index(drop=True), lake.sort_values(
            ["transaction_id", "rank"], ignore_index=True)[REASON_COLUMNS], check_dtype=False)
    publish_predictions(runs[1], plans, data_root)  # a rerun replaces, never appends
    pd.testing.assert_frame_equal(warehouse_reasons(), published)

    with warehouse.engine().begin() as conn:  # a lost table: the rebuild reloads it from the lake
        conn.execute(delete(warehouse.prediction_reasons))
    warehouse.rebuild(data_root)
    pd.testing.assert_frame_equal(warehouse_reasons(), published)

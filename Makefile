# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17 required):
#   make demo   simulate a card-transaction history and run it through a real Airflow (scheduler, DAG processor,
#               API server): history load, first champion, nightly cycles with a drift that triggers retraining
#   make test   run the test suite (what CI runs)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

ENV := source scripts/airflow-env.sh
DAYS ?= 80
NIGHTS ?= 2
DRIFT ?= amount_shift
DRIFT_NIGHT ?= 2
SHADOW_DAYS ?= 1
SPARK ?= connect
TRIALS ?= 1
START ?= 2026-01-01
CUSTOMERS ?= 2500
TERMINALS ?= 5000
SEED ?= 0
PORT ?= 8080
PYTEST_ARGS ?=
QUALITY_ARGS ?=

.PHONY: venv airflow-home demo test reliability-report lint airflow mlflow spark-connect rollback warehouse-rebuild bench bench-scoring bench-quality bench-drift-library bench-scale new-pipeline clean

venv:
	scripts/bootstrap.sh

# A git-ignored Airflow home in .airflow/ (SQLite, LocalExecutor, this repo's dags/ and plugins/)
airflow-home: venv
	$(ENV)
	scripts/airflow-home.sh

# The tests get an Airflow home of their own: their DAG runs and Asset events never reach the
# metadata database that `make demo` and `make airflow` use
TEST_HOME := $(CURDIR)/.airflow-test

demo: airflow-home
	$(ENV)
	python -m tools.demo --days $(DAYS) --nights $(NIGHTS) --drift $(DRIFT) --drift-night $(DRIFT_NIGHT) --port $(PORT) --start $(START) --customers $(CUSTOMERS) --terminals $(TERMINALS) --seed $(SEED) --shadow-days $(SHADOW_DAYS) --spark $(SPARK) --trials $(TRIALS)

test: venv
	scripts/postgres-up.sh
	export AIRFLOW_HOME="$(TEST_HOME)"
	export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$${BATCHML_TEST_SQL_ALCHEMY_CONN:-sqlite:///$(TEST_HOME)/airflow.db}"
	$(ENV)
	scripts/airflow-home.sh
	ruff check .
	# two workers: the production stack's group beside the rest (tests/conftest.py); PYTEST_ARGS="-n 0" runs serially
	python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# Publish the reliability report of the last `make test` (test-artifacts/) to docs/reliability.md
reliability-report: venv
	$(ENV)
	python -m tests.reliability_report --publish

lint: venv
	$(ENV)
	ruff check .

# The Airflow UI and scheduler on http://localhost:8080; the login is printed before start-up
airflow: airflow-home
	$(ENV)
	echo ">>> Airflow UI on http://localhost:8080: user admin, password in $$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
	echo "    (created at the first start; also printed by airflow standalone). The ML monitor is under Plugins."
	airflow standalone

# The MLflow UI on http://localhost:5000 over the project's tracking store (runs, plots, registered models)
mlflow: venv
	$(ENV)
	python -m tools.mlflow_ui

# A long-lived Spark Connect server on 127.0.0.1:15002 (Ctrl-C stops it). Spark tasks use it instead of
# spark-submit (no JVM start per task) when spark_default is a Spark Connect connection:
#   export AIRFLOW_CONN_SPARK_DEFAULT='spark-connect://127.0.0.1:15002'
spark-connect: venv
	$(ENV)
	python -m tools.spark_connect

# Move the champion alias back to previous_champion (the promotion before the last)
rollback: venv
	$(ENV)
	python -m include.registry rollback

# Reload the warehouse from the lake (predictions, drift rows, alerts) and the registry (promotions)
# after it was lost or restored from an older copy (docs/operations.md, "State survives")
warehouse-rebuild: venv
	$(ENV)
	python -m include.warehouse rebuild

bench: airflow-home
	$(ENV)
	python bench/bench_parse.py
	python bench/bench_features.py
	python bench/bench_training.py

# Scoring and drift benchmarks read the data root a `make demo` leaves (its features and champion)
bench-scoring: venv
	$(ENV)
	python bench/bench_scoring.py --root data
	python bench/bench_drift.py --root data

# Model quality on the handbook's protocol over rolling test weeks and simulator seeds (about 40 min at the
# defaults; the features are cached in bench/results/quality/): make bench-quality QUALITY_ARGS=--quick
bench-quality: venv
	$(ENV)
	python bench/bench_quality.py $(QUALITY_ARGS)

# Our drift computation against Evidently, installed in its own git-ignored venv (not a dependency); without a
# `make demo` data root: make bench-drift-library DRIFT_LIBRARY_ARGS="--synthetic --rows 1000000"
DRIFT_LIBRARY_ARGS ?= --root data
bench-drift-library: venv
	[ -x bench/.venv-evidently/bin/python ] || python3.11 -m venv bench/.venv-evidently
	bench/.venv-evidently/bin/pip install --quiet -r bench/requirements-evidently.txt
	$(ENV)
	python bench/bench_drift_library.py $(DRIFT_LIBRARY_ARGS)

# A night's stages at 10x (50,000 simulated customers) and 100x (the 10x days tiled 10 times, disjoint ids):
# wall time, cost per row, peak RSS per process; the days are cached in bench/results/scale/ (git-ignored).
# Only 10x: make bench-scale SCALE_ARGS="--hundred none"
SCALE_ARGS ?=
bench-scale: venv
	$(ENV)
	python bench/bench_scale.py $(SCALE_ARGS)

# Scaffold a new pipeline from the reference one (docs/adding-a-pipeline.md): make new-pipeline NAME=churn
new-pipeline: venv
	[ -n "$(NAME)" ] || { echo "usage: make new-pipeline NAME=<name>  (a lowercase identifier, e.g. churn)" >&2; exit 2; }
	$(ENV)
	python -m tools.scaffold "$(NAME)"

clean:
	rm -rf .airflow .airflow-test data spark-warehouse test-artifacts

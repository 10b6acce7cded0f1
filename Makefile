# Two commands do all set-up on a fresh machine (Python 3.11 and Java 17 required):
#   make demo   simulate a card-transaction history, run ingest, features and training over it, then nightly
#               cycles (ingest, features, scoring, monitoring) with an injected drift that triggers retraining
#   make test   run the test suite (what CI runs)
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

ENV := source scripts/airflow-env.sh
DAYS ?= 75
NIGHTS ?= 5
DRIFT ?= amount_shift
DRIFT_NIGHT ?= 3
START ?= 2026-01-01
CUSTOMERS ?= 5000
TERMINALS ?= 10000
SEED ?= 0
PYTEST_ARGS ?=

.PHONY: venv airflow-home demo test lint airflow mlflow rollback bench bench-scoring bench-drift-library clean

venv:
	scripts/bootstrap.sh

# A git-ignored Airflow home in .airflow/ (SQLite, LocalExecutor, this repo's dags/ and plugins/)
airflow-home: venv
	$(ENV)
	mkdir -p "$$AIRFLOW_HOME"
	airflow db migrate > "$$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -30 "$$AIRFLOW_HOME/db-migrate.log"; exit 1; }
	python -m include.airflow_settings airflow_settings.yaml

demo: airflow-home
	$(ENV)
	python -m include.demo --days $(DAYS) --nights $(NIGHTS) --drift $(DRIFT) --drift-night $(DRIFT_NIGHT) --start $(START) --customers $(CUSTOMERS) --terminals $(TERMINALS) --seed $(SEED)

test: airflow-home
	$(ENV)
	ruff check .
	python -m pytest $(PYTEST_ARGS)

lint: venv
	$(ENV)
	ruff check .

# The Airflow UI and scheduler on http://localhost:8080 (credentials are printed at start-up)
airflow: airflow-home
	$(ENV)
	airflow standalone

# The MLflow UI on http://localhost:5000 over the project's tracking store (runs, plots, registered models)
mlflow: venv
	$(ENV)
	python -m include.mlflow_ui

# Move the champion alias back to previous_champion (the promotion before the last)
rollback: venv
	$(ENV)
	python -m include.registry rollback

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

# Our drift computation against Evidently, installed in its own git-ignored venv (not a dependency)
bench-drift-library: venv
	[ -x bench/.venv-evidently/bin/python ] || python3.11 -m venv bench/.venv-evidently
	bench/.venv-evidently/bin/pip install --quiet -r bench/requirements-evidently.txt
	$(ENV)
	python bench/bench_drift_library.py --root data

clean:
	rm -rf .airflow data spark-warehouse

#!/usr/bin/env bash
# Migrate the metadata database of $AIRFLOW_HOME and apply airflow_settings.yaml (both idempotent).
# Run with the project's environment: source scripts/airflow-env.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AIRFLOW_HOME:?source scripts/airflow-env.sh first}"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
python -m tools.airflow_settings airflow_settings.yaml

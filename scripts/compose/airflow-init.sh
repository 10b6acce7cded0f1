#!/usr/bin/env bash
# The compose stack's one-off init: migrate the metadata database, apply airflow_settings.yaml
# (connections, pools, variables), and write the admin's password from .env for the simple auth
# manager (the file lives in a volume only the Airflow services mount).
set -euo pipefail
: "${AIRFLOW_ADMIN_USER:?set AIRFLOW_ADMIN_USER in .env}" "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
airflow db migrate
python -m tools.airflow_settings /opt/airflow/airflow_settings.yaml
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
PY
echo "airflow-init: metadata migrated, settings applied, admin '${AIRFLOW_ADMIN_USER}' configured"

#!/usr/bin/env bash
# First start of the compose PostgreSQL: one role and one database per component, passwords from .env.
# Run by the postgres image's entrypoint (docker-entrypoint-initdb.d) as the postgres superuser.
set -euo pipefail
for component in airflow mlflow warehouse; do
  var="$(echo "$component" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  password="${!var:?$var must be set in .env}"
  psql -v ON_ERROR_STOP=1 --username postgres -v role="$component" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
SQL
done

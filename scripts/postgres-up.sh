#!/usr/bin/env bash
# Make sure the machine's PostgreSQL server answers on 127.0.0.1:5432 (the production-path tests, the
# PostgreSQL warehouse tests). Starts the Debian cluster when it is installed but stopped; otherwise
# says what is missing. BATCHML_TEST_POSTGRES points the tests at another server instead.
set -euo pipefail
if [ -n "${BATCHML_TEST_POSTGRES:-}" ]; then
  exit 0
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  echo ">>> starting PostgreSQL $version (cluster main) on 127.0.0.1:5432"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
    sleep 1
  done
fi
echo "ERROR: no PostgreSQL server answers on 127.0.0.1:5432. Install and start one (Debian: apt-get install" >&2
echo "       postgresql, trust auth for local connections), or set BATCHML_TEST_POSTGRES to a server's URL." >&2
exit 1

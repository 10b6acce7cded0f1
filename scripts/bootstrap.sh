#!/usr/bin/env bash
# Creates .venv and installs requirements.txt into it; does nothing when both are up to date.
# Fails early, with a clear message, when Python 3.11 or Java 17+ (needed by Spark) is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "ERROR: $PYTHON not found. Install Python 3.11 or run with PYTHON=/path/to/python3.11." >&2
  exit 1
fi

if ! command -v java >/dev/null 2>&1; then
  echo "ERROR: java not found on PATH. Spark (pyspark 4) needs Java 17 or newer:" >&2
  echo "       install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME and PATH." >&2
  exit 1
fi
java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
  echo "ERROR: Java $java_major found; Spark (pyspark 4) needs Java 17 or newer." >&2
  exit 1
fi

# Headless Chromium for the browser tests (tests/browser): Debian's package, installed when we run as
# root with apt-get; otherwise say how. Not fatal: only `pytest -m browser` needs it (and fails without).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${BATCHML_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo ">>> installing Debian's chromium (headless browser of the browser tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "WARNING: apt-get could not install chromium; the browser tests will fail until it is installed." >&2
  else
    echo "NOTE: chromium not found; the browser tests (pytest -m browser) need it:" >&2
    echo "      sudo apt-get install -y chromium (Debian), or set BATCHML_CHROMIUM=/path/to/chromium" >&2
  fi
fi

# Redis, the Celery broker of the production-path test with two Celery workers (tests/services.py starts
# its own redis-server on loopback) and of docker-compose.yaml: Debian's package, installed when we run
# as root with apt-get; otherwise a clear error, like Java.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo ">>> installing Debian's redis-server (the Celery broker of the CeleryExecutor tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || {
      echo "ERROR: apt-get could not install redis-server; the Celery workers test needs it." >&2; exit 1; }
  else
    echo "ERROR: redis-server not found on PATH. The CeleryExecutor test (tests/integration/test_celery_workers.py)" >&2
    echo "       needs it: sudo apt-get install -y redis-server (Debian/Ubuntu package redis-server)." >&2
    exit 1
  fi
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo ">>> installing requirements.txt into .venv (a cold install takes a few minutes)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --progress-bar off -r requirements.txt
echo "$want" > "$stamp"

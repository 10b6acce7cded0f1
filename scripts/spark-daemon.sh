#!/usr/bin/env bash
# A Spark standalone daemon from the pyspark package (no separate Spark install):
#   scripts/spark-daemon.sh master --host 127.0.0.1 --port 7077 --webui-port 8081
#   scripts/spark-daemon.sh worker spark://127.0.0.1:7077 --cores 2 --memory 4g
# Runs in the foreground (compose services, test fixtures); the python on PATH must have pyspark.
set -euo pipefail
role="${1:?usage: spark-daemon.sh master|worker ARGS...}"; shift
case "$role" in
  master) class=org.apache.spark.deploy.master.Master ;;
  worker) class=org.apache.spark.deploy.worker.Worker ;;
  *) echo "spark-daemon.sh: unknown role '$role' (master or worker)" >&2; exit 2 ;;
esac
SPARK_HOME="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME
exec "$SPARK_HOME/bin/spark-class" "$class" "$@"

# Environment of the embedded (one machine, no services) setup. Source it before any airflow command:
#   source scripts/airflow-env.sh && airflow dags list
# Every value can be overridden by exporting it first (production points these at PostgreSQL, a Spark
# cluster and an MLflow server; see README.md).
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_repo/.airflow}"
export BATCHML_DATA_ROOT="${BATCHML_DATA_ROOT:-$_repo/data}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$_repo/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$_repo/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
# include/ and the plugins' packages import from the repo root, in tasks and in spark-submit jobs
export PYTHONPATH="$_repo:$_repo/plugins${PYTHONPATH:+:$PYTHONPATH}"
# Spark binds its driver to loopback on a single machine (a cluster setup overrides this)
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$_repo/.venv/bin/python}"
export PATH="$_repo/.venv/bin:$PATH"
unset _repo

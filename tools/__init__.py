"""Developer tooling: what developers run, not what pipelines import.

The demo, the local Airflow services, the MLflow UI launcher, the Airflow settings loader, the pipeline scaffold
and the one process supervisor they share live here, apart from the library (include/), the DAGs (dags/) and the
plugins (plugins/). Nothing under include/, dags/ or plugins/ imports this package, so it need not be on the
path of Airflow task processes.
"""

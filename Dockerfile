# Airflow image of the project: the official image plus Java 17 (for spark-submit) and our pins.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

# include/ (and tools/ in airflow-init) and the plugins' packages import from the project root, as in scripts/airflow-env.sh
ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins \
    BATCHML_DATA_ROOT=/opt/airflow/data \
    GX_ANALYTICS_ENABLED=False

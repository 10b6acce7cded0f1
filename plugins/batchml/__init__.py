"""Custom operators of the batch ML project (the plugins/ folder is on Airflow's sys.path)."""

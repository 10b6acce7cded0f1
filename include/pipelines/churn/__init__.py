"""The customer-churn pipeline (weekly, per customer; docs/churn.md).

So far its data source only: :mod:`include.pipelines.churn.simulator` generates a seeded subscription
history and writes its landing files; :mod:`include.pipelines.churn.diagnostics` measures what a
simple model can learn from it. Nothing heavy is imported here, so DAG files may import the package.
"""

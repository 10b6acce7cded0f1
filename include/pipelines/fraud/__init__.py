"""The card-fraud pipeline (daily, per transaction; shared/SIMULATOR.md).

Its spec (:mod:`include.pipelines.fraud.spec`), its data source (:mod:`include.pipelines.fraud.simulator`)
and its feature logic (:mod:`include.pipelines.fraud.features`). Nothing heavy is imported here, so DAG
files may import the package.
"""

"""The fraud pipeline's plausibility bounds (plausibility.yaml beside this file): the schema of its
two raw feeds' sections, on the platform's bands and shared keys
(:mod:`include.validation.plausibility`). The spec names this class (``plausibility.schema_ref``);
the suite parameters that use it are computed in :mod:`include.validation.datasets`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from include.schema import STRICT, Fraction
from include.validation.plausibility import Band, PlausibilityConfig, ShareBand


class TransactionsPlausibility(BaseModel):
    model_config = STRICT

    rows: Band = Band(low=0.5, high=2.0)
    max_duplicate_share: Fraction = 0.01
    max_out_of_order_share: Fraction = 0.01
    busiest_hour_share: ShareBand = ShareBand(high=2.5, max=0.5)
    top_customer_share: ShareBand = ShareBand(high=3.0, max=0.25)
    top_terminal_share: ShareBand = ShareBand(high=3.0, max=0.25)
    distinct_customers: Band = Band(low=0.5, high=2.0)


class LabelsPlausibility(BaseModel):
    model_config = STRICT

    fraud_rate: ShareBand = ShareBand(low=0.25, high=6.0, max=0.5)
    min_reference_frauds: Annotated[int, Field(ge=0)] = 20


class FraudPlausibility(PlausibilityConfig):
    """plausibility.yaml of the fraud pipeline: the shared keys, and a section per raw feed."""

    transactions: TransactionsPlausibility = TransactionsPlausibility()
    labels: LabelsPlausibility = LabelsPlausibility()

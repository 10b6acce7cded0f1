"""Operators that wrap the shared library of include/ with Airflow's failure semantics.

They take small, templated arguments, build the heavy objects (Great Expectations contexts) only in
``execute`` and return a JSON-serialisable summary for XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


class GXCheckpointOperator(BaseOperator):
    """Validate the partitions of a dataset with its Great Expectations checkpoint.

    A failed expectation quarantines the file and fails the task *without retry*, naming the
    partition, the column and the expectation; downstream tasks do not run. A file that is not
    there yet fails with a normal (retryable) error.

    :param dataset: a key of ``include.validation.datasets.DATASETS`` (e.g. ``raw_transactions``).
    :param partitions: the day (``{{ ds }}``) or list of days to validate.
    :param staging: folder of staged files, for datasets validated before they are published.
    :param overrides: suite parameter overrides, e.g. row-count bounds from Airflow Variables.
    """

    template_fields: Sequence[str] = ("partitions", "staging", "overrides")
    template_fields_renderers = {"overrides": "json"}
    ui_color = "#ffe8c2"

    def __init__(
        self,
        *,
        dataset: str,
        partitions: str | list[str] = "{{ ds }}",
        staging: str | None = None,
        overrides: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.partitions = partitions
        self.staging = staging
        self.overrides = overrides

    def execute(self, context: Context) -> dict[str, Any]:
        from include.storage import MissingInputError
        from include.validation.checkpoints import DataQualityError
        from include.validation.datasets import validate_partitions

        days = [self.partitions] if isinstance(self.partitions, str) else list(self.partitions)
        overrides = {k: v for k, v in (self.overrides or {}).items() if v not in (None, "")}
        try:
            reports = validate_partitions(
                self.dataset, days, Path(self.staging) if self.staging else None, overrides
            )
        except DataQualityError as exc:
            self.log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        except MissingInputError as exc:
            raise AirflowException(str(exc)) from None
        return {
            "dataset": self.dataset,
            "partitions": [
                {"ds": r.ds, "rows": r.rows, "expectations": r.evaluated, "sha256": r.sha256} for r in reports
            ],
        }

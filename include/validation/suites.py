"""Expectation suites, in code: the registry the checkpoints read (``SUITES``, ``build_suite``) and the
pieces a pipeline's suites are built from. Values that depend on the partition are suite parameters
(``{"$PARAMETER": name}``, :func:`param`) filled in at run time by :mod:`include.validation.datasets`.
The suites themselves are the pipelines' own (``include/pipelines/<name>/suites.py``)."""

from __future__ import annotations

from collections.abc import Callable

from include.pipelines.fraud.suites import SUITES as reference_suites

INT_TYPES = ["int64", "Int64", "int32", "Int32"]
FLOAT_TYPES = ["float64", "Float64", "float32"]
# timestamps are validated as naive UTC (see checkpoints.utc_naive)
UTC_TIMESTAMP_TYPES = ["datetime64[us]", "datetime64[ns]", "datetime64[ms]"]


def param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def stat(name: str) -> dict[str, str]:
    """The ``meta`` of a plausibility expectation: the statistic it bounds, in words, for the failure
    message (include/validation/checkpoints.py ``_failures``)."""
    return {"statistic": name}


_param, _stat = param, stat  # the names pipelines imported first

# the reference pipeline's suites; another pipeline's are added by include.validation.datasets.register
SUITES: dict[str, Callable[[], list]] = dict(reference_suites)


def build_suite(name: str):
    import great_expectations as gx

    if name not in SUITES:
        raise KeyError(f"no expectation suite named {name!r}; known: {sorted(SUITES)}")
    return gx.ExpectationSuite(name=name, expectations=SUITES[name]())

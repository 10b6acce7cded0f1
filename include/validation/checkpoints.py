"""Run Great Expectations checkpoints on one partition and turn the result into a short report.

The GX project lives under ``<data root>/gx`` (a file context, so validation results accumulate and
Data Docs show every run). Suites are defined in code (:mod:`include.validation.suites`) and written
to the context with ``add_or_update`` on each run, so the code is the single source of truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import data_root
from include.storage import (
    UnusableFileError,
    canonical_frame,
    open_delivered_file,
    parquet_frame,
    read_delivered_file,
    zone_of,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# GX phones home unless told otherwise (the machines running this may have no route out anyway).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@dataclass(frozen=True)
class Failure:
    column: str | None
    expectation: str
    details: str

    def __str__(self) -> str:
        where = f"column {self.column}" if self.column else "table"
        return f"{where}: {self.expectation} ({self.details})"


@dataclass
class ValidationReport:
    """What an operator needs to see: which partition, which file, what failed and where."""

    suite: str
    ds: str
    path: str
    success: bool
    evaluated: int
    rows: int | None = None
    failures: list[Failure] = field(default_factory=list)
    quarantined_to: str | None = None
    sha256: str | None = None
    note_only: bool = False  # quarantine kept only failure.json: the path was no regular file to copy

    def message(self) -> str:
        if self.success:
            return f"{self.suite} ds={self.ds}: all {self.evaluated} expectations passed on {self.rows} rows ({self.path})"
        kept = ""
        if self.quarantined_to:
            kept = (f"; only a note kept in quarantine at {self.quarantined_to} (nothing was copied)" if self.note_only
                    else f"; file kept in quarantine at {self.quarantined_to}")
        lines = [f"{self.suite} ds={self.ds}: {len(self.failures)} of {self.evaluated} expectations failed "
                 f"on {self.path}{kept}"]
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """Small JSON for XCom and quarantine notes."""
        out = asdict(self)
        out["failures"] = [str(f) for f in self.failures]
        return out


class DataQualityError(Exception):
    """One or more partitions failed their checkpoint; the reports say where and why."""

    def __init__(self, reports: list[ValidationReport]):
        super().__init__("\n".join(r.message() for r in reports))
        self.reports = reports


# The Data Docs index lists the newest N validation results. Unlimited, every checkpoint run would
# load every result ever stored to rebuild it: a cost that grows with history, not with the day.
DATA_DOCS_INDEX_LIMIT = 200


def gx_context(root: Path | None = None):
    import great_expectations as gx

    # the project's own expectations are registered before any stored suite or result that uses them
    # is loaded (a task validating one dataset renders the Data Docs index of all of them)
    import include.validation.expectations  # noqa: F401

    # GX logs every config load at INFO; the task log should show our report, not that
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    project = (root or data_root()) / "gx"
    project.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(project))
    _configure_project(context)
    return context


def _configure_project(context) -> None:
    """Bounded Data Docs index, no progress bars in task logs; saved once, on the first run."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    changed = False
    sites = context.variables.data_docs_sites or {}
    for site in sites.values():
        builder = site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
        if builder.get("validation_results_limit") != DATA_DOCS_INDEX_LIMIT:
            builder["validation_results_limit"] = DATA_DOCS_INDEX_LIMIT
            changed = True
    bars = context.variables.progress_bars
    globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
    if globally is not False:
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        changed = True
    if changed:
        context.variables.data_docs_sites = sites
        context.variables.save()


def data_docs_index(root: Path | None = None) -> Path:
    return (root or data_root()) / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


# The advisory-lock key of the GX project: one lake per warehouse, so one key per deployment (the lake
# may be mounted at a different path on each worker, so the key holds no path).
GX_LOCK_KEY = "great_expectations project"


@contextlib.contextmanager
def gx_project_lock(root: Path | None = None):
    """One GX run at a time per project. The file context rewrites great_expectations.yml, the stores'
    JSON and the Data Docs pages and index on every run; two runs at once (both ingest sources, backfill
    runs, tasks of the same DAG on two Celery workers) otherwise read each other's half-written files.

    Two locks, taken in this order and released in reverse:

    - ``flock`` on ``<data root>/gx/.lock``: the tasks of one machine, whatever the warehouse;
    - when the warehouse is PostgreSQL (the production path, where Celery workers on several machines
      share the lake and the database), a session advisory lock (``pg_advisory_lock``) on a connection
      held for the whole run: it holds across machines, where ``flock`` on shared storage may not
      (NFS and object-store mounts differ), and PostgreSQL releases it when the holder's connection
      dies, so a killed worker leaves no stale lock. The key is :data:`GX_LOCK_KEY`.

    A lock rather than one GX context per checkpoint run: the Data Docs index is one file listing every
    result, rebuilt by each run, so separate contexts would still race on it. With SQLite (one machine)
    ``flock`` alone suffices."""
    from include.config import warehouse_url

    lock = (root or data_root()) / "gx" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if warehouse_url().startswith("postgresql"):
                with _advisory_lock(GX_LOCK_KEY):
                    yield
            else:
                yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(key: str):
    """A PostgreSQL session advisory lock on ``key`` in the warehouse, held while the block runs."""
    from sqlalchemy import func, select

    from include import warehouse

    with warehouse.engine().connect() as conn:
        lock_id = conn.execute(select(func.hashtext(key))).scalar_one()
        conn.execute(select(func.pg_advisory_lock(lock_id)))
        conn.commit()  # no transaction left open for the whole GX run
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(lock_id)))
            conn.commit()


class CheckpointRunner:
    """Runs checkpoints in one loaded GX project, for as many partitions as a task validates, and
    renders their Data Docs pages once at the end (:meth:`build_data_docs`).

    Per partition this leaves only the validation itself: loading the file context, rewriting the
    suite, validation definition and checkpoint, and rebuilding the Data Docs index (GX compiles its
    page templates anew on every build) cost more than the checks, 1.6 s against 0.4 s a partition,
    measured, which a history load of 70 days in three datasets paid 200 times."""

    def __init__(self, root: Path | None = None) -> None:
        self.context = gx_context(root)
        self.checkpoints: dict[str, Any] = {}
        self.results: list = []  # identifiers of the validation results to render

    def checkpoint(self, suite_name: str):
        if suite_name not in self.checkpoints:
            import great_expectations as gx

            from include.validation.suites import build_suite

            source = self.context.data_sources.add_or_update_pandas(name="batchml")
            try:
                asset = source.get_asset(suite_name)
            except LookupError:
                asset = source.add_dataframe_asset(name=suite_name)
            try:
                batch = asset.get_batch_definition("partition")
            except KeyError:
                batch = asset.add_batch_definition_whole_dataframe("partition")
            suite = self.context.suites.add_or_update(build_suite(suite_name))
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
            )
            # no actions: the runner renders the Data Docs of all its results at once
            self.checkpoints[suite_name] = self.context.checkpoints.add_or_update(
                gx.Checkpoint(name=suite_name, validation_definitions=[definition], actions=[],
                              result_format="SUMMARY")
            )
        return self.checkpoints[suite_name]

    def run(self, suite_name: str, frame: pd.DataFrame, parameters: dict[str, Any]):
        """Validate ``frame`` against a suite of :mod:`include.validation.suites`; returns the GX result."""
        result = self.checkpoint(suite_name).run(batch_parameters={"dataframe": frame},
                                                 expectation_parameters=parameters)
        identifier, validation = next(iter(result.run_results.items()))
        self.results.append(identifier)
        return validation

    def build_data_docs(self) -> None:
        """The pages of this runner's results, their suites' pages and the index, in one build."""
        if not self.results:
            return
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        suites = [ExpectationSuiteIdentifier(name=name) for name in self.checkpoints]
        self.context.build_data_docs(resource_identifiers=[*self.results, *suites], build_index=True)
        self.results = []


@contextlib.contextmanager
def checkpoint_runner(root: Path | None = None):
    """A :class:`CheckpointRunner` holding the project lock; Data Docs are built on the way out,
    also when a validation raised, so a failed partition's page is there to open."""
    with gx_project_lock(root):
        runner = CheckpointRunner(root)
        try:
            yield runner
        finally:
            runner.build_data_docs()


def run_checkpoint(suite_name: str, frame: pd.DataFrame, parameters: dict[str, Any], root: Path | None = None):
    """Validate one ``frame`` against a suite of :mod:`include.validation.suites`; returns the GX result."""
    with checkpoint_runner(root) as runner:
        return runner.run(suite_name, frame, parameters)


def _failures(validation_result) -> list[Failure]:
    failures = []
    for r in validation_result.results:
        if r.success:
            continue
        config = r.expectation_config
        info = r.exception_info or {}
        if info.get("raised_exception"):
            details = f"could not run: {str(info.get('exception_message', '')).splitlines()[0][:200]}"
        else:
            res = r.result or {}
            parts = []
            mismatched = (res.get("details") or {}).get("mismatched") or {}
            parts += [f"{kind} columns {mismatched[kind]}" for kind in ("missing", "unexpected") if mismatched.get(kind)]
            if "observed_value" in res:
                parts.append(f"observed {_plain(res['observed_value'])!r}")
            if res.get("unexpected_count"):
                sample = [str(_plain(v)) for v in (res.get("partial_unexpected_list") or [])[:3]]
                share = res.get("unexpected_percent")
                parts.append(f"{res['unexpected_count']} unexpected values"
                             + (f" ({share:.1f} % of rows)" if share is not None else "") + f", e.g. {sample}")
            expected = {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id", "result_format")}
            parts.append(f"expected {expected}")
            # the statistic a plausibility expectation bounds, in words (its meta, include/validation/suites.py)
            statistic = (config.meta or {}).get("statistic")
            details = (f"{statistic}: " if statistic else "") + "; ".join(parts)
        failures.append(Failure(config.kwargs.get("column"), config.type, details))
    return failures


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``0.5``, not ``np.float64(0.5)``), also inside a
    tuple (a pair of values)."""
    import numpy as np

    if isinstance(value, tuple):
        return tuple(map(_plain, value))
    return value.item() if isinstance(value, np.generic) else value


def validate_frame(
    suite_name: str, frame: pd.DataFrame, ds: str, path: Path, parameters: dict[str, Any], root: Path | None = None,
    runner: CheckpointRunner | None = None,
) -> ValidationReport:
    """The report of one partition's checkpoint, in ``runner``'s project when given."""
    result = runner.run(suite_name, frame, parameters) if runner else run_checkpoint(suite_name, frame, parameters, root)
    return ValidationReport(
        suite=suite_name,
        ds=ds,
        path=str(path),
        success=bool(result.success),
        evaluated=int(result.statistics["evaluated_expectations"]),
        rows=len(frame),
        failures=_failures(result),
    )


# The failure of a file that could not be read as a table at all (GX did not run on it).
UNREADABLE = "file_is_readable_parquet"
# The failure of a column whose delivered type cannot be cast to its canonical type without loss.
NOT_CANONICAL = "column_values_fit_canonical_type"


def validate_parquet_file(
    suite_name: str, path: Path, ds: str, parameters: dict[str, Any], root: Path | None = None,
    runner: CheckpointRunner | None = None,
) -> tuple[ValidationReport, pd.DataFrame | None]:
    """Read and validate one parquet file; an unusable file is a failed report, not a crash.

    The file is read with :func:`include.storage.read_delivered_file` (no link followed, no FIFO
    opened, no folder read), its checksum and content from one read into memory. A dataset with a
    canonical schema (:data:`include.ingest.RAW_SCHEMAS`) is validated, and returned, in that schema:
    what the checkpoint judges is what will be published."""

    from include.ingest import RAW_SCHEMAS

    try:
        content, sha = read_delivered_file(path, zone_of(path, root))
    except UnusableFileError as exc:
        return _unreadable(suite_name, ds, path, str(exc), None), None
    try:
        frame = parquet_frame(content)
    except Exception as exc:  # noqa: BLE001 - any reader error means the file is unusable
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return _unreadable(suite_name, ds, path, reason, sha), None
    del content
    refused: dict[str, str] = {}
    if suite_name in RAW_SCHEMAS:
        frame, refused = canonical_frame(frame, RAW_SCHEMAS[suite_name])
    report = validate_frame(suite_name, utc_naive(frame), ds, path, parameters, root, runner)
    report.sha256 = sha
    if refused:
        report.success = False
        report.failures[:0] = [Failure(column, NOT_CANONICAL, why) for column, why in refused.items()]
    return report, frame


def _unreadable(suite_name: str, ds: str, path: Path, reason: str, sha: str | None) -> ValidationReport:
    return ValidationReport(suite_name, ds, str(path), False, 1, failures=[Failure(None, UNREADABLE, reason)],
                            sha256=sha)


def utc_naive(frame: pd.DataFrame) -> pd.DataFrame:
    """Time-zone-aware columns as naive UTC: GX's pandas type checks do not know tz-aware dtypes."""
    import pandas as pd

    aware = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return frame
    frame = frame.copy()
    for column in aware:
        frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def quarantine(path: Path, report: ValidationReport, zone: str, dataset: str, root: Path | None = None) -> Path:
    """Copy a rejected file to ``quarantine/<zone>/<dataset>/ds=<ds>/`` with the reason beside it
    (``failure.json``). What is not a regular file of its zone (a link, a folder, a FIFO...) is not
    copied: only the note is kept, so a link never brings its target's content into quarantine.
    Returns the kept file, or the note."""
    root = root or data_root()
    target = root / "quarantine" / zone / dataset / f"ds={report.ds}"
    target.mkdir(parents=True, exist_ok=True)
    kept = target / path.name
    try:
        with open_delivered_file(path, zone_of(path, root)) as source:
            tmp = target / f".{path.name}.{uuid.uuid4().hex}.tmp"
            try:
                with tmp.open("wb") as copy:
                    shutil.copyfileobj(source, copy)
                os.replace(tmp, kept)
            finally:
                tmp.unlink(missing_ok=True)
    except (UnusableFileError, FileNotFoundError) as exc:
        kept = target / "failure.json"
        report.note_only = True
        log.error("%s: not copied into quarantine (%s)", path, exc)
    report.quarantined_to = str(kept)
    (target / "failure.json").write_text(json.dumps(report.summary(), indent=2, default=str))
    log.error("quarantined %s to %s", path, kept)
    return kept

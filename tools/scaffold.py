"""Scaffold a new batch ML pipeline from the reference (fraud) one.

    make new-pipeline NAME=churn
    python -m tools.scaffold churn [--root REPO] [--dry-run]

Generates, for pipeline NAME, from the templates in tools/scaffold_templates/ (derived from the
reference DAGs) and the reference configuration files:

| file | what it is |
|---|---|
| ``dags/NAME_{ingest,features,training,scoring,monitoring}.py`` | the five DAGs, wired by the pipeline's Assets, with the project's operators, pools, params, retries, notifier and runbook docs |
| ``include/pipelines/NAME/`` | the pipeline's package: Assets, the placeholder schema to edit, GX suites, stage logic, Spark jobs, training and monitoring steps, ``training.yaml`` and ``monitoring.yaml`` |
| ``tests/pipelines/test_NAME.py`` | tests that pass at once (the DAGs parse and are wired, the suites build and check, publishing is atomic, drift is detected) |

Every file is written to a temporary folder inside the repository first and then moved into place;
an invalid or taken name, or any failure, leaves the repository as it was. Only the standard library
is used, and the reference pipeline's spec (include.pipelines: where its configuration files are). Guide: docs/adding-a-pipeline.md.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import shutil
import string
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from include import pipelines

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().with_name("scaffold_templates")

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
STAGES = ("ingest", "features", "training", "scoring", "monitoring")
# Names whose lake paths (raw/<name>, features/<name>, predictions/<name>, reports/<name>) or
# identity would collide with the reference pipeline's.
RESERVED = {
    "fraud": "the reference pipeline (its DAGs are ingest, features, training, scoring, monitoring)",
    "transactions": "raw/transactions of the reference pipeline",
    "labels": "raw/labels of the reference pipeline",
    "baseline": "features/baseline and training/baseline of the reference pipeline",
    "drift": "reports/drift of the reference pipeline",
}

# template -> path in the repository (``{name}`` is the pipeline)
FILES: dict[str, str] = {
    **{f"dag_{stage}.py.tmpl": f"dags/{{name}}_{stage}.py" for stage in STAGES},
    "package_init.py.tmpl": "include/pipelines/{name}/__init__.py",
    "assets.py.tmpl": "include/pipelines/{name}/assets.py",
    "schema.py.tmpl": "include/pipelines/{name}/schema.py",
    "suites.py.tmpl": "include/pipelines/{name}/suites.py",
    "pipeline.py.tmpl": "include/pipelines/{name}/pipeline.py",
    "features.py.tmpl": "include/pipelines/{name}/features.py",
    "training.py.tmpl": "include/pipelines/{name}/training.py",
    "monitoring.py.tmpl": "include/pipelines/{name}/monitoring.py",
    "jobs_init.py.tmpl": "include/pipelines/{name}/jobs/__init__.py",
    "job_build_features.py.tmpl": "include/pipelines/{name}/jobs/build_features.py",
    "job_score.py.tmpl": "include/pipelines/{name}/jobs/score.py",
    "test_pipeline.py.tmpl": "tests/pipelines/test_{name}.py",
}
# created once, by the first pipeline, and left alone afterwards
SHARED_FILES: dict[str, str] = {"pipelines_init.py.tmpl": "include/pipelines/__init__.py"}
# the reference (default) pipeline's configuration files, as its spec names them
REFERENCE_TRAINING = pipelines.get().training_config
REFERENCE_MONITORING = pipelines.get().monitoring_config
DAG_ID = re.compile(r"""dag_id\s*=\s*["']([^"']+)["']""")


class ScaffoldError(ValueError):
    """The pipeline cannot be generated; the message says why and nothing was written."""


@dataclass(frozen=True)
class Names:
    """Every spelling of the pipeline's name the templates use."""

    name: str  # churn: DAG ids, Assets, datasets, the package
    slug: str  # MLflow experiment and registered model (dashes)
    upper: str  # environment variables

    @classmethod
    def of(cls, name: str) -> Names:
        return cls(name, name.replace("_", "-"), name.upper())

    def mapping(self) -> dict[str, str]:
        return {"name": self.name, "slug": self.slug, "upper": self.upper}


def validate_name(name: str) -> None:
    """ScaffoldError unless ``name`` can name a pipeline: a lowercase identifier, 2 to 41 characters,
    not a Python keyword (it names a package), not reserved by the reference pipeline."""
    if not NAME_PATTERN.match(name or ""):
        raise ScaffoldError(f"invalid pipeline name {name!r}: use a lowercase identifier matching "
                            f"{NAME_PATTERN.pattern} (letters, digits and underscores, starting with a letter), "
                            "e.g. churn or credit_risk")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"invalid pipeline name {name!r}: a Python keyword cannot name the package "
                            f"include.pipelines.{name}")
    if name in RESERVED:
        raise ScaffoldError(f"pipeline name {name!r} is reserved: {RESERVED[name]}")


def render(template: str, names: Names) -> str:
    """One template with the pipeline's names substituted (``$name``, ``$slug``, ``$upper``)."""
    text = (TEMPLATES / template).read_text()
    try:
        return string.Template(text).substitute(names.mapping())
    except (KeyError, ValueError) as exc:
        raise ScaffoldError(f"template {TEMPLATES / template} is broken: {type(exc).__name__}: {exc}") from None


def _set_key(text: str, key: str, value: str, source: str) -> str:
    """``key: <value>`` of a top-level YAML scalar, keeping its comment; the reference file must have it once."""
    pattern = re.compile(rf"^({re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*(#.*)?)$", re.M)
    if len(pattern.findall(text)) != 1:
        raise ScaffoldError(f"{source} has no single top-level '{key}:' line to rename; cannot derive the "
                            "pipeline's configuration from it")
    return pattern.sub(lambda m: f"{m.group(1)}{value}{m.group(3)}", text)


def _without_header(text: str) -> str:
    """The YAML without its leading comment block (the reference's description of itself)."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines).lstrip("\n")


def training_yaml(root: Path, names: Names) -> str:
    """The reference training.yaml with the pipeline's experiment and registered model."""
    source = root / REFERENCE_TRAINING
    text = _without_header(source.read_text())
    text = _set_key(text, "experiment", f"{names.slug}-training", str(source))
    text = _set_key(text, "registered_model", f"{names.slug}-model", str(source))
    return (f"# Training of the {names.name} pipeline, copied from {REFERENCE_TRAINING} by "
            f"`make new-pipeline NAME={names.name}`.\n"
            "# Read by include/training/config.py (the same keys and families as the reference); point\n"
            f"# BATCHML_{names.upper}_TRAINING_CONFIG at another file to change it without editing code.\n"
            "# The models, windows, metrics and gate below are the reference's: tune them to your problem\n"
            f"# (the label delay is LABEL_DELAY_DAYS in include/pipelines/{names.name}/schema.py).\n\n" + text)


def monitoring_yaml(root: Path, names: Names) -> str:
    """The reference monitoring.yaml, without the reference's excluded columns."""
    source = root / REFERENCE_MONITORING
    text = _without_header(source.read_text())
    text = _set_key(text, "exclude_columns", "[]          # model inputs never compared", str(source))
    return (f"# Drift monitoring of the {names.name} pipeline, copied from {REFERENCE_MONITORING} by "
            f"`make new-pipeline NAME={names.name}`.\n"
            "# Read by include/drift/config.py; point "
            f"BATCHML_{names.upper}_MONITORING_CONFIG at another file to change it\n"
            "# without editing code. include/pipelines/"
            f"{names.name}/monitoring.py uses the PSI/KS thresholds, min_drifted_columns,\n"
            "# exclude_columns and cooldown_days; `performance` applies once you add a check on labels.\n\n" + text)


def planned_files(name: str, root: Path) -> dict[str, str]:
    """Every file of the new pipeline: repository-relative path -> content."""
    names = Names.of(name)
    files = {path.format(name=name): render(template, names) for template, path in FILES.items()}
    package = f"include/pipelines/{name}"
    files[f"{package}/training.yaml"] = training_yaml(root, names)
    files[f"{package}/monitoring.yaml"] = monitoring_yaml(root, names)
    for template, path in SHARED_FILES.items():
        if not (root / path).exists():
            files[path] = render(template, names)
    return files


def existing_dag_ids(root: Path) -> dict[str, str]:
    """DAG id -> file, of the ``dag_id="..."`` literals in dags/ (without importing anything)."""
    found = {}
    for path in sorted((root / "dags").glob("*.py")):
        for dag_id in DAG_ID.findall(path.read_text(errors="replace")):
            found[dag_id] = f"dags/{path.name}"
    return found


def conflicts(name: str, root: Path, files: dict[str, str]) -> list[str]:
    """What already exists that the new pipeline would overwrite or duplicate."""
    problems = []
    package = root / "include" / "pipelines" / name
    if package.exists():
        problems.append(f"include/pipelines/{name}/ exists (pipeline {name!r} was already generated)")
    problems += [f"{path} exists" for path in files if (root / path).exists() and not path.startswith(
        f"include/pipelines/{name}/") and path not in SHARED_FILES.values()]
    taken = existing_dag_ids(root)
    problems += [f"DAG id {name}_{stage} is already defined in {taken[f'{name}_{stage}']}" for stage in STAGES
                 if f"{name}_{stage}" in taken]
    return problems


def _check_root(root: Path) -> None:
    missing = [p for p in ("dags", REFERENCE_TRAINING, REFERENCE_MONITORING) if not (root / p).exists()]
    if missing:
        raise ScaffoldError(f"{root} does not look like this repository (missing {', '.join(missing)}); "
                            "pass --root <repository>")


def scaffold(name: str, root: Path = REPO_ROOT, dry_run: bool = False) -> list[str]:
    """Generate pipeline ``name`` under ``root``; returns the repository-relative paths written (or
    that would be, with ``dry_run``). ScaffoldError, with nothing written, when it cannot."""
    validate_name(name)
    root = Path(root).resolve()
    _check_root(root)
    files = planned_files(name, root)
    problems = conflicts(name, root, files)
    if problems:
        raise ScaffoldError(f"pipeline {name!r} cannot be generated, nothing was written:\n  - "
                            + "\n  - ".join(problems))
    if dry_run:
        return sorted(files)
    _write_atomically(name, root, files)
    return sorted(files)


def _write_atomically(name: str, root: Path, files: dict[str, str]) -> None:
    """Write everything to a temporary folder inside ``root`` (same file system), then move it into
    place: the package folder with one rename, each other file with a link that refuses to overwrite.
    On any error, what was moved and the folders created are removed again."""
    staging = Path(tempfile.mkdtemp(prefix=f".scaffold-{name}-", dir=root))
    moved: list[Path] = []
    created: list[Path] = []
    package = Path("include") / "pipelines" / name
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        units = [package] + sorted(Path(rel) for rel in files if not Path(rel).is_relative_to(package))
        for unit in units:
            dest = root / unit
            for parent in reversed(dest.parents):
                if parent != root and parent.is_relative_to(root) and not parent.exists():
                    parent.mkdir()
                    created.append(parent)
            if unit == package:
                if dest.exists():
                    raise ScaffoldError(f"{unit}/ appeared while generating; nothing was written")
                os.rename(staging / unit, dest)
            else:
                try:
                    os.link(staging / unit, dest)  # fails if dest exists: never overwrites
                except FileExistsError:
                    raise ScaffoldError(f"{unit} appeared while generating; nothing was written") from None
            moved.append(dest)
    except BaseException:
        for dest in reversed(moved):
            if dest.is_dir():
                shutil.rmtree(dest)
            else:
                dest.unlink(missing_ok=True)
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


NEXT_STEPS = """
next steps (docs/adding-a-pipeline.md):
  1. edit include/pipelines/{name}/schema.py: the columns of landing/{name}/<YYYY-MM-DD>.parquet
  2. write features.compute_features, training.build_training_set, training.train_model and
     training.evaluate_champion in include/pipelines/{name}/ (each fails naming itself until then)
  3. test: python -m pytest tests/pipelines/test_{name}.py tests/dags -q && ruff check .
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.scaffold", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the pipeline's name, a lowercase identifier (e.g. churn)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository to generate into (default: this one)")
    parser.add_argument("--dry-run", action="store_true", help="list the files without writing anything")
    args = parser.parse_args(argv)
    try:
        paths = scaffold(args.name, args.root, dry_run=args.dry_run)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'would create' if args.dry_run else 'created'} pipeline {args.name!r} in {Path(args.root).resolve()}:")
    for path in paths:
        print(f"  {path}")
    if not args.dry_run:
        print(NEXT_STEPS.format(name=args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

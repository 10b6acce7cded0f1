"""The layout's one rule between packages: the library (include/), the DAGs (dags/) and the plugins
(plugins/) never import the developer tooling (tools/), so Airflow's task processes, the Spark executors
and the compose services need only include/, dags/ and plugins/ on their path."""

from __future__ import annotations

import ast
from pathlib import Path

from include.config import REPO_ROOT

LIBRARY = ("include", "dags", "plugins")


def _tooling_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {name}"
                  for name in names if name == "tools" or name.startswith("tools.")]
    return found


def test_the_library_dags_and_plugins_do_not_import_tools():
    files = [p for top in LIBRARY for p in sorted((REPO_ROOT / top).rglob("*.py"))]
    assert len(files) > 20, "the library's files were not found"
    offenders = [hit for path in files for hit in _tooling_imports(path)]
    assert not offenders, "the library imports the tooling (tools/ is what developers run):\n" + "\n".join(offenders)


def test_generated_pipelines_do_not_import_tools():
    # the scaffold's templates become include/, dags/ and plugins/ code of a new pipeline
    templates = sorted((REPO_ROOT / "tools" / "scaffold_templates").rglob("*.tmpl"))
    assert templates
    for template in templates:
        lines = template.read_text().splitlines()
        bad = [n for n, line in enumerate(lines, 1)
               if line.lstrip().startswith(("import tools", "from tools.", "from tools import"))]
        assert not bad, f"{template.relative_to(REPO_ROOT)} lines {bad} import tools/"


def test_the_tooling_is_a_package_of_its_own():
    assert (REPO_ROOT / "tools" / "__init__.py").is_file()
    for moved in ("demo", "local_airflow", "mlflow_ui", "airflow_settings", "scaffold"):
        assert (REPO_ROOT / "tools" / f"{moved}.py").is_file(), moved
        assert not (REPO_ROOT / "include" / f"{moved}.py").exists(), f"include/{moved}.py is back in the library"

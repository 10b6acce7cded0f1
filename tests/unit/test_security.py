"""Security properties checked on the repository itself: no secret in any tracked file, SQL only with
bound parameters, models only from the registry, no pickle loads of files."""

from __future__ import annotations

import ast
import re
import subprocess

import pytest

from include.config import REPO_ROOT

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abpors]-[0-9A-Za-z-]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[0-9A-Z]{6,}/B[0-9A-Z]{6,}/[0-9A-Za-z]{12,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{30,}"),
    # user:password@host with a literal password (placeholders like ${VAR} are fine)
    "credentials in a URL": re.compile(r"://[\w.-]+:(?!\$\{|\$\$\{|\{)[^@/\s'\"]{3,}@"),
    # key = "literal" or key: "literal" (YAML); not psql's :'variable' interpolation
    "password assignment": re.compile(
        r"(?i)\b\w*(password|passwd|secret|api_key|token)\w*\s*(?:=|:\s+)\s*['\"][^'\"\s{}$]{6,}['\"]"),
}
ALLOWED: set[tuple[str, str]] = set()  # (path, kind) of a reviewed false positive


def _tracked_text_files() -> list[str]:
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in files if not f.endswith((".png", ".parquet", ".jpg", ".ico"))]


def _python_files(*folders: str) -> list[str]:
    return [f for f in _tracked_text_files() if f.endswith(".py") and f.split("/")[0] in folders]


def find_secrets(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def test_no_secret_in_any_tracked_file():
    found = []
    for path in _tracked_text_files():
        try:
            text = (REPO_ROOT / path).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [(path, kind) for kind in find_secrets(text) if (path, kind) not in ALLOWED]
    assert found == []


# Planted secrets, assembled at run time so this file itself holds none
@pytest.mark.parametrize("text", [
    "-----BEGIN RSA " + "PRIVATE KEY-----",
    "aws_key = " + "AKIA" + "ABCDEFGHIJKLMNOP",
    "postgresql://airflow:" + "hunter2@db:5432/airflow",
    "api_token = " + '"s3cr3t-value-123"',
    "https://hooks.slack.com/services/" + "T0123456/B0123456/abcdefghijklmnop",
])
def test_the_scanner_finds_planted_secrets(text):
    assert find_secrets(text)


@pytest.mark.parametrize("text", [
    "postgresql+psycopg2://airflow:${AIRFLOW_DB_PASSWORD:?set it}@postgres:5432/airflow",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
    "AIRFLOW_ADMIN_PASSWORD=",
])
def test_placeholders_are_not_secrets(text):
    assert find_secrets(text) == []


def _calls(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                yield node


def _is_formatted(node: ast.AST) -> bool:
    """An f-string, a % or + on strings, or .format(): SQL built from values instead of bound parameters."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def test_sql_is_never_built_from_strings():
    offenders = []
    for path in _python_files("include", "plugins", "dags"):
        tree = ast.parse((REPO_ROOT / path).read_text())
        for call in _calls(tree, {"text", "exec_driver_sql", "execute", "executescript"}):
            if call.args and _is_formatted(call.args[0]):
                offenders.append(f"{path}:{call.lineno}")
    assert offenders == []


def test_models_are_loaded_only_from_the_registry():
    """No pickle/joblib/torch file loads; MLflow loads take registry URIs (models:/name/version)."""
    loads, uris = [], []
    for path in _python_files("include", "plugins", "dags"):
        tree = ast.parse((REPO_ROOT / path).read_text())
        for call in _calls(tree, {"load", "loads"}):
            owner = call.func.value.id if isinstance(call.func, ast.Attribute) and isinstance(
                call.func.value, ast.Name) else None
            if owner in {"pickle", "joblib", "cloudpickle", "torch", "dill"}:
                loads.append(f"{path}:{call.lineno} {owner}.{call.func.attr}")
        for call in _calls(tree, {"load_model"}):
            arg = call.args[0] if call.args else None
            literal = arg.values[0].value if isinstance(arg, ast.JoinedStr) and isinstance(
                arg.values[0], ast.Constant) else None
            registry = literal is not None and literal.startswith("models:/")
            from_plan = isinstance(arg, ast.Subscript) and ast.unparse(arg).endswith("['uri']")
            if not (registry or from_plan):
                uris.append(f"{path}:{call.lineno} {ast.unparse(arg) if arg else ''}")
    assert loads == [] and uris == []


def test_scoring_plans_name_registry_uris():
    from include.scoring import ModelChoice

    assert ModelChoice("fraud-detector", "3", "abc", 0.5, "alias").uri == "models:/fraud-detector/3"

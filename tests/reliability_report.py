"""The reliability report: what the fault, bad-input and concurrency tests tried and whether it held,
written by those tests themselves.

A test takes the ``reliability`` fixture (tests/conftest.py) and describes its case::

    def test_negative_amount(reliability, ...):
        case = reliability.case("bad input", "raw transactions: a negative tx_amount",
                                expected="validate_transactions fails; nothing published")
        ...
        case.observed = "failed: tx_amount ... ds=2026-03-09"

Whether the case *held* is the test's outcome (passed or not), filled in after it ran. At the end
of the session the cases that ran are written to test-artifacts/reliability.json and .md (git-ignored):
a test run never rewrites a tracked file. ``make reliability-report`` (``python -m
tests.reliability_report --publish``) merges them into docs/reliability.json, the table's source keyed
by section and case, and regenerates docs/reliability.md; cases that did not run keep their last
result and the date it was observed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# what a test session writes (git-ignored; BATCHML_TEST_ARTIFACTS moves it) ...
ARTIFACTS = Path(os.environ.get("BATCHML_TEST_ARTIFACTS", REPO / "test-artifacts"))
SESSION_RESULTS = ARTIFACTS / "reliability.json"
SESSION_TABLE = ARTIFACTS / "reliability.md"
# ... and what `make reliability-report` publishes on purpose
RESULTS = REPO / "docs" / "reliability.json"
TABLE = REPO / "docs" / "reliability.md"
SECTIONS = ("production path", "operations", "faults", "concurrency", "unreachable services", "bad input",
            "unusual input", "security")

HEADER = """# Reliability report

What the tests tried against the pipeline (operations through the scheduler, faults, bad input,
concurrency, the production services) and whether it held. **Generated** by the tests themselves
(`tests/reliability_report.py`)
in every `make test` and published here by `make reliability-report`; do not edit by hand. A row's date and commit say when it was last
observed; *held* is the outcome of the test that tried it.
"""


@dataclass
class Case:
    section: str
    case: str
    expected: str
    observed: str = ""
    held: bool | None = None  # the test's outcome; None while it runs
    test: str = ""
    date: str = field(default_factory=lambda: dt.date.today().isoformat())
    commit: str = ""


class Recorder:
    """The cases of one pytest session."""

    def __init__(self) -> None:
        self.cases: list[Case] = []

    def case(self, section: str, case: str, expected: str, test: str = "") -> Case:
        if section not in SECTIONS:
            raise ValueError(f"unknown report section {section!r}; one of {SECTIONS}")
        self.cases.append(Case(section, case, expected, test=test))
        return self.cases[-1]

    def write(self) -> None:
        """The finished cases of this session into test-artifacts/ (merged with what earlier sessions
        left there, so running one test file does not forget the others)."""
        finished = [c for c in self.cases if c.held is not None]
        if not finished:
            return
        commit = _commit()
        for c in finished:
            c.commit = commit
        _save(_merge(_load(SESSION_RESULTS), [asdict(c) for c in finished]), SESSION_RESULTS, SESSION_TABLE)


def _merge(rows: list[dict], newer: list[dict]) -> list[dict]:
    by_key = {(r["section"], r["case"]): r for r in rows}
    by_key.update({(r["section"], r["case"]): r for r in newer})
    return sorted(by_key.values(), key=lambda r: (SECTIONS.index(r["section"]), r["case"]))


def _save(rows: list[dict], results: Path, table: Path) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=1) + "\n")
    table.write_text(render(rows))


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


# pytest's per-run temporary folders say nothing to a reader of docs/ and change on every run
_TMP = re.compile(r"/(?:private/)?(?:var/)?tmp/pytest-of-[^/\s]+/pytest-\d+/")


_TMP_CUT = re.compile(r"/(?:private/)?(?:var/)?tmp/pytest-of-[^\s'\"]*")  # one the observed text cut short


def _without_tmp_paths(row: dict) -> dict:
    return {k: _TMP_CUT.sub("<tmp>", _TMP.sub("<tmp>/", v)) if isinstance(v, str) else v for k, v in row.items()}


def publish() -> list[dict]:
    """Merge the cases of test-artifacts/ into docs/reliability.json and regenerate docs/reliability.md."""
    session = [_without_tmp_paths(r) for r in _load(SESSION_RESULTS)]
    if not session:
        raise SystemExit(f"no test results at {SESSION_RESULTS}: run `make test` first")
    rows = _merge(_load(RESULTS), session)
    _save(rows, RESULTS, TABLE)
    return rows


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(rows: list[dict]) -> str:
    held = sum(1 for r in rows if r["held"])
    out = [HEADER, f"**{held} of {len(rows)} cases held.**\n"]
    for section in SECTIONS:
        mine = [r for r in rows if r["section"] == section]
        if not mine:
            continue
        out += [f"## {section.capitalize()}\n", "| case | expected | observed | held | test | observed on |",
                "|---|---|---|---|---|---|"]
        out += [f"| {_cell(r['case'])} | {_cell(r['expected'])} | {_cell(r['observed'])} | "
                f"{'yes' if r['held'] else '**NO**'} | `{_cell(r['test'])}` | {r['date']} {r['commit']} |" for r in mine]
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", action="store_true", help="merge test-artifacts/ into docs/reliability.*")
    args = parser.parse_args()
    rows = publish() if args.publish else _load(SESSION_RESULTS)
    held = sum(1 for r in rows if r["held"])
    where = TABLE if args.publish else SESSION_TABLE
    print(f"{held} of {len(rows)} cases held ({where})")


if __name__ == "__main__":
    main()

"""docs/reliability.md: what the fault, bad-input and concurrency tests tried and whether it held,
written by those tests themselves.

A test takes the ``reliability`` fixture (tests/conftest.py) and describes its case::

    def test_negative_amount(reliability, ...):
        case = reliability.case("bad input", "raw transactions: a negative tx_amount",
                                expected="validate_transactions fails; nothing published")
        ...
        case.observed = "failed: tx_amount ... ds=2026-03-09"

Whether the case *held* is the test's outcome (passed or not), filled in after it ran. At the end
of the session the cases that ran replace their earlier rows in docs/reliability.json (the table's
source, keyed by section and case) and docs/reliability.md is regenerated; cases that did not run
this session keep their last result and the date it was observed.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "reliability.json"
TABLE = REPO / "docs" / "reliability.md"
SECTIONS = ("production path", "faults", "concurrency", "unreachable services", "bad input")

HEADER = """# Reliability report

What the tests tried against the pipeline (faults, bad input, concurrency, the production
services) and whether it held. **Generated** by the tests themselves (`tests/reliability_report.py`)
at the end of every `make test`; do not edit by hand. A row's date and commit say when it was last
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
        """Merge the finished cases of this session into docs/reliability.json and regenerate the table."""
        finished = [c for c in self.cases if c.held is not None]
        if not finished:
            return
        commit = _commit()
        rows = {(r["section"], r["case"]): r for r in _load()}
        for c in finished:
            c.commit = commit
            rows[(c.section, c.case)] = asdict(c)
        ordered = sorted(rows.values(), key=lambda r: (SECTIONS.index(r["section"]), r["case"]))
        RESULTS.write_text(json.dumps(ordered, indent=1) + "\n")
        TABLE.write_text(render(ordered))


def _load() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


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

"""Time zones (docs/operations.md, "Time"): every day boundary and stored time is UTC, whatever the
machine's ``TZ`` or Airflow's ``[core] default_timezone`` say.

Each case runs the project's own day and time functions in a fresh Python process whose local zone is
far from UTC (Pacific/Kiritimati, UTC+14: its day begins ten hours before UTC's; America/Los_Angeles,
UTC-8/-7) and whose Airflow default zone is a third one (Asia/Kolkata, UTC+5:30), and checks they give
the UTC answers: the UTC day of a transaction through the canonical schema and the validation's day
bounds; "today" and whether a day is over; the ``ds`` of the scheduled ingest run after midnight UTC
(the day that just ended); the ``as_of`` of the weekly training run. A fresh process because the zone
is read when Python, pandas, pendulum and Airflow start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

ZONES = {
    "Pacific/Kiritimati": 14 * 3600,
    "America/Los_Angeles": None,  # -8 h or -7 h, by the date
}
AIRFLOW_ZONE = "Asia/Kolkata"

PROBE = textwrap.dedent('''
    import datetime as dt
    import importlib.util
    import json
    import time

    import pandas as pd

    U = dt.UTC
    out = {"local_offset": time.localtime().tm_gmtoff}
    from airflow import settings
    out["airflow_zone"] = settings.TIMEZONE.name

    # a transaction at 2026-03-01 23:30 UTC, delivered naive (meaning UTC) or in another zone, is
    # published in UTC and belongs to 2026-03-01, inside that day's validation bounds
    from include.ingest import RAW_SCHEMAS
    from include.storage import canonical_frame
    from include.validation.datasets import day_bounds

    stamps = {"naive": pd.Series(pd.to_datetime(["2026-03-01 23:30:00"])),
              "+14:00": pd.Series(pd.to_datetime(["2026-03-02 13:30:00+14:00"])),
              "-08:00": pd.Series(pd.to_datetime(["2026-03-01 15:30:00-08:00"]))}
    out["canonical"] = {}
    for name, stamp in stamps.items():
        frame, refused = canonical_frame(pd.DataFrame({"tx_datetime": stamp}), RAW_SCHEMAS["raw_transactions"])
        value = frame["tx_datetime"].iloc[0]
        out["canonical"][name] = [value.isoformat(), str(frame["tx_datetime"].dt.date.iloc[0]), refused]
    out["bounds"] = day_bounds(dt.date(2026, 3, 1))

    # today, and whether a day is over, near midnight UTC
    from include.run_days import NothingToDo, check_not_future, today_utc

    out["today"] = [today_utc().isoformat(), time.strftime("%Y-%m-%d", time.gmtime())]
    verdicts = {}
    for label, now in {"23:59:59Z": dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=U),
                       "00:00:00Z": dt.datetime(2026, 3, 2, 0, 0, tzinfo=U),
                       "naive 23:59:59": dt.datetime(2026, 3, 1, 23, 59, 59)}.items():
        try:
            check_not_future(["2026-03-01"], "ingest", now)
            verdicts[label] = "over"
        except NothingToDo as exc:
            verdicts[label] = str(exc)
    out["not_future"] = verdicts

    # the scheduled runs, as the scheduler computes them from the DAGs' serialised timetables
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    def dag_of(name):
        spec = importlib.util.spec_from_file_location(f"dag_{name}", f"dags/{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, name)()  # the @dag function builds the DAG

    def next_run(name, last_start, last_end):
        timetable = decode_timetable(encode_timetable(dag_of(name).timetable))
        if hasattr(timetable, "timetable"):  # asset-or-time: the time part
            timetable = timetable.timetable
        info = timetable.next_dagrun_info(last_automated_data_interval=DataInterval(last_start, last_end),
                                          restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
        logical = info.logical_date
        return {"run_after": info.run_after.isoformat(), "logical_date": logical.isoformat(),
                "ds": logical.strftime("%Y-%m-%d")}  # how the task runner renders ds

    out["ingest"] = next_run("ingest", dt.datetime(2026, 3, 1, tzinfo=U), dt.datetime(2026, 3, 2, tzinfo=U))
    out["training"] = next_run("training", dt.datetime(2026, 3, 1, 3, tzinfo=U), dt.datetime(2026, 3, 1, 3, tzinfo=U))

    from include.training.schedule import resolve_as_of

    logical = dt.datetime.fromisoformat(out["training"]["logical_date"])
    kiritimati = dt.timezone(dt.timedelta(hours=14))
    out["as_of"] = {
        "scheduled": resolve_as_of(None, [], logical),
        # 2026-03-07 23:00 UTC, carried in UTC+14 (already 2026-03-08 there) or naive
        "+14:00": resolve_as_of(None, [], dt.datetime(2026, 3, 7, 23, tzinfo=U).astimezone(kiritimati)),
        "naive": resolve_as_of(None, [], dt.datetime(2026, 3, 7, 23)),
    }
    print("PROBE " + json.dumps(out))
''')


def _probe(zone: str) -> dict:
    env = {**os.environ, "TZ": zone, "AIRFLOW__CORE__DEFAULT_TIMEZONE": AIRFLOW_ZONE, "BATCHML_TIME_SCHEDULES": "on"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, f"probe under TZ={zone} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("PROBE "))


@pytest.fixture(scope="module", params=list(ZONES))
def probe(request) -> tuple[str, dict]:
    return request.param, _probe(request.param)


def test_the_zones_are_in_effect(probe):
    """The control: the process really runs in a local zone far from UTC and a non-UTC Airflow zone."""
    zone, out = probe
    assert out["local_offset"] != 0 and (ZONES[zone] is None or out["local_offset"] == ZONES[zone])
    assert out["airflow_zone"] == AIRFLOW_ZONE


def test_a_transaction_lands_in_its_utc_day(probe):
    _, out = probe
    for delivered, (stamp, day, refused) in out["canonical"].items():
        assert (stamp, day, refused) == ("2026-03-01T23:30:00+00:00", "2026-03-01", {}), delivered
    # the checkpoint's bounds of 2026-03-01 are that UTC day (the validated frames hold naive UTC)
    assert out["bounds"] == {"day_start": "2026-03-01T00:00:00", "day_end": "2026-03-01T23:59:59.999999"}


def test_a_day_is_over_at_midnight_utc(probe):
    _, out = probe
    today, utc_today = out["today"]
    assert today == utc_today
    verdicts = out["not_future"]
    assert "ds=2026-03-01 is not over yet (today is 2026-03-01 UTC)" in verdicts["23:59:59Z"]
    assert "ds=2026-03-01 is not over yet" in verdicts["naive 23:59:59"]  # a naive moment is UTC
    assert verdicts["00:00:00Z"] == "over"


def test_the_ingest_run_after_midnight_utc_lands_the_day_that_ended(probe):
    """Airflow 3's "@daily" is a trigger timetable: the run due at 2026-03-03 00:00 had ds 2026-03-03,
    a day that had just begun. Now its ds is 2026-03-02, in UTC, whatever the zones say."""
    _, out = probe
    assert out["ingest"] == {"run_after": "2026-03-03T00:00:00+00:00", "logical_date": "2026-03-02T00:00:00+00:00",
                             "ds": "2026-03-02"}


def test_the_weekly_training_is_as_of_the_utc_saturday(probe):
    _, out = probe
    # 2026-03-08 is a Sunday: the run at 03:00 UTC trains as of Saturday 2026-03-07
    assert out["training"]["run_after"] == "2026-03-08T03:00:00+00:00"
    assert out["as_of"] == {"scheduled": "2026-03-07", "+14:00": "2026-03-06", "naive": "2026-03-06"}

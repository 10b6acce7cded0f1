"""Airflow's services as local processes on the project's AIRFLOW_HOME, and a small client of its
REST API: what `make demo` drives, so DAG runs go through the real scheduler, executor, DAG processor
and API server rather than ``dag.test()``.

    with LocalAirflow(home, port=8080) as airflow:
        api = airflow.api()
        api.set_paused("ingest", False)
        run = api.trigger("ingest", {"start": "2026-03-01", "end": "2026-03-01"})
        api.wait_run("ingest", run["dag_run_id"])

The services run under the project's one supervisor (tools/supervisor.py), each in its own process
group with its output in ``$AIRFLOW_HOME/services/``; leaving the context stops them (SIGTERM to the
groups, then SIGKILL after a grace period), as does the interpreter's exit or a SIGTERM. The metadata database
keeps the run history, so ``make airflow`` shows it afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.supervisor import ServiceError, Supervisor

log = logging.getLogger(__name__)

SERVICES = ("scheduler", "dag-processor", "triggerer", "api-server")


class AirflowServiceError(ServiceError):
    """A service did not start, died, or a run did not finish as expected; the message says which."""


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class LocalAirflow:
    home: Path
    port: int = 8080
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the services
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(grace=30))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "services"

    def __enter__(self) -> LocalAirflow:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 180) -> None:
        if not port_is_free(self.port):
            raise AirflowServiceError(f"port {self.port} is in use (is `make airflow` running? stop it first)")
        env = {**os.environ, **self.env, "AIRFLOW_HOME": str(self.home),
               "AIRFLOW__API__PORT": str(self.port),
               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/"}
        try:
            for name in SERVICES:
                args = ["airflow", name] + (["--host", "127.0.0.1", "--port", str(self.port)]
                                            if name == "api-server" else [])
                self.supervisor.start(f"airflow {name}", args, log=self.logs / f"{name}.log", env=env)
            self.supervisor.wait_until(self._scheduler_healthy, timeout=timeout, poll=1,
                                       what="Airflow services healthy")
        except ServiceError as exc:
            self.stop()
            raise AirflowServiceError(str(exc)) from exc

    def _scheduler_healthy(self) -> bool:
        import httpx

        try:
            health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, json.JSONDecodeError):
            return False
        return health.get("scheduler", {}).get("status") == "healthy"

    def check_alive(self) -> None:
        try:
            self.supervisor.check()
        except ServiceError as exc:
            raise AirflowServiceError(str(exc)) from exc

    def stop(self, grace: float = 30) -> None:
        self.supervisor.stop_all(grace)

    def admin_password(self) -> tuple[str, str]:
        """The simple auth manager's admin and the password it generated into AIRFLOW_HOME."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        user = "admin" if "admin" in passwords else next(iter(passwords))
        return user, passwords[user]

    def api(self) -> AirflowAPI:
        return AirflowAPI.login(self.base_url, *self.admin_password(), alive=self.check_alive)


def _runs_key(runs: dict[str, list[dict]]) -> dict[str, list[tuple[str, str]]]:
    return {d: [(r["dag_run_id"], r["state"]) for r in rs] for d, rs in runs.items()}


class AirflowAPI:
    """The few REST calls the demo needs (``/api/v2``), with a simple-auth-manager token."""

    def __init__(self, base_url: str, token: str, alive=None) -> None:
        import httpx

        self.client = httpx.Client(base_url=f"{base_url}/api/v2", timeout=30,
                                   headers={"Authorization": f"Bearer {token}"})
        self.alive = alive or (lambda: None)

    @classmethod
    def login(cls, base_url: str, user: str, password: str, alive=None) -> AirflowAPI:
        import httpx

        r = httpx.post(f"{base_url}/auth/token", json={"username": user, "password": password}, timeout=30)
        r.raise_for_status()
        return cls(base_url, r.json()["access_token"], alive)

    def call(self, method: str, path: str, **kwargs) -> Any:
        r = self.client.request(method, path, **kwargs)
        if r.status_code >= 400:
            raise AirflowServiceError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180, since: dt.datetime | None = None) -> None:
        """Until the DAG processor has parsed every DAG in ``dag_ids``, after ``since`` when given (a
        home used before holds DAGs serialised under another environment until they are re-parsed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            dags = self.call("GET", "/dags", params={"limit": 100})["dags"]
            known = {d["dag_id"] for d in dags
                     if since is None or (d.get("last_parsed_time") and
                                          dt.datetime.fromisoformat(d["last_parsed_time"]) >= since)}
            if set(dag_ids) <= known:
                errors = self.call("GET", "/importErrors")["import_errors"]
                if errors:
                    raise AirflowServiceError(f"DAG import errors: {errors}")
                return
            time.sleep(2)
        raise AirflowServiceError(f"DAGs {sorted(set(dag_ids) - known)} not parsed after {timeout:.0f}s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: dt.datetime | None = None) -> dict:
        """A manual run; without a logical date (the run's days are in ``conf``) it can be repeated."""
        return self.call("POST", f"/dags/{dag_id}/dagRuns",
                          json={"logical_date": logical_date.isoformat() if logical_date else None,
                                "conf": conf or {}})

    def runs(self, dag_id: str = "~", **params) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns",
                          params={"limit": 100, "order_by": "-run_after", **params})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        return sorted(t["task_id"] for t in self.task_instances(dag_id, run_id) if t["state"] == "failed")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 1800, poll: float = 2) -> dict:
        """Until the run finishes; AirflowServiceError naming the failed tasks unless it succeeded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] == "success":
                return run
            if run["state"] == "failed":
                raise AirflowServiceError(f"{dag_id} run {run_id} failed (tasks: "
                                          f"{', '.join(self.failed_tasks(dag_id, run_id)) or 'none'})")
            time.sleep(poll)
        raise AirflowServiceError(f"{dag_id} run {run_id} not finished after {timeout:.0f}s")

    def clear(self, dag_id: str, run_id: str, task_ids: list[str] | None = None, downstream: bool = True) -> list[dict]:
        """Clear tasks of a finished run as an operator does in the UI (all of them without
        ``task_ids``; with their downstream tasks by default): the scheduler runs them again."""
        body = {"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True,
                "include_downstream": downstream, **({"task_ids": task_ids} if task_ids else {})}
        return self.call("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)["task_instances"]

    def asset_events(self, **params) -> list[dict]:
        """Asset events, newest first (filters: ``source_dag_id``, ``source_task_id``, ``asset_id``...)."""
        return self.call("GET", "/assets/events", params={"limit": 100, "order_by": "-timestamp", **params})[
            "asset_events"]

    def announce(self, asset: str, extra: dict) -> dict:
        """Create an event of the Asset named ``asset`` (``POST /assets/events``), as a task's outlet would:
        the DAGs scheduled on it run as Asset-triggered runs."""
        assets = self.call("GET", "/assets", params={"name_pattern": asset, "limit": 100})["assets"]
        ids = [a["id"] for a in assets if a["name"] == asset]
        if not ids:
            raise AirflowServiceError(f"no Asset named {asset!r} is known to the API server")
        return self.call("POST", "/assets/events", json={"asset_id": ids[0], "extra": extra})

    def queued_asset_events(self, dag_id: str) -> list[dict]:
        """The Asset events queued for ``dag_id`` that no run of it has consumed yet."""
        return self.call("GET", f"/dags/{dag_id}/assets/queuedEvents")["queued_events"]

    def runs_of(self, dag_ids: list[str], since: dt.datetime) -> dict[str, list[dict]]:
        """The runs of ``dag_ids`` created after ``since`` by DAG, oldest first (one request)."""
        body = {"dag_ids": list(dag_ids), "run_after_gte": since.isoformat(), "order_by": "run_after",
                "page_limit": 1000}
        page = self.call("POST", "/dags/~/dagRuns/list", json=body)
        if page["total_entries"] > len(page["dag_runs"]):  # [api] maximum_page_limit caps a page
            raise AirflowServiceError(f"{page['total_entries']} runs of {dag_ids} since {since.isoformat()}, "
                                      f"more than one page ({len(page['dag_runs'])})")
        runs = {d: [] for d in dag_ids}
        for run in page["dag_runs"]:
            runs[run["dag_id"]].append(run)
        return runs

    def unpaused(self, dag_ids: list[str]) -> list[str]:
        dags = self.call("GET", "/dags", params={"limit": 100})["dags"]
        return [d["dag_id"] for d in dags if d["dag_id"] in dag_ids and not d["is_paused"]]

    def settle(self, dag_ids: list[str], since: dt.datetime, quiet: float = 8, poll: float = 0.5,
               timeout: float = 1200) -> dict[str, list]:
        """Until every run of ``dag_ids`` created after ``since`` has finished and no Asset event waits to
        start another; the runs by DAG, oldest first.

        Event-driven rather than a fixed quiet time: a task's Asset events, and the queue rows they make
        for the DAGs scheduled on them, are written with the task's success, before its run can finish;
        the scheduler creates the triggered run and deletes those rows in one transaction. So runs seen
        finished at t0, every DAG's queue seen empty at t1 > t0, and the same runs seen again at t2 > t1
        mean no further run can appear: a row written before t1 would be in the queue or, consumed, a new
        run at t2. A paused DAG's rows are left alone (the scheduler starts no run of a paused DAG). A
        queue row waiting for a second Asset (features needs both raw Assets) does not clear: then, as
        before, nothing may change for ``quiet`` seconds."""
        deadline, stable_since, last = time.monotonic() + timeout, None, None
        while time.monotonic() < deadline:
            self.alive()
            runs = self.runs_of(dag_ids, since)
            key = _runs_key(runs)
            finished = all(r["state"] in ("success", "failed") for rs in runs.values() for r in rs)
            if finished and key == last:
                stable_since = stable_since or time.monotonic()
                if not any(self.queued_asset_events(d) for d in self.unpaused(dag_ids)):
                    again = self.runs_of(dag_ids, since)
                    if _runs_key(again) == key:
                        return again
                elif time.monotonic() - stable_since >= quiet:
                    return runs
            else:
                stable_since = None
            last = key
            time.sleep(poll)
        raise AirflowServiceError(f"runs of {dag_ids} since {since.isoformat()} not settled after {timeout:.0f}s")

    def wait_triggered_run(self, dag_id: str, since: dt.datetime, timeout: float = 1800) -> dict:
        """The first run of ``dag_id`` created after ``since`` (an Asset-triggered one), once finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            runs = self.runs(dag_id, run_after_gte=since.isoformat())
            if runs:
                first = min(runs, key=lambda r: r["run_after"])
                return self.wait_run(dag_id, first["dag_run_id"], timeout=max(deadline - time.monotonic(), 1))
            time.sleep(2)
        raise AirflowServiceError(f"no {dag_id} run was triggered after {since.isoformat()} in {timeout:.0f}s")

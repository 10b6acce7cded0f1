"""The ML monitor in a real Airflow API server, looked at with a real (headless) Chromium.

Two ``airflow api-server`` processes on loopback ports share a freshly migrated SQLite metadata DB
and a data root holding four months of warehouse rows and a registered champion:

- one with the simple auth manager in all-admins mode (what ``make airflow`` gives on one machine):
  the plugin listing exposes the view, the page renders in Chromium on its own and inside the Airflow
  UI's frame, and screenshots of both are kept in ``test-artifacts/``;
- one with a password user (how a shared deployment runs): without a session the page redirects to
  the login and the JSON answers 401; a token of that user opens both.

Needs Debian's ``chromium`` (scripts/bootstrap.sh installs it when run as root); without it the test
fails saying so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO
from tools.supervisor import Process, ServiceError, Supervisor

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("BATCHML_CHROMIUM", "/usr/bin/chromium")
PASSWORD = secrets.token_urlsafe(12)  # made per run: no credential lives in the repository


def _chromium() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        pytest.fail(f"Chromium not found at {CHROMIUM} nor on PATH: run scripts/bootstrap.sh as root (it installs "
                    "Debian's chromium), or `apt-get install -y chromium`, or point BATCHML_CHROMIUM at a Chromium "
                    "binary. The browser test does not skip.", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, token: str | None = None, follow: bool = True, cookie: str | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie:  # what the browser sends inside the UI: the session cookie the Airflow login set
        headers["Cookie"] = f"_token={cookie}"
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _token(base: str, username: str | None = None, password: str | None = None) -> str:
    if username is None:  # all-admins mode: a token for the asking
        return json.loads(_get(f"{base}/auth/token")[2])["access_token"]
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def _environment(home: Path, lake: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW__") and k not in ("MLFLOW_TRACKING_URI", "BATCHML_WAREHOUSE_URL",
                                                          "BATCHML_MLFLOW_ARTIFACTS", "BATCHML_TRAINING_CONFIG")}
    (home / "dags").mkdir(exist_ok=True)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),  # nothing to parse
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": "ml-monitor-browser-test-secret-" + "x" * 40,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "BATCHML_DATA_ROOT": str(lake),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    env.update(extra)
    return env


class PortTaken(Exception):
    """Another process answers on the port chosen for a server of this test."""


@contextlib.contextmanager
def _api_server(env: dict[str, str], log: Path, attempts: int = 3):
    """The base URL of an ``airflow api-server`` on a free loopback port, answering; stopped on exit
    (the project's supervisor, tools/supervisor.py: its own process group, TERM then KILL).

    A port found free can be taken before the server binds it; then the server is started again on
    another port rather than this test talking to whoever holds it."""
    for attempt in range(1, attempts + 1):
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with Supervisor(grace=15) as sup:
            proc = sup.start("airflow api-server", ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
                                                    "--workers", "1"],
                             log=log, env=env, banner=f"--- attempt {attempt}: port {port}")
            try:
                sup.wait_until(functools.partial(_answered_by, proc, base), timeout=60, what=f"airflow api-server up on {base}")
            except PortTaken as exc:
                if attempt == attempts:
                    pytest.fail(f"{exc} ({attempts} ports tried)")
                continue
            except ServiceError as exc:
                pytest.fail(str(exc), pytrace=False)
            yield base
            return


def _listener(port: int) -> psutil.Process | None:
    """The process listening on loopback ``port``, if any."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _answered_by(proc: Process, base: str) -> bool:
    """Whether ``proc`` itself answers on ``base``: a 200 from another process on that port (the other
    server of this test, a leftover of an earlier run) must never pass for this one (PortTaken)."""
    port = int(base.rsplit(":", 1)[1])
    try:
        if _get(f"{base}/api/v2/monitor/health")[0] != 200:
            return False
    except OSError:
        return False
    owner = _listener(port)
    if owner is not None and owner.pid in proc.group_pids():
        return True
    who = f"PID {owner.pid} ({' '.join(owner.cmdline())[:200]})" if owner else "an unknown process"
    raise PortTaken(f"port {port} is answered by {who}, not by the api-server started here (PID {proc.pid})")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _chrome(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_ml_monitor_in_airflow_and_chromium(data_root, tmp_path):
    from tests.unit.test_ml_monitor import fill_history, register_champion

    chromium = _chromium()
    started = time.monotonic()
    home = tmp_path / "airflow-home"
    home.mkdir()
    admins = _environment(home, data_root, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True")
    (home / "passwords.json").write_text(json.dumps({"monitor": PASSWORD}))
    users = _environment(home, data_root, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
                         AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="monitor:viewer",
                         AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"))
    # the metadata DB migrates while this process fills the warehouse and registers the champion
    migrate = subprocess.Popen(["airflow", "db", "migrate"], env=admins, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    fill_history(days=120, rows_per_day=100, failed_day=358, performance=True)
    versions = register_champion()
    shadowed = _shadow_beside_the_champion(versions["mlp"], days=60)
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output[-4000:]

    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _look(chromium, tmp_path, admins, users, versions, started, shadowed)
    finally:  # the servers' logs next to the screenshots, for whoever looks at a failure
        for log in tmp_path.glob("api-*.log"):
            shutil.copy(log, ARTIFACTS / f"ml-monitor-{log.name}")


def _shadow_beside_the_champion(version: str, days: int) -> int:
    """The ``shadow`` alias on ``version`` and, for the newest ``days`` scored days, its performance rows
    beside the champion's (role ``shadow``, as monitoring writes them: the champion's rows of the day with
    the shadow's version and figures, a little better on average precision, a little worse on AUC)."""
    from include import registry, warehouse
    from include.drift.performance import CHAMPION_ROLE, SHADOW_ROLE
    from tests.unit.test_ml_monitor import MODEL

    registry.set_alias(MODEL, registry.SHADOW, version)
    table = warehouse.performance_days
    with warehouse.engine().begin() as conn:
        rows = [dict(r) for r in conn.execute(table.select().where(table.c.role == CHAMPION_ROLE)
                                              .order_by(table.c.scored_day.desc()).limit(days)).mappings()]
        shifts = {"average_precision": 0.04, "auc_roc": -0.01, "card_precision": 0.01, "precision_at_threshold": 0.03,
                  "recall_at_threshold": -0.02}
        for i, r in enumerate(rows):
            wobble = 0.01 * ((i % 5) - 2)
            for k, d in shifts.items():
                for key in (k, f"est_{k}"):
                    if r.get(key) is not None:
                        r[key] = min(1.0, r[key] + d + wobble)
            reference = json.loads(r["reference_json"])
            r.update(role=SHADOW_ROLE, model_version=version, threshold=0.33, alerts=None,
                     reference_json=json.dumps({**reference, "average_precision": 0.6513}))
            r.pop("id", None)
        conn.execute(table.insert(), rows)
    return len(rows)


def _look(chromium: str, tmp_path: Path, admins: dict, users: dict, versions: dict, started: float,
          shadowed: int) -> None:
    from tests.unit.test_ml_monitor import END, MONITORED

    with (_api_server(admins, tmp_path / "api-admins.log") as base,
          _api_server(users, tmp_path / "api-users.log") as base_users):
        up = time.monotonic() - started

        # the UI's plugin listing exposes the app and the navigation entry (authenticated endpoint)
        assert _get(f"{base_users}/api/v2/plugins")[0] == 401
        plugins = json.loads(_get(f"{base}/api/v2/plugins", token=_token(base))[2])["plugins"]
        (ours,) = [p for p in plugins if p["name"] == "batchml_ml_monitor"]
        assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/ml-monitor"]
        (view,) = ours["external_views"]
        assert (view["name"], view["href"], view["destination"], view["url_route"]) == (
            "ML monitor", "/ml-monitor/", "nav", "ml-monitor")
        import_errors = json.loads(_get(f"{base}/api/v2/plugins/importErrors", token=_token(base))[2])
        assert not [e for e in import_errors["import_errors"] if "ml_monitor" in e["source"]], import_errors

        # with password users, the plugin app checks the Airflow session itself
        status, headers, _ = _get(f"{base_users}/ml-monitor/?days=30", follow=False)
        assert status == 307 and headers["location"].startswith("/auth/login?next="), (status, headers)
        assert _get(f"{base_users}/ml-monitor/api/summary")[0] == 401
        assert _get(f"{base_users}/ml-monitor/api/summary", token="bad")[0] == 403  # not a JWT
        viewer = _token(base_users, "monitor", PASSWORD)
        status, _, body = _get(f"{base_users}/ml-monitor/api/summary", token=viewer)
        assert status == 200
        summary = json.loads(body)
        assert summary["registry"]["versions"]["champion"]["version"] == versions["xgboost"]
        assert summary["window"]["end"] == END.isoformat() and len(summary["drift"]["rows"]) == 90 * MONITORED
        assert _get(f"{base_users}/ml-monitor/", token=viewer)[0] == 200
        status, _, body = _get(f"{base_users}/ml-monitor/?days=30", cookie=viewer, follow=False)
        assert status == 200 and b'id="champion"' in body

        # Chromium: the page itself, then the Airflow UI with the page in its frame
        profile = tmp_path / "chromium-profile"
        page_url = f"{base}/ml-monitor/"
        dom = _chrome(chromium, profile, "--dump-dom", page_url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        assert f'<div class="card champion" id="champion" data-version="{versions["xgboost"]}">' in html
        assert f"version {versions['xgboost']}" in html and "0.6442" in html
        assert html.count('data-column="tx_amount"') == 90 and 'class="grid drift-heatmap"' in html
        assert html.count('data-success="false"') == 1 and 'class="grid score-histogram"' in html
        # live performance: a chart per figure, realised solid, the last 7 days' estimates dashed
        assert html.count('<svg class="live"') == 6 and 'class="alert-mark"' in html
        # the last 7 scored days wait for their labels (the champion's and the shadow's rows: days counted once)
        assert 'class="estimate"' in html and 'stroke-dasharray="4 3"' in html and " 7 still waiting" in html
        # the shadow challenger's line beside the champion's on every chart, the legend naming its alias
        assert html.count('class="realised" data-role="shadow"') == 6, "a shadow line per live chart"
        assert html.count('class="estimate" data-role="shadow"') >= 4
        assert f'id="role-shadow" data-versions="{versions["mlp"]}"' in html and "alias <code>shadow</code>" in html
        assert shadowed == 60

        shots = {"page": (ARTIFACTS / "ml-monitor.png", page_url, "1400,1000"),
                 # the whole page down to the live performance table: the champion's and the shadow's lines
                 "full": (ARTIFACTS / "ml-monitor-full.png", page_url, "1400,2300"),
                 "ui": (ARTIFACTS / "ml-monitor-in-airflow-ui.png", f"{base}/plugin/ml-monitor", "1400,1000")}
        for path, url, size in shots.values():
            path.unlink(missing_ok=True)
            shot = _chrome(chromium, profile, f"--screenshot={path}", f"--window-size={size}",
                           "--virtual-time-budget=8000", url)
            assert shot.returncode == 0 and path.exists(), shot.stderr[-2000:]
            width, height = _png_size(path)
            assert (width, height) == tuple(int(v) for v in size.split(",")), (path, width, height)
            assert path.stat().st_size > 40_000, f"{path} is suspiciously small: an empty page?"

        ui = _chrome(chromium, profile, "--virtual-time-budget=8000", "--dump-dom", f"{base}/plugin/ml-monitor")
        assert '<iframe' in ui.stdout and 'src="/ml-monitor/"' in ui.stdout and 'title="ML monitor"' in ui.stdout

    took = time.monotonic() - started
    print(f"\nAPI servers up after {up:.1f} s, whole test {took:.1f} s; screenshots: "
          + ", ".join(str(p) for p, _, _ in shots.values()))
    assert took < 150, f"the browser test took {took:.0f} s"


def test_chromium_missing_fails_clearly(monkeypatch):
    """No silent skip: a machine without Chromium fails, naming the fix."""
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="run scripts/bootstrap.sh"):
        _chromium()

"""The "ML monitor" view of the Airflow UI: a FastAPI app the Airflow API server mounts at
``/ml-monitor``, and an external view that puts it in the UI's navigation (rendered inside the UI).

Routes (the page and its data come from :mod:`include.ml_monitor`: its data, render and static parts):

- ``GET /ml-monitor/?days=90&end=YYYY-MM-DD&model=NAME``: the HTML page;
- ``GET /ml-monitor/api/summary`` with the same parameters: the same data as JSON.

Airflow does not authenticate plugin apps: this one checks the caller itself, with the Airflow
session the UI already holds (the ``_token`` cookie) or an ``Authorization: Bearer`` token, and asks
the configured auth manager whether that user may read the website. A browser without a session is
sent to the Airflow login page and back; an API client without a token gets 401.

Every response, a 500 included, carries ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy: the page's own
(:data:`include.ml_monitor.CSP`: no script, its own stylesheet only, framed by the Airflow UI's origin
only), everything else ``default-src 'none'``. Parameters are checked before anything is read: a bad
one is a 422 that names it.

Plugins are imported by every Airflow component, so this module imports FastAPI only; the library,
SQLAlchemy, MLflow and Airflow's API-server modules are imported when a request comes.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

URL_PREFIX = "/ml-monitor"
MAX_DAYS = 731  # include.ml_monitor.data.MAX_DAYS (not imported here: it would load the library at parse time)
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9999, 12, 31)  # the ``end`` a window can have
MAX_MODEL_NAME = 200  # warehouse model_name columns are String(200)
# responses other than the page (JSON, errors, redirects) load nothing and are framed by nobody
STRICT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class LoginRequired(Exception):
    """A browser asked for the page without an Airflow session."""


async def require_viewer(request: Request) -> Any:
    """The authenticated Airflow user, if the auth manager lets them read the website (AccessView.WEBSITE,
    the permission every UI user has); otherwise 401 / 403, or a redirect to the login page for the HTML page."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = (HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
              if scheme.lower() == "bearer" and token.strip() else None)
    try:
        user = await get_user(request, None, bearer)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and not request.url.path.rstrip("/").endswith("/api/summary"):
            raise LoginRequired() from None
        raise
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this Airflow user may not read the ML monitor")
    return user


app = FastAPI(title="ML monitor", description=__doc__, docs_url=None, redoc_url=None)

# what every response carries (a route may set its own CSP: the page allows its <style> by hash)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": STRICT_CSP,
                    "Referrer-Policy": "same-origin"}


@app.middleware("http")
async def _security_headers(request: Request, call_next: Any) -> Any:
    """nosniff, and a CSP where the route set none (every response of the app, errors included)."""
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@app.exception_handler(Exception)
async def _server_error(request: Request, exc: Exception) -> PlainTextResponse:
    """A 500 that carries the headers too: an unhandled error is answered outside the middleware above
    (by Starlette's outermost error handler), so it sets them itself. The message is not echoed."""
    import logging

    logging.getLogger(__name__).error("ML monitor: %s %s failed", request.method, request.url.path, exc_info=exc)
    return PlainTextResponse("Internal Server Error: the ML monitor could not answer; see the API server's log.",
                             status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
                             headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@app.exception_handler(LoginRequired)
async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)),
                            status_code=status.HTTP_307_TEMPORARY_REDIRECT)


def _params(days: int, end: dt.date | None, model: str | None) -> dict[str, Any]:
    return {"days": days, "end": end, "model_name": model or None}


Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="how many days the charts cover")]
End = Annotated[dt.date | None, Query(ge=FIRST_DAY, le=LAST_DAY,
                                       description="the last day shown (default: the newest day with data)")]
# no control characters (C0, DEL, C1) nor invisible format characters (bidi overrides, zero-width
# spaces: a link to "fraud-detector\u202e" would show an empty page under the real model's name), no line
# or paragraph separators, no unassigned or private-use code points (pydantic's Rust regex: \p{C})
Model = Annotated[str | None, Query(max_length=MAX_MODEL_NAME, pattern=r"^[^\p{C}\p{Zl}\p{Zp}]*$",
                                    description="registered model (default: the training configuration's); "
                                                "no control, invisible formatting or separator characters")]
Viewer = Annotated[Any, Depends(require_viewer)]


@app.get("/", response_class=HTMLResponse, summary="The ML monitor page")
async def page(request: Request, _user: Viewer, days: Days = 90, end: End = None, model: Model = None) -> HTMLResponse:
    from include import ml_monitor

    data = await run_in_threadpool(ml_monitor.gather, **_params(days, end, model))
    base = request.scope.get("root_path", "").rstrip("/") or URL_PREFIX
    return HTMLResponse(ml_monitor.render_html(data, base=base),
                        headers={"Cache-Control": "no-store", "Content-Security-Policy": ml_monitor.CSP,
                                 "X-Frame-Options": "SAMEORIGIN"})


@app.get("/api/summary", summary="The page's data as JSON")
async def summary(_user: Viewer, days: Days = 90, end: End = None, model: Model = None) -> JSONResponse:
    from include import ml_monitor

    data = await run_in_threadpool(ml_monitor.gather, **_params(days, end, model))
    return JSONResponse(ml_monitor.as_json(data), headers={"Cache-Control": "no-store"})


# A 2x2 heatmap as the navigation icon, inline: the UI must not fetch anything from elsewhere.
ICON = ("data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>"
        "<rect x='2' y='2' width='9' height='9' rx='1.5' fill='%2343a047'/>"
        "<rect x='13' y='2' width='9' height='9' rx='1.5' fill='%23fb8c00'/>"
        "<rect x='2' y='13' width='9' height='9' rx='1.5' fill='%2343a047'/>"
        "<rect x='13' y='13' width='9' height='9' rx='1.5' fill='%23e53935'/></svg>")


class MLMonitorPlugin(AirflowPlugin):
    name = "batchml_ml_monitor"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "ML monitor"}]
    # url_route: the UI shows the page inside its own frame at /plugin/ml-monitor (without it, a plain
    # link); nav_top_level: its own button in the navigation bar rather than an entry of a menu.
    external_views = [{
        "name": "ML monitor", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "ml-monitor",
        "nav_top_level": True, "icon": ICON,
    }]

"""The web console: server-rendered pages under ``/console`` (decision 0019).

A FastAPI application of its own, mounted by :func:`fleetgate.api.app.create_app`: it
shares the API's context and services (the same objects: the pages call the services in
the process, never the REST API over HTTP), and has its own error pages (HTML, not
Cumulocity's JSON) and its own login (a session cookie, :mod:`.session`). Its
templates, stylesheet and script ship in the package: nothing is loaded from elsewhere.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetgate.api.auth import ApiContext
from fleetgate.api.console import (
    bulk,
    devices,
    login,
    operations,
    repositories,
    requests,
    stream,
    traces,
    trust,
)
from fleetgate.api.console.session import ROOT, LoginRequired
from fleetgate.api.console.views import STATIC, render
from fleetgate.api.services import ApiServices
from fleetgate.domain.errors import FleetgateError

_SECURITY_HEADERS = {
    # Everything the console loads is its own: no inline script, no other origin.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_console(ctx: ApiContext, services: ApiServices) -> FastAPI:
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.context = ctx
    console.state.services = services
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    # traces before devices: its POST …/trace is not one of a device's switches.
    for module in (login, operations, stream, bulk, traces, devices, requests, trust, repositories):
        console.include_router(module.router)
    console.add_exception_handler(LoginRequired, _login_required)
    console.add_exception_handler(FleetgateError, _refused)
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.add_exception_handler(RequestValidationError, _bad_parameter)

    @console.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return console


async def _login_required(request: Request, _: Exception) -> Response:
    if request.url.path.endswith("/stream"):
        return Response("login required", status_code=401)
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{ROOT}/login?next={quote(back)}", status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FleetgateError)
    return render(
        request, "error.html", None, status_code=exc.status, status=exc.status, message=exc.message
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return render(
        request,
        "error.html",
        None,
        status_code=exc.status_code,
        status=exc.status_code,
        message=str(exc.detail),
    )


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{err.get('loc', ('?',))[-1]}: {err.get('msg', 'invalid')}" for err in exc.errors()
    )
    return render(request, "error.html", None, status_code=422, status=422, message=problems)

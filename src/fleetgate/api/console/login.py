"""Logging in and out of the console, and its home page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleetgate.api.auth import context
from fleetgate.api.console.session import (
    COOKIE,
    ROOT,
    Viewer,
    check_origin,
    cookie_options,
    key,
    new_session,
    viewer,
)
from fleetgate.api.console.views import render
from fleetgate.api.services import devices
from fleetgate.domain import sessions
from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.users import Login

router = APIRouter()


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a console page only (never another site)."""
    if value and value.startswith(ROOT + "/") and "//" not in value and "\\" not in value:
        return value
    return f"{ROOT}/operations"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", None, next=_safe_next(next))


@router.post("/login")
async def log_in(request: Request) -> Response:
    check_origin(request)
    form = await request.form()
    tenant, user, password = (str(form.get(k) or "") for k in ("tenant", "username", "password"))
    target = _safe_next(str(form.get("next") or ""))
    try:
        if not tenant or not user or not password:
            raise AuthenticationFailed("Give the tenant, the user name and the password")
        principal = await context(request).authenticator.authenticate(
            Login(tenant.strip(), user.strip(), password)
        )
    except AuthenticationFailed as exc:
        message = exc.message.removeprefix("Invalid credentials! : ")
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            next=target,
            error=message,
            tenant=tenant,
            username=user,
        )
    response = RedirectResponse(target, status_code=303)
    token = sessions.seal(key(request), new_session(principal))
    response.set_cookie(value=token, max_age=sessions.MAX_AGE, **cookie_options(request))
    return response


@router.post("/logout")
async def log_out(request: Request) -> Response:
    check_origin(request)
    response = RedirectResponse(f"{ROOT}/login", status_code=303)
    response.delete_cookie(COOKIE, path=ROOT)
    return response


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    counts = None
    if who.sees("inventory"):
        counts = await devices(request).lifecycle_counts(who.tenant)
    return render(request, "home.html", who, counts=counts)

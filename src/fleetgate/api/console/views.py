"""Rendering console pages: the Jinja2 templates shipped in the package, a few filters,
and the one-shot notice ("flash") a form's redirect carries to the next page."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fleetgate.api.console.session import ROOT, Viewer
from fleetgate.domain.errors import Conflict, NotFound, TooLarge, ValidationFailed

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_FLASH = "fleetgate_console_notice"


def _when(value: datetime | None) -> str:
    """UTC, to the second: what an operator compares with logs."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    who: Viewer | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page, with its viewer, the console's root and the notice left for it."""
    notice = request.cookies.get(_FLASH)
    kind, _, text = unquote(notice).partition("|") if notice else ("", "", "")
    response = templates.TemplateResponse(
        request,
        name,
        {
            "who": who,
            "root": ROOT,
            "notice": {"error": kind == "error", "text": text} if text else None,
            "now": datetime.now(UTC),
            **values,
        },
        status_code=status_code,
    )
    if notice:
        response.delete_cookie(_FLASH, path=ROOT)
    return response


def fragment(name: str, **values: Any) -> str:
    """A part of a page (a table row…) as HTML, for the live stream."""
    return templates.get_template(name).render(root=ROOT, **values)


def redirect(path: str, notice: str | None = None, *, error: bool = False) -> Response:
    """After a form: see the page at ``path`` (303), with ``notice`` shown once on it."""
    response = RedirectResponse(f"{ROOT}{path}", status_code=303)
    if notice:
        value = quote(f"{'error' if error else 'ok'}|{notice[:500]}")
        response.set_cookie(_FLASH, value, path=ROOT, httponly=True, samesite="strict")
    return response


async def attempt(back: str, done: str, action: Awaitable[object]) -> Response:
    """Carry out a form's ``action`` and go back to ``back``, saying ``done`` — or, when
    the service refuses the input, why (the REST API's 4xx message, shown on the page)."""
    try:
        await action
    except (ValidationFailed, Conflict, NotFound, TooLarge) as exc:
        return redirect(back, exc.message, error=True)
    return redirect(back, done)

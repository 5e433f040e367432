"""Who is looking at a console page: the session cookie read and checked on every request,
the roles that decide what the page offers, and the CSRF check of every form.

A watcher sees, an admin acts: a page shows its forms only to a viewer who holds the
admin role of that area (:meth:`Viewer.can`), and every POST checks that role again on
the server (:func:`acting`), with the CSRF token, whatever the page showed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from fleetgate.api.auth import context
from fleetgate.api.services import url_secret
from fleetgate.domain import sessions
from fleetgate.domain.errors import AccessDenied, AuthenticationFailed
from fleetgate.domain.sessions import Session
from fleetgate.domain.users import Principal, Role

COOKIE = "fleetgate_console"
#: The console lives under this path, and so do its cookies.
ROOT = "/console"


class LoginRequired(Exception):
    """No valid session: the console answers with its login page (a redirect)."""


_DEVICE_CONTROL = frozenset({Role.DEVICE_CONTROL_READ, Role.DEVICE_CONTROL_ADMIN})
_TENANT_ADMINS = frozenset({Role.TENANT_ADMIN, Role.TENANT_MANAGEMENT_ADMIN})

#: Each area of the console: the roles that see it, and those that act in it (the REST
#: API's roles for the same resources).
AREAS: dict[str, tuple[frozenset[Role], frozenset[Role]]] = {
    "operations": (_DEVICE_CONTROL, frozenset({Role.DEVICE_CONTROL_ADMIN})),
    "requests": (_DEVICE_CONTROL, frozenset({Role.DEVICE_CONTROL_ADMIN})),
    "bulk": (
        frozenset({Role.BULK_OPERATION_READ, Role.BULK_OPERATION_ADMIN}),
        frozenset({Role.BULK_OPERATION_ADMIN}),
    ),
    "inventory": (
        frozenset({Role.INVENTORY_READ, Role.INVENTORY_ADMIN}),
        frozenset({Role.INVENTORY_ADMIN}),
    ),
    "trust": (_TENANT_ADMINS, _TENANT_ADMINS),
}


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    session: Session
    csrf: str

    @property
    def tenant(self) -> str:
        return self.principal.tenant.id

    @property
    def name(self) -> str:
        return self.principal.user.username

    def sees(self, area: str) -> bool:
        readers, _ = AREAS[area]
        return any(self.principal.has(r) for r in readers)

    def can(self, area: str) -> bool:
        """Whether the viewer may act in ``area`` (the page shows its forms)."""
        return any(self.principal.has(r) for r in AREAS[area][1])


def key(request: Request) -> bytes:
    return sessions.session_key(url_secret(request))


async def viewer(request: Request) -> Viewer:
    """The dependency of every console page: the logged-in viewer, or :class:`LoginRequired`."""
    session = sessions.unseal(key(request), request.cookies.get(COOKIE), time.time())
    if session is None:
        raise LoginRequired()
    try:
        principal = await context(request).authenticator.resume(
            session.tenant_id, session.username, session.stamp
        )
    except AuthenticationFailed:
        raise LoginRequired() from None
    return Viewer(principal, session, sessions.csrf_token(key(request), session))


def require_sight(who: Viewer, area: str) -> None:
    if not who.sees(area):
        raise AccessDenied(f"Your roles do not include reading {area}")


async def acting(request: Request, who: Viewer, area: str) -> FormData:
    """The form of a POST by ``who`` in ``area``, once its origin, its CSRF token and the
    viewer's admin role are checked (:class:`AccessDenied` otherwise)."""
    check_origin(request)
    form = await request.form()
    if not sessions.csrf_matches(key(request), who.session, form.get("csrf")):
        raise AccessDenied("The form has expired or did not come from this console; reload it")
    if not who.can(area):
        raise AccessDenied(f"Your roles do not include changing {area}")
    return form


def check_origin(request: Request) -> None:
    """A POST whose ``Origin`` (sent by every current browser) is another site's is
    refused before anything else; SameSite=Strict cookies and the CSRF token are the
    other two locks."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("host", "")
    if origin.partition("://")[2] != host:
        raise AccessDenied("The form was posted from another site")


def new_session(principal: Principal) -> Session:
    return Session(
        tenant_id=principal.tenant.id,
        username=principal.user.username,
        stamp=sessions.password_stamp(principal.user.password_hash),
        issued=int(time.time()),
        nonce=secrets.token_urlsafe(16),
    )


def cookie_options(request: Request) -> dict[str, Any]:
    return {
        "key": COOKIE,
        "path": ROOT,
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
    }

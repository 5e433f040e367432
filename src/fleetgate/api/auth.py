"""HTTP Basic authentication (``tenant/username:password``) and role gates."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from fleetgate.domain.errors import AccessDenied
from fleetgate.domain.users import Principal, Role, parse_basic_authorization
from fleetgate.services.auth import Authenticator


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the routes need, put on ``app.state.context`` by the composition root."""

    authenticator: Authenticator
    base_url: str
    #: ``GET /metrics``: "management" (a user of the management tenant with
    #: ROLE_TENANT_MANAGEMENT_READ or _ADMIN) or "none" (no credentials asked).
    metrics_auth: str = "management"


def context(request: Request) -> ApiContext:
    ctx = request.app.state.context
    assert isinstance(ctx, ApiContext)
    return ctx


class RoleGate:
    """A dependency: the caller must authenticate and hold at least one of ``roles``.
    The roles are kept on it, so that the OpenAPI document can name them
    (fleetgate.api.openapi)."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:
        login = parse_basic_authorization(request.headers.get("authorization"))
        principal = await context(request).authenticator.authenticate(login)
        if not any(principal.has(role) for role in self.roles):
            raise AccessDenied("Access is denied")
        return principal


def require(*any_of: Role) -> RoleGate:
    """A dependency: the caller must authenticate and hold at least one of ``any_of``."""
    return RoleGate(any_of)

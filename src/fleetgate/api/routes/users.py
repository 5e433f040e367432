"""``/user/currentUser``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import devices
from fleetgate.domain.errors import AccessDenied, ValidationFailed
from fleetgate.domain.users import Principal, Role, User

router = APIRouter()


def user_body(user: User, base: str, self_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": user.username,
        "userName": user.username,
        "self": self_url,
        "enabled": user.enabled,
        "shouldResetPassword": False,
        "lastPasswordChange": user.last_password_change.isoformat(timespec="milliseconds"),
        "effectiveRoles": [
            {"id": role.value, "name": role.value, "self": f"{base}/user/roles/{role.value}"}
            for role in sorted(user.roles)
        ],
        "devicePermissions": {},
    }
    for key, value in (
        ("email", user.email),
        ("firstName", user.first_name),
        ("lastName", user.last_name),
    ):
        if value is not None:
            body[key] = value
    return body


@router.get("/user/currentUser")
async def current_user(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.USER_MANAGEMENT_OWN_READ, Role.DEVICE))],
) -> JSONResponse:
    base = context(request).base_url
    body = user_body(principal.user, base, f"{base}/user/currentUser")
    return media.c8y_json(body, media.CURRENT_USER)


_USERS_READ = require(Role.USER_MANAGEMENT_READ, Role.USER_MANAGEMENT_ADMIN)
_USERS_ADMIN = require(Role.USER_MANAGEMENT_ADMIN)


def _own_tenant(principal: Principal, tenant_id: str) -> str:
    """Users of another tenant are never visible (403, whether that tenant exists or not)."""
    if tenant_id != principal.tenant.id:
        raise AccessDenied("Access is denied")
    return tenant_id


def _user_url(base: str, tenant_id: str, username: str) -> str:
    return f"{base}/user/{tenant_id}/users/{username}"


@router.get("/user/{tenant_id}/users")
async def list_users(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(_USERS_READ)],
    page: Annotated[Page, Depends(paging)],
    only_devices: Annotated[bool, Query(alias="onlyDevices")] = False,
) -> JSONResponse:
    """Users of the tenant; ``onlyDevices=true`` lists the device users ("device credentials")."""
    _own_tenant(principal, tenant_id)
    users, total = await devices(request).list_users(
        tenant_id,
        only_devices=only_devices,
        offset=page.offset,
        limit=page.size,
        count=page.with_total_pages,
    )
    base = context(request).base_url
    items = [user_body(u, base, _user_url(base, tenant_id, u.username)) for u in users]
    body = page.collection(request, base, "users", items, total)
    return media.c8y_json(body, media.USER_COLLECTION)


@router.get("/user/{tenant_id}/users/{username}")
async def get_user(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_READ)],
) -> JSONResponse:
    _own_tenant(principal, tenant_id)
    user = await devices(request).get_user(tenant_id, username)
    base = context(request).base_url
    return media.c8y_json(user_body(user, base, _user_url(base, tenant_id, username)), media.USER)


@router.put(
    "/user/{tenant_id}/users/{username}", openapi_extra=json_body(schemas.USER_UPDATE, media.USER)
)
async def update_user(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> JSONResponse:
    """Enable or disable a user; for a device user this is live in the broker at once."""
    _own_tenant(principal, tenant_id)
    body = await json_object(request)
    unsupported = sorted(set(body) - {"enabled", "id", "userName", "self"})
    if unsupported:
        raise ValidationFailed(f"cannot change {', '.join(unsupported)} here; only enabled")
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ValidationFailed("enabled must be true or false")
    if username == principal.user.username and not enabled:
        raise ValidationFailed("you cannot disable your own user")
    user = await devices(request).set_user_enabled(tenant_id, username, enabled)
    base = context(request).base_url
    return media.c8y_json(user_body(user, base, _user_url(base, tenant_id, username)), media.USER)


@router.delete("/user/{tenant_id}/users/{username}", status_code=204)
async def delete_user(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> Response:
    _own_tenant(principal, tenant_id)
    if username == principal.user.username:
        raise ValidationFailed("you cannot delete your own user")
    await devices(request).delete_user(tenant_id, username)
    return Response(status_code=204)

"""``/user/currentUser``, the tenant's users (operators and device users), the global
roles and the role references that give them to operators (Cumulocity's user API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import devices, operators, services_of
from fleetgate.domain.errors import AccessDenied, NotFound, ValidationFailed
from fleetgate.domain.operators import (
    is_device_user,
    read_changes,
    read_new_operator,
)
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
    locked_until = user.failures.locked_until
    if locked_until is not None and user.failures.locked(datetime.now(UTC)):
        # fleetgate's own: until when failed logins lock the user (PUT enabled: true lifts it)
        body["fleetgate_lockedUntil"] = locked_until.isoformat(timespec="milliseconds")
    for key, value in (
        ("email", user.email),
        ("firstName", user.first_name),
        ("lastName", user.last_name),
    ):
        if value is not None:
            body[key] = value
    return body


@router.get("/user/currentUser", **answers(200, media.CURRENT_USER))
async def current_user(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.USER_MANAGEMENT_OWN_READ, Role.DEVICE))],
) -> JSONResponse:
    base = context(request).base_url
    body = user_body(principal.user, base, f"{base}/user/currentUser")
    return media.c8y_json(body, media.CURRENT_USER)


_USERS_READ = require(Role.USER_MANAGEMENT_READ, Role.USER_MANAGEMENT_ADMIN, Role.TENANT_ADMIN)
_USERS_ADMIN = require(Role.USER_MANAGEMENT_ADMIN, Role.TENANT_ADMIN)


def _own_tenant(principal: Principal, tenant_id: str) -> str:
    """Users of another tenant are never visible (403, whether that tenant exists or not)."""
    if tenant_id != principal.tenant.id:
        raise AccessDenied("Access is denied")
    return tenant_id


def _user_url(base: str, tenant_id: str, username: str) -> str:
    return f"{base}/user/{tenant_id}/users/{username}"


def _role_body(role: Role, base: str) -> dict[str, Any]:
    return {"id": role.value, "name": role.value, "self": f"{base}/user/roles/{role.value}"}


def _role_reference(role: Role, base: str, user_url: str) -> dict[str, Any]:
    return {"role": _role_body(role, base), "self": f"{user_url}/roles/{role.value}"}


def _role_named(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise NotFound(f"Role {name} not found", code="user/Not Found") from None


@router.get("/user/roles", **answers(200, media.ROLE_COLLECTION))
async def list_roles(
    request: Request,
    principal: Annotated[Principal, Depends(_USERS_READ)],
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    """The global roles there are (Cumulocity's names)."""
    base = context(request).base_url
    roles = sorted(Role)
    items = [_role_body(r, base) for r in roles[page.offset : page.offset + page.size]]
    body = page.collection(request, base, "roles", items, len(roles))
    return media.c8y_json(body, media.ROLE_COLLECTION)


@router.get("/user/roles/{name}", **answers(200, media.ROLE, 404))
async def get_role(
    request: Request, name: str, principal: Annotated[Principal, Depends(_USERS_READ)]
) -> JSONResponse:
    return media.c8y_json(_role_body(_role_named(name), context(request).base_url), media.ROLE)


@router.get("/user/{tenant_id}/users", **answers(200, media.USER_COLLECTION))
async def list_users(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(_USERS_READ)],
    page: Annotated[Page, Depends(paging)],
    only_devices: Annotated[bool, Query(alias="onlyDevices")] = False,
) -> JSONResponse:
    """The tenant's operators; ``onlyDevices=true`` lists the device users instead
    ("device credentials", ``device_<id>``)."""
    _own_tenant(principal, tenant_id)
    users, total = await devices(request).list_users(
        tenant_id,
        only_devices=only_devices,
        offset=page.offset,
        limit=page.size,
        count=page.counts,
    )
    base = context(request).base_url
    items = [user_body(u, base, _user_url(base, tenant_id, u.username)) for u in users]
    body = page.collection(request, base, "users", items, total)
    return media.c8y_json(body, media.USER_COLLECTION)


@router.post(
    "/user/{tenant_id}/users",
    openapi_extra=json_body(schemas.USER_CREATE, media.USER),
    **answers(201, media.USER, 409),
)
async def create_user(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> JSONResponse:
    """A new operator, without roles: assign them with ``POST …/users/{userName}/roles``."""
    _own_tenant(principal, tenant_id)
    new = read_new_operator(await json_object(request))
    user = await operators(request).create(tenant_id, new)
    base = context(request).base_url
    url = _user_url(base, tenant_id, user.username)
    response = media.c8y_json(user_body(user, base, url), media.USER, status_code=201)
    response.headers["Location"] = url
    return response


@router.get("/user/{tenant_id}/users/{username}", **answers(200, media.USER, 404))
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
    "/user/{tenant_id}/users/{username}",
    openapi_extra=json_body(schemas.USER_UPDATE, media.USER),
    **answers(200, media.USER, 404),
)
async def update_user(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> JSONResponse:
    """Change an operator (``enabled``, ``password``, ``email``, ``firstName``,
    ``lastName``; ``enabled: true`` also unlocks a user locked after failed logins), or
    enable/disable a device user, which is live in the broker at once."""
    _own_tenant(principal, tenant_id)
    body = await json_object(request)
    user = await devices(request).get_user(tenant_id, username)
    changes = read_changes(body, user)
    if username == principal.user.username and changes.enabled is False:
        raise ValidationFailed("you cannot disable your own user")
    if is_device_user(user):
        assert changes.enabled is not None
        # A device's user: its device follows (decision 0012), and the user with it.
        switch = services_of(request.app).enablement
        followed = (
            await switch.set_device_user_enabled(tenant_id, username, changes.enabled)
            if switch is not None
            else None
        )
        user = followed or await devices(request).set_user_enabled(
            tenant_id, username, changes.enabled
        )
        if changes.enabled:
            user = await operators(request).unlock(tenant_id, username)
    else:
        user = await operators(request).update(
            tenant_id, username, changes, caller=principal.user.username
        )
    base = context(request).base_url
    return media.c8y_json(user_body(user, base, _user_url(base, tenant_id, username)), media.USER)


@router.delete("/user/{tenant_id}/users/{username}", **answers(204, None, 404))
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


@router.get(
    "/user/{tenant_id}/users/{username}/roles", **answers(200, media.ROLE_REFERENCE_COLLECTION, 404)
)
async def list_user_roles(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_READ)],
) -> JSONResponse:
    """The user's global roles as role references."""
    _own_tenant(principal, tenant_id)
    roles = await operators(request).roles(tenant_id, username)
    base = context(request).base_url
    url = _user_url(base, tenant_id, username)
    body = {
        "self": f"{url}/roles",
        "references": [_role_reference(r, base, url) for r in sorted(roles)],
    }
    return media.c8y_json(body, media.ROLE_REFERENCE_COLLECTION)


def _role_of_reference(body: dict[str, Any]) -> Role:
    """The role a reference body names: ``{"role": {"self": "…/user/roles/ROLE_X"}}``
    (what Cumulocity's clients send) or ``{"role": {"id": "ROLE_X"}}``."""
    role = body.get("role")
    if not isinstance(role, dict):
        raise ValidationFailed("role must be an object with the role's self or id")
    name = role.get("id")
    if name is None and isinstance(role.get("self"), str):
        name = role["self"].rstrip("/").rpartition("/")[2]
    if not isinstance(name, str) or not name:
        raise ValidationFailed("role must be an object with the role's self or id")
    try:
        return Role(name)
    except ValueError:
        raise ValidationFailed(f"role: no such role {name!r}") from None


@router.post(
    "/user/{tenant_id}/users/{username}/roles",
    openapi_extra=json_body(schemas.ROLE_REFERENCE, media.ROLE_REFERENCE),
    **answers(201, media.ROLE_REFERENCE, 404),
)
async def assign_role(
    request: Request,
    tenant_id: str,
    username: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> JSONResponse:
    """Give the user a global role (idempotent)."""
    _own_tenant(principal, tenant_id)
    role = _role_of_reference(await json_object(request))
    await operators(request).assign_role(tenant_id, username, role)
    base = context(request).base_url
    body = _role_reference(role, base, _user_url(base, tenant_id, username))
    return media.c8y_json(body, media.ROLE_REFERENCE, status_code=201)


@router.delete("/user/{tenant_id}/users/{username}/roles/{role_id}", **answers(204, None, 404))
async def unassign_role(
    request: Request,
    tenant_id: str,
    username: str,
    role_id: str,
    principal: Annotated[Principal, Depends(_USERS_ADMIN)],
) -> Response:
    """Take a global role away; nobody can take away their own last user-administration
    role (``ROLE_USER_MANAGEMENT_ADMIN`` / ``ROLE_TENANT_ADMIN``)."""
    _own_tenant(principal, tenant_id)
    await operators(request).unassign_role(
        tenant_id, username, _role_named(role_id), caller=principal.user.username
    )
    return Response(status_code=204)

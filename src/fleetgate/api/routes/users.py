"""``/user/currentUser``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fleetgate.api import media
from fleetgate.api.auth import context, require
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

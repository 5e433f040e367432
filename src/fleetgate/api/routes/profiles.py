"""Device profiles beyond plain managed objects: a duplicate in one request (fleetgate's;
Cumulocity's UI reads the profile and POSTs a new one, which works here as well).
Profiles themselves are ``/inventory/managedObjects`` of type ``c8y_Profile``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fleetgate.api import media
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.routes.inventory import object_body
from fleetgate.api.schemas import IdPath
from fleetgate.api.services import profiles
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_COPY_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


@router.post(
    "/inventory/deviceProfiles/{profile_id}/copies",
    openapi_extra={
        "requestBody": {"required": False, "content": {"application/json": {"schema": _COPY_BODY}}}
    },
    **answers(201, media.MANAGED_OBJECT, 404),
)
async def duplicate_profile(
    request: Request, profile_id: IdPath, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    """201 and the new profile: same content and device type, named ``name`` (optional
    body ``{"name": …}``) or "Copy of <name>"."""
    name = None
    if await request.body():
        body = await json_object(request)
        unknown = sorted(set(body) - {"name"})
        if unknown:
            raise ValidationFailed(f"a copy takes only name, not {', '.join(unknown)}")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise ValidationFailed("name must be a string")
    copy = await profiles(request).duplicate(principal.tenant.id, parse_id(profile_id), name)
    return media.c8y_json(object_body(copy, context(request).base_url), media.MANAGED_OBJECT, 201)

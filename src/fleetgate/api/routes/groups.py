"""``/inventory/managedObjects/{id}/childAssets``: a group's members (devices, subgroups,
any asset), as Cumulocity's managed object references. Rules: ``services/groups``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.routes.inventory import (
    MANAGED_OBJECT_REFERENCE,
    MANAGED_OBJECT_REFERENCE_COLLECTION,
    reference_body,
)
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import groups
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.groups import CHILD_ASSETS
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_ADMIN = require(Role.INVENTORY_ADMIN)
_PATH = "/inventory/managedObjects/{object_id}/childAssets"


@router.get(_PATH, **answers(200, MANAGED_OBJECT_REFERENCE_COLLECTION, 404))
async def list_child_assets(
    request: Request,
    object_id: IdPath,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    parent_id = parse_id(object_id)
    found, total = await groups(request).child_assets(
        principal.tenant.id, parent_id, page.offset, page.size, count=page.counts
    )
    base = context(request).base_url
    references = [reference_body(parent_id, CHILD_ASSETS, c, base) for c in found]
    body = page.collection(request, base, "references", references, total)
    return media.c8y_json(body, MANAGED_OBJECT_REFERENCE_COLLECTION)


@router.post(
    _PATH,
    openapi_extra=json_body(schemas.REFERENCE, MANAGED_OBJECT_REFERENCE),
    **answers(201, MANAGED_OBJECT_REFERENCE, 404, 409),
)
async def add_child_asset(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    """A reference ``{"managedObject": {"id": …}}`` to an existing object (make a group or
    device first with ``POST /inventory/managedObjects``)."""
    parent_id = parse_id(object_id)
    body = await json_object(request)
    target = body.get("managedObject")
    if set(body) != {"managedObject"} or not isinstance(target, dict) or "id" not in target:
        raise ValidationFailed('a child asset is a reference {"managedObject": {"id": "<id>"}}')
    child = await groups(request).add_child_asset(
        principal.tenant.id, parent_id, parse_id(target["id"])
    )
    base = context(request).base_url
    return media.c8y_json(
        reference_body(parent_id, CHILD_ASSETS, child, base), MANAGED_OBJECT_REFERENCE, 201
    )


@router.get(_PATH + "/{child_id}", **answers(200, MANAGED_OBJECT_REFERENCE, 404))
async def get_child_asset(
    request: Request,
    object_id: IdPath,
    child_id: IdPath,
    principal: Annotated[Principal, Depends(_READ)],
) -> JSONResponse:
    parent_id = parse_id(object_id)
    child = await groups(request).child_asset(principal.tenant.id, parent_id, parse_id(child_id))
    base = context(request).base_url
    return media.c8y_json(
        reference_body(parent_id, CHILD_ASSETS, child, base), MANAGED_OBJECT_REFERENCE
    )


@router.delete(_PATH + "/{child_id}", **answers(204, None, 404))
async def remove_child_asset(
    request: Request,
    object_id: IdPath,
    child_id: IdPath,
    principal: Annotated[Principal, Depends(_ADMIN)],
) -> Response:
    """Only the reference goes; the asset stays."""
    await groups(request).remove_child_asset(
        principal.tenant.id, parse_id(object_id), parse_id(child_id)
    )
    return Response(status_code=204)

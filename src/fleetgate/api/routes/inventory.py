"""``/inventory/managedObjects``: devices (and later groups and repositories)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object, parse_object_id
from fleetgate.api.paging import Page, paging
from fleetgate.db.inventory import ObjectFilter
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.users import Principal, Role
from fleetgate.services.devices import Devices

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_ADMIN = require(Role.INVENTORY_ADMIN)


def devices(request: Request) -> Devices:
    service = request.app.state.devices
    assert isinstance(service, Devices)
    return service


def _iso(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def object_body(obj: ManagedObject, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        **obj.fragments,
        "id": str(obj.id),
        "self": f"{base}/inventory/managedObjects/{obj.id}",
        "creationTime": _iso(obj.creation_time),
        "lastUpdated": _iso(obj.last_updated),
    }
    for key, value in (("name", obj.name), ("type", obj.type), ("owner", obj.owner)):
        if value is not None:
            body[key] = value
    return body


@router.get("/inventory/managedObjects")
async def list_objects(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    type: str | None = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    owner: str | None = None,
    ids: str | None = None,
) -> JSONResponse:
    id_list = tuple(parse_object_id(i) for i in ids.split(",") if i) if ids else None
    flt = ObjectFilter(type=type, fragment_type=fragment_type, owner=owner, ids=id_list)
    objects, total = await devices(request).find_objects(
        principal.tenant.id, flt, page.offset, page.size, count=page.with_total_pages
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "managedObjects", [object_body(o, base) for o in objects], total
    )
    return media.c8y_json(body, media.MANAGED_OBJECT_COLLECTION)


@router.post("/inventory/managedObjects")
async def create_object(
    request: Request, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    body = await json_object(request)
    created = await devices(request).create_object(principal.tenant.id, body)
    return media.c8y_json(
        object_body(created, context(request).base_url), media.MANAGED_OBJECT, 201
    )


@router.get("/inventory/managedObjects/{object_id}")
async def get_object(
    request: Request, object_id: str, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    found = await devices(request).get_object(principal.tenant.id, parse_object_id(object_id))
    return media.c8y_json(object_body(found, context(request).base_url), media.MANAGED_OBJECT)


@router.put("/inventory/managedObjects/{object_id}")
async def update_object(
    request: Request, object_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    updated = await devices(request).update_object(
        principal.tenant.id, parse_object_id(object_id), body
    )
    return media.c8y_json(object_body(updated, context(request).base_url), media.MANAGED_OBJECT)


@router.delete("/inventory/managedObjects/{object_id}", status_code=204)
async def delete_object(
    request: Request, object_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await devices(request).delete_object(principal.tenant.id, parse_object_id(object_id))
    return Response(status_code=204)

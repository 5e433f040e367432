"""``/inventory/managedObjects``: devices, repositories (firmware, software, configuration
files, each with its versions as child additions), and later groups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import devices
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory import PARENT_KINDS, ObjectFilter, Reference
from fleetgate.domain.inventory_query import Has, all_of, parse_query
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_ADMIN = require(Role.INVENTORY_ADMIN)

MANAGED_OBJECT_REFERENCE = "application/vnd.com.nsn.cumulocity.managedObjectReference+json"
MANAGED_OBJECT_REFERENCE_COLLECTION = (
    "application/vnd.com.nsn.cumulocity.managedObjectReferenceCollection+json"
)


def _iso(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def object_url(base: str, object_id: int) -> str:
    return f"{base}/inventory/managedObjects/{object_id}"


def object_body(
    obj: ManagedObject, base: str, references: list[Reference] | None = None
) -> dict[str, Any]:
    """The managed object; with ``references``, also its ``childAdditions``, ``childAssets``,
    ``childDevices`` and the three parent lists (one object's GET, not collections)."""
    body: dict[str, Any] = {
        **obj.fragments,
        "id": str(obj.id),
        # A binary's self is where its content is, as in Cumulocity.
        "self": f"{base}/inventory/binaries/{obj.id}"
        if "c8y_IsBinary" in obj.fragments
        else object_url(base, obj.id),
        "creationTime": _iso(obj.creation_time),
        "lastUpdated": _iso(obj.last_updated),
    }
    for key, value in (("name", obj.name), ("type", obj.type), ("owner", obj.owner)):
        if value is not None:
            body[key] = value
    if references is not None:
        own = object_url(base, obj.id)
        for kind in (*PARENT_KINDS, *PARENT_KINDS.values()):
            body[kind] = {"self": f"{own}/{kind}", "references": []}
        for ref in references:
            other = object_url(base, ref.object_id)
            body[ref.kind]["references"].append(
                {
                    "managedObject": {"id": str(ref.object_id), "name": ref.name, "self": other},
                    "self": f"{own}/{ref.kind}/{ref.object_id}"
                    if ref.kind in PARENT_KINDS
                    else f"{other}/{_child_kind(ref.kind)}/{obj.id}",
                }
            )
    return body


def _child_kind(parent_kind: str) -> str:
    return next(k for k, v in PARENT_KINDS.items() if v == parent_kind)


def reference_body(parent_id: int, kind: str, child: ManagedObject, base: str) -> dict[str, Any]:
    """A ``managedObjectReference``: the child in full, and the reference's own URL."""
    return {
        "managedObject": object_body(child, base),
        "self": f"{object_url(base, parent_id)}/{kind}/{child.id}",
    }


@router.get("/inventory/managedObjects")
async def list_objects(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    type: str | None = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    owner: str | None = None,
    ids: str | None = None,
    query: str | None = None,
    q: str | None = None,
) -> JSONResponse:
    """``query``: an inventory query (docs/api.md, "Inventory queries"); ``q``: the same
    over devices only (``has(c8y_IsDevice)`` added), as Cumulocity's device lists ask."""
    where = all_of(
        parse_query(query) if query is not None else None,
        all_of(Has(("c8y_IsDevice",)), parse_query(q)) if q is not None else None,
    )
    flt = ObjectFilter(
        type=type, fragment_type=fragment_type, owner=owner, ids=id_list(ids), query=where
    )
    return await object_page(request, principal, flt, page)


def id_list(ids: str | None) -> tuple[int, ...] | None:
    """The ``ids`` query parameter: comma-separated managed object ids."""
    return tuple(parse_id(i) for i in ids.split(",") if i) if ids else None


async def object_page(
    request: Request, principal: Principal, flt: ObjectFilter, page: Page
) -> JSONResponse:
    """One page of the tenant's managed objects that pass ``flt``, as a collection."""
    objects, total = await devices(request).find_objects(
        principal.tenant.id, flt, page.offset, page.size, count=page.with_total_pages
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "managedObjects", [object_body(o, base) for o in objects], total
    )
    return media.c8y_json(body, media.MANAGED_OBJECT_COLLECTION)


@router.post(
    "/inventory/managedObjects",
    openapi_extra=json_body(schemas.MANAGED_OBJECT, media.MANAGED_OBJECT),
)
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
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    service = devices(request)
    found = await service.get_object(principal.tenant.id, parse_id(object_id))
    references = await service.references_of(principal.tenant.id, found.id)
    return media.c8y_json(
        object_body(found, context(request).base_url, references), media.MANAGED_OBJECT
    )


@router.put(
    "/inventory/managedObjects/{object_id}",
    openapi_extra=json_body(schemas.MANAGED_OBJECT, media.MANAGED_OBJECT),
)
async def update_object(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    updated = await devices(request).update_object(principal.tenant.id, parse_id(object_id), body)
    return media.c8y_json(object_body(updated, context(request).base_url), media.MANAGED_OBJECT)


@router.delete("/inventory/managedObjects/{object_id}", status_code=204)
async def delete_object(
    request: Request,
    object_id: IdPath,
    principal: Annotated[Principal, Depends(_ADMIN)],
    force_cascade: Annotated[bool, Query(alias="forceCascade")] = False,
) -> Response:
    """``forceCascade=true`` deletes the whole hierarchy below the object too (child
    additions, assets and devices), as Cumulocity does: a firmware with its versions."""
    await devices(request).delete_object(
        principal.tenant.id, parse_id(object_id), cascade=force_cascade
    )
    return Response(status_code=204)

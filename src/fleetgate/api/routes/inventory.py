"""``/inventory/managedObjects``: devices, repositories (firmware, software, configuration
files, each with its versions as child additions), and later groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import devices, enablement
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory import PARENT_KINDS, ObjectFilter, Reference
from fleetgate.domain.inventory_query import Has, all_of, parse_query
from fleetgate.domain.lifecycle import devices_in, parse_status
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


@dataclass(frozen=True, slots=True)
class Tree:
    """How much of the tree a managed object's body shows (Cumulocity's parameters)."""

    #: ``withChildren`` (default true): the three lists of children; the three lists of
    #: parents are shown either way.
    children: bool = True
    #: ``skipChildrenNames``: children's references without their names.
    child_names: bool = True


def tree(
    with_children: Annotated[bool, Query(alias="withChildren")] = True,
    skip_children_names: Annotated[bool, Query(alias="skipChildrenNames")] = False,
) -> Tree:
    """FastAPI dependency: the :class:`Tree` a request asks for."""
    return Tree(with_children, not skip_children_names)


def object_body(
    obj: ManagedObject,
    base: str,
    references: list[Reference] | None = None,
    shown: Tree = Tree(),
) -> dict[str, Any]:
    """The managed object; with ``references``, also its ``childAdditions``,
    ``childAssets``, ``childDevices`` (unless ``shown`` leaves them out) and its
    ``additionParents``, ``assetParents``, ``deviceParents``."""
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
        kinds = (*PARENT_KINDS, *PARENT_KINDS.values()) if shown.children else PARENT_KINDS.values()
        for kind in kinds:
            body[kind] = {"self": f"{own}/{kind}", "references": []}
        for ref in references:
            if ref.kind not in body:
                continue
            other = object_url(base, ref.object_id)
            is_child = ref.kind in PARENT_KINDS
            managed_object = {"id": str(ref.object_id), "name": ref.name, "self": other}
            if is_child and not shown.child_names:
                del managed_object["name"]
            body[ref.kind]["references"].append(
                {
                    "managedObject": managed_object,
                    "self": f"{own}/{ref.kind}/{ref.object_id}"
                    if is_child
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


def _reference_filter(kind: str, raw: str | None) -> tuple[tuple[str, int], ...]:
    return ((kind, parse_id(raw)),) if raw is not None else ()


def object_filter(
    type: str | None = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    owner: str | None = None,
    ids: str | None = None,
    query: str | None = None,
    q: str | None = None,
    child_addition_id: Annotated[str | None, Query(alias="childAdditionId")] = None,
    child_asset_id: Annotated[str | None, Query(alias="childAssetId")] = None,
    child_device_id: Annotated[str | None, Query(alias="childDeviceId")] = None,
    device_parent_id: Annotated[str | None, Query(alias="deviceParentId")] = None,
    has_child_devices: Annotated[bool | None, Query(alias="hasChildDevices")] = None,
    only_roots: Annotated[bool, Query(alias="onlyRoots")] = False,
    lifecycle_status: Annotated[str | None, Query(alias="lifecycleStatus")] = None,
) -> ObjectFilter:
    """FastAPI dependency: the filter of a list (or count) of managed objects.

    ``query``: an inventory query (docs/api.md, "Inventory queries"); ``q``: the same
    over devices only (``has(c8y_IsDevice)`` added), as Cumulocity's device lists ask;
    ``lifecycleStatus``: fleetgate's, the devices in that lifecycle status.
    The tree: Cumulocity's ``childAdditionId``/``childAssetId``/``childDeviceId`` (the
    parents of that child) and ``onlyRoots``, fleetgate's ``deviceParentId`` (a
    gateway's children) and ``hasChildDevices`` (gateways, or with false the others)."""
    where = all_of(
        parse_query(query) if query is not None else None,
        all_of(Has(("c8y_IsDevice",)), parse_query(q)) if q is not None else None,
        devices_in(parse_status(lifecycle_status)) if lifecycle_status is not None else None,
    )
    return ObjectFilter(
        type=type,
        fragment_type=fragment_type,
        owner=owner,
        ids=id_list(ids),
        query=where,
        parents_of=(
            *_reference_filter("childAdditions", child_addition_id),
            *_reference_filter("childAssets", child_asset_id),
            *_reference_filter("childDevices", child_device_id),
        ),
        device_parent=parse_id(device_parent_id) if device_parent_id is not None else None,
        has_child_devices=has_child_devices,
        only_roots=only_roots,
    )


@router.get("/inventory/managedObjects", **answers(200, media.MANAGED_OBJECT_COLLECTION))
async def list_objects(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    shown: Annotated[Tree, Depends(tree)],
    flt: Annotated[ObjectFilter, Depends(object_filter)],
) -> JSONResponse:
    """The tenant's managed objects that pass the filter (:func:`object_filter`)."""
    return await object_page(request, principal, flt, page, shown)


@router.get(
    "/inventory/managedObjects/count",
    **answers(200, "text/plain", schema={"type": "integer", "minimum": 0}),
)
async def count_objects(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    flt: Annotated[ObjectFilter, Depends(object_filter)],
) -> Response:
    """Cumulocity's ``inventory.count()``: how many managed objects pass the filter (the
    list's parameters), as a plain integer (``text/plain``; it is valid JSON too)."""
    total = await devices(request).count_objects(principal.tenant.id, flt)
    return Response(str(total), media_type="text/plain;charset=UTF-8")


def id_list(ids: str | None) -> tuple[int, ...] | None:
    """The ``ids`` query parameter: comma-separated managed object ids."""
    return tuple(parse_id(i) for i in ids.split(",") if i) if ids else None


async def object_page(
    request: Request,
    principal: Principal,
    flt: ObjectFilter,
    page: Page,
    shown: Tree | None = None,
) -> JSONResponse:
    """One page of the tenant's managed objects that pass ``flt``, as a collection; with
    ``shown``, each with its references, read for the whole page in one more query."""
    service = devices(request)
    objects, total = await service.find_objects(
        principal.tenant.id, flt, page.offset, page.size, count=page.counts
    )
    references: dict[int, list[Reference]] = {}
    if shown is not None and objects:
        references = await service.references_of_page(
            principal.tenant.id, [o.id for o in objects], children=shown.children
        )
    base = context(request).base_url
    items = [object_body(o, base, references.get(o.id), shown or Tree()) for o in objects]
    body = page.collection(request, base, "managedObjects", items, total)
    return media.c8y_json(body, media.MANAGED_OBJECT_COLLECTION)


@router.post(
    "/inventory/managedObjects",
    openapi_extra=json_body(schemas.MANAGED_OBJECT, media.MANAGED_OBJECT),
    **answers(201, media.MANAGED_OBJECT),
)
async def create_object(
    request: Request, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    body = await json_object(request)
    created = await devices(request).create_object(principal.tenant.id, body)
    return media.c8y_json(
        object_body(created, context(request).base_url), media.MANAGED_OBJECT, 201
    )


@router.get("/inventory/lifecycle", **answers(200, "application/json"))
async def lifecycle_counts(
    request: Request, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    """fleetgate's: how many of the tenant's devices are in each lifecycle status."""
    counts = await devices(request).lifecycle_counts(principal.tenant.id)
    body: dict[str, Any] = {
        "self": f"{context(request).base_url}/inventory/lifecycle",
        "statuses": {status.value: n for status, n in counts.items()},
        "total": sum(counts.values()),
    }
    return JSONResponse(body)


@router.get("/inventory/managedObjects/{object_id}", **answers(200, media.MANAGED_OBJECT, 404))
async def get_object(
    request: Request,
    object_id: IdPath,
    principal: Annotated[Principal, Depends(_READ)],
    shown: Annotated[Tree, Depends(tree)],
) -> JSONResponse:
    service = devices(request)
    found = await service.get_object(principal.tenant.id, parse_id(object_id))
    references = await service.references_of_page(
        principal.tenant.id, [found.id], children=shown.children
    )
    return media.c8y_json(
        object_body(found, context(request).base_url, references[found.id], shown),
        media.MANAGED_OBJECT,
    )


@router.put(
    "/inventory/managedObjects/{object_id}",
    openapi_extra=json_body(schemas.MANAGED_OBJECT, media.MANAGED_OBJECT),
    **answers(200, media.MANAGED_OBJECT, 404),
)
async def update_object(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    updated = await devices(request).update_object(principal.tenant.id, parse_id(object_id), body)
    return media.c8y_json(object_body(updated, context(request).base_url), media.MANAGED_OBJECT)


@router.post(
    "/inventory/managedObjects/{object_id}/disable", **answers(200, media.MANAGED_OBJECT, 404)
)
async def disable_device(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """fleetgate's (EnOS's "disable device"): the device may not log in — a live session
    is closed at once — its open operations wait PENDING, a gateway's messages for it are
    refused, and it shows DISABLED (a gateway's children too). Idempotent."""
    found = await enablement(request).disable(principal.tenant.id, parse_id(object_id))
    return media.c8y_json(object_body(found, context(request).base_url), media.MANAGED_OBJECT)


@router.post(
    "/inventory/managedObjects/{object_id}/enable", **answers(200, media.MANAGED_OBJECT, 404)
)
async def enable_device(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """fleetgate's: undo ``…/disable``; its waiting operations are dispatched."""
    found = await enablement(request).enable(principal.tenant.id, parse_id(object_id))
    return media.c8y_json(object_body(found, context(request).base_url), media.MANAGED_OBJECT)


@router.delete("/inventory/managedObjects/{object_id}", **answers(204, None, 404))
async def delete_object(
    request: Request,
    object_id: IdPath,
    principal: Annotated[Principal, Depends(_ADMIN)],
    cascade: bool = False,
    force_cascade: Annotated[bool, Query(alias="forceCascade")] = False,
    with_device_user: Annotated[bool, Query(alias="withDeviceUser")] = False,
) -> Response:
    """Cumulocity's parameters: ``cascade=true`` deletes a device's or group's child
    devices and assets too (a gateway with its children), ``forceCascade=true`` the whole
    hierarchy below any object (a firmware with its versions); without them the children
    stay, as objects of their own. A deleted device's user always goes with it
    (``withDeviceUser`` is accepted; fleetgate never keeps a device user whose device id
    is released)."""
    del with_device_user
    await devices(request).delete_object(
        principal.tenant.id,
        parse_id(object_id),
        cascade=cascade,
        force_cascade=force_cascade,
        by=principal.user.username,
    )
    return Response(status_code=204)

"""``/inventory/managedObjects/{id}/childAdditions|childDevices``: references between
managed objects, as Cumulocity's child operations API (child assets, a group's members,
are ``api/routes/groups``).

Reading is one generic pair of routes per kind (paged ``managedObjectReferenceCollection``,
one ``managedObjectReference``). Writing differs by kind: child additions take any
object of the tenant (or a new one), child devices are a gateway's tree with its rules
(:mod:`fleetgate.domain.child_devices`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

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
from fleetgate.api.services import child_devices, devices
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import CHILD_DEVICES
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_ADMIN = require(Role.INVENTORY_ADMIN)
_ADDITIONS = "childAdditions"


def _reference_response(
    request: Request, parent_id: int, kind: str, child: ManagedObject, status: int = 200
) -> JSONResponse:
    body = reference_body(parent_id, kind, child, context(request).base_url)
    return media.c8y_json(body, MANAGED_OBJECT_REFERENCE, status)


# -- reading, every kind -----------------------------------------------------------------


def _list_route(kind: str) -> Callable[..., Awaitable[JSONResponse]]:
    async def list_references(
        request: Request,
        object_id: IdPath,
        principal: Annotated[Principal, Depends(_READ)],
        page: Annotated[Page, Depends(paging)],
    ) -> JSONResponse:
        parent_id = parse_id(object_id)
        children, total = await devices(request).children(
            principal.tenant.id, parent_id, kind, page.offset, page.size,
            count=page.counts,
        )  # fmt: skip
        base = context(request).base_url
        references = [reference_body(parent_id, kind, c, base) for c in children]
        body = page.collection(request, base, "references", references, total)
        return media.c8y_json(body, MANAGED_OBJECT_REFERENCE_COLLECTION)

    list_references.__name__ = f"list_{kind}"
    return list_references


def _get_route(kind: str) -> Callable[..., Awaitable[JSONResponse]]:
    async def get_reference(
        request: Request,
        object_id: IdPath,
        child_id: IdPath,
        principal: Annotated[Principal, Depends(_READ)],
    ) -> JSONResponse:
        parent_id = parse_id(object_id)
        child = await devices(request).child(
            principal.tenant.id, parent_id, kind, parse_id(child_id)
        )
        return _reference_response(request, parent_id, kind, child)

    get_reference.__name__ = f"get_{kind}_reference"
    return get_reference


for _kind in (_ADDITIONS, CHILD_DEVICES):
    router.add_api_route(
        f"/inventory/managedObjects/{{object_id}}/{_kind}",
        _list_route(_kind),
        methods=["GET"],
        **answers(200, MANAGED_OBJECT_REFERENCE_COLLECTION, 404),
    )
    router.add_api_route(
        f"/inventory/managedObjects/{{object_id}}/{_kind}/{{child_id}}",
        _get_route(_kind),
        methods=["GET"],
        **answers(200, MANAGED_OBJECT_REFERENCE, 404),
    )


def _is_reference(request: Request, body: dict[str, Any]) -> bool:
    """What the body is: the Content-Type says; a plain JSON body is a reference when it
    is nothing but ``managedObject`` with an ``id``."""
    content_type = request.headers.get("content-type", "").lower()
    looks_like_reference = set(body) == {"managedObject"} and isinstance(
        body["managedObject"], dict
    )
    if "managedobjectreference+json" in content_type:
        if not looks_like_reference or "id" not in body["managedObject"]:
            raise ValidationFailed('a reference is {"managedObject": {"id": "<id>"}}')
        return True
    if "managedobject+json" in content_type:
        return False
    return looks_like_reference and "id" in body["managedObject"]


# -- child additions ---------------------------------------------------------------------


@router.post(
    "/inventory/managedObjects/{object_id}/childAdditions",
    openapi_extra=json_body({"anyOf": [schemas.REFERENCE, schemas.MANAGED_OBJECT]}),
    **answers(201, MANAGED_OBJECT_REFERENCE, 404),
)
async def add_child_addition(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    """A reference ``{"managedObject": {"id": …}}`` attaches an existing object; a managed
    object (Content-Type ``managedObject+json``) is created and attached at once."""
    parent_id = parse_id(object_id)
    body = await json_object(request)
    service = devices(request)
    if _is_reference(request, body):
        child_id = parse_id(body["managedObject"].get("id"))
        child = await service.add_child_addition(principal.tenant.id, parent_id, child_id)
    else:
        child = await service.create_child_addition(principal.tenant.id, parent_id, body)
    return _reference_response(request, parent_id, _ADDITIONS, child, 201)


@router.delete(
    "/inventory/managedObjects/{object_id}/childAdditions/{child_id}", **answers(204, None, 404)
)
async def remove_child_addition(
    request: Request,
    object_id: IdPath,
    child_id: IdPath,
    principal: Annotated[Principal, Depends(_ADMIN)],
) -> Response:
    """Only the reference goes; the child object stays (delete it on its own)."""
    await devices(request).remove_child_addition(
        principal.tenant.id, parse_id(object_id), parse_id(child_id)
    )
    return Response(status_code=204)


# -- child devices: a gateway's tree -----------------------------------------------------


@router.post(
    "/inventory/managedObjects/{object_id}/childDevices",
    openapi_extra=json_body(schemas.REFERENCE, MANAGED_OBJECT_REFERENCE),
    **answers(201, MANAGED_OBJECT_REFERENCE, 404, 409),
)
async def attach_child_device(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """Attach an existing device to the gateway; 201 also when it was attached already
    (nothing changes), as Cumulocity answers a reference added again."""
    gateway_id = parse_id(object_id)
    body = await json_object(request)
    if not _is_reference(request, body):
        raise ValidationFailed(
            'a child device is an existing device, given as {"managedObject": {"id": "<id>"}};'
            " fleetgate does not create one here (make the device, with its c8y_Serial, first)"
        )
    child_id = parse_id(body["managedObject"].get("id"))
    child, _ = await child_devices(request).attach(principal.tenant.id, gateway_id, child_id)
    return _reference_response(request, gateway_id, CHILD_DEVICES, child, 201)


@router.delete(
    "/inventory/managedObjects/{object_id}/childDevices/{child_id}", **answers(204, None, 404)
)
async def detach_child_device(
    request: Request,
    object_id: IdPath,
    child_id: IdPath,
    principal: Annotated[Principal, Depends(_ADMIN)],
) -> Response:
    """The device stays, as a device of its own; the gateway is refused if it names it
    again, until an operator attaches it again."""
    await child_devices(request).detach(
        principal.tenant.id, parse_id(object_id), parse_id(child_id), principal.user.username
    )
    return Response(status_code=204)

"""``/identity``: external ids of managed objects (``c8y_Serial`` is the device id)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import devices
from fleetgate.domain.devices import check_external_id
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory import ExternalId
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.IDENTITY_READ, Role.IDENTITY_ADMIN)
_ADMIN = require(Role.IDENTITY_ADMIN)


def external_id_body(ext: ExternalId, base: str) -> dict[str, Any]:
    return {
        "externalId": ext.value,
        "type": ext.type,
        "self": f"{base}/identity/externalIds/{ext.type}/{ext.value}",
        "managedObject": {
            "id": str(ext.managed_object_id),
            "self": f"{base}/inventory/managedObjects/{ext.managed_object_id}",
        },
    }


@router.get(
    "/identity/externalIds/{type}/{external_id:path}", **answers(200, media.EXTERNAL_ID, 404)
)
async def get_external_id(
    request: Request, type: str, external_id: str, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    found = await devices(request).get_external_id(principal.tenant.id, type, external_id)
    return media.c8y_json(external_id_body(found, context(request).base_url), media.EXTERNAL_ID)


@router.delete("/identity/externalIds/{type}/{external_id:path}", **answers(204, None, 404))
async def delete_external_id(
    request: Request, type: str, external_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await devices(request).delete_external_id(principal.tenant.id, type, external_id)
    return Response(status_code=204)


@router.get(
    "/identity/globalIds/{object_id}/externalIds", **answers(200, media.EXTERNAL_ID_COLLECTION, 404)
)
async def external_ids_of(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    found = await devices(request).external_ids_of(principal.tenant.id, parse_id(object_id))
    base = context(request).base_url
    body = {
        "self": f"{base}/identity/globalIds/{object_id}/externalIds",
        "externalIds": [external_id_body(e, base) for e in found],
    }
    return media.c8y_json(body, media.EXTERNAL_ID_COLLECTION)


@router.post(
    "/identity/globalIds/{object_id}/externalIds",
    openapi_extra=json_body(schemas.EXTERNAL_ID, media.EXTERNAL_ID),
    **answers(201, media.EXTERNAL_ID, 404, 409),
)
async def add_external_id(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    type_, value = check_external_id(body.get("type"), body.get("externalId"))
    added = await devices(request).add_external_id(
        principal.tenant.id, parse_id(object_id), type_, value
    )
    return media.c8y_json(
        external_id_body(added, context(request).base_url), media.EXTERNAL_ID, 201
    )

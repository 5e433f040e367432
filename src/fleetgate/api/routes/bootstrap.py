"""``/devicecontrol/newDeviceRequests`` and ``/devicecontrol/deviceCredentials``, as the
seed (Cumulocity's device credentials API) specifies them, roles and media types included.

As in Cumulocity, a POST or PUT without an ``Accept`` header gets an empty body.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import bootstrap
from fleetgate.domain.bootstrap import NewDeviceRequest, check_request_id
from fleetgate.domain.errors import NotFound
from fleetgate.domain.users import Principal, Role
from fleetgate.services.bootstrap import IssuedCredentials

router = APIRouter()

_ADMIN = require(Role.DEVICE_CONTROL_ADMIN)
# The seed gives PUT (accepting a request) to ROLE_DEVICE_CONTROL_READ; so do we.
_READ = require(Role.DEVICE_CONTROL_READ, Role.DEVICE_CONTROL_ADMIN)
_BOOTSTRAP = require(Role.DEVICE_BOOTSTRAP)
_PATH = "/devicecontrol/newDeviceRequests"


def request_body(item: NewDeviceRequest, base: str) -> dict[str, Any]:
    return {"id": item.id, "status": item.status.value, "self": f"{base}{_PATH}/{item.id}"}


def _answer(request: Request, body: dict[str, Any], media_type: str, status: int) -> Response:
    if not request.headers.get("accept", "").strip():
        return Response(status_code=status)
    return media.c8y_json(body, media_type, status)


@router.post(
    _PATH,
    openapi_extra=json_body(schemas.DEVICE_REQUEST, media.NEW_DEVICE_REQUEST),
    **answers(201, media.NEW_DEVICE_REQUEST, 409),
)
async def create_request(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    created = await bootstrap(request).register(principal.tenant.id, await json_object(request))
    body = request_body(created, context(request).base_url)
    return _answer(request, body, media.NEW_DEVICE_REQUEST, 201)


@router.get(_PATH, **answers(200, media.NEW_DEVICE_REQUEST_COLLECTION))
async def list_requests(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
) -> Response:
    items, total = await bootstrap(request).page(
        principal.tenant.id, page.offset, page.size, count=page.counts
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "newDeviceRequests", [request_body(i, base) for i in items], total
    )
    return media.c8y_json(body, media.NEW_DEVICE_REQUEST_COLLECTION)


@router.get(_PATH + "/{request_id:path}", **answers(200, media.NEW_DEVICE_REQUEST, 404))
async def get_request(
    request: Request, request_id: str, principal: Annotated[Principal, Depends(_READ)]
) -> Response:
    found = await bootstrap(request).get(principal.tenant.id, request_id)
    return media.c8y_json(request_body(found, context(request).base_url), media.NEW_DEVICE_REQUEST)


@router.put(
    _PATH + "/{request_id:path}",
    openapi_extra=json_body(schemas.DEVICE_REQUEST_UPDATE, media.NEW_DEVICE_REQUEST),
    **answers(200, media.NEW_DEVICE_REQUEST, 404),
)
async def update_request(
    request: Request, request_id: str, principal: Annotated[Principal, Depends(_READ)]
) -> Response:
    moved = await bootstrap(request).update(
        principal.tenant.id, request_id, await json_object(request)
    )
    body = request_body(moved, context(request).base_url)
    return _answer(request, body, media.NEW_DEVICE_REQUEST, 200)


@router.delete(_PATH + "/{request_id:path}", **answers(200, None, 404))
async def delete_request(
    request: Request, request_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await bootstrap(request).delete(principal.tenant.id, request_id)
    return Response(status_code=200)  # the seed answers 200 OK, not 204


@router.post(
    "/devicecontrol/deviceCredentials",
    openapi_extra=json_body(schemas.DEVICE_REQUEST),
    **answers(201, media.DEVICE_CREDENTIALS, 404),
)
async def device_credentials(
    request: Request, principal: Annotated[Principal, Depends(_BOOTSTRAP)]
) -> Response:
    """A device asks with the bootstrap account: 404 until accepted, then 201 once."""
    device_id = check_request_id((await json_object(request)).get("id"))
    result = await bootstrap(request).ask(principal.tenant.id, device_id)
    if not isinstance(result, IssuedCredentials):
        raise NotFound(
            f"No accepted new device request for {device_id}", code="devicecontrol/Not Found"
        )
    body = {
        "id": result.id,
        "tenantId": result.tenant_id,
        "username": result.username,
        "password": result.password,
        "self": f"{context(request).base_url}/devicecontrol/deviceCredentials/{result.id}",
    }
    return _answer(request, body, media.DEVICE_CREDENTIALS, 201)

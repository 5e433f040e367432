"""``/inventory/binaries``: files kept as managed objects (``c8y_IsBinary``).

Uploads are read as they arrive: the ``file`` part streams into the file store (no
spooling, no buffering), whether the ``object`` part comes before or after it.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import MAX_BODY, parse_json
from fleetgate.api.file_responses import file_response
from fleetgate.api.multipart import MultipartForm, PartHeaders, boundary_of
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.routes.inventory import id_list, object_body, object_page
from fleetgate.api.schemas import IdPath
from fleetgate.api.services import binaries
from fleetgate.domain.binaries import (
    DEFAULT_CONTENT_TYPE,
    IS_BINARY,
    BinaryFile,
    StagedFile,
    storable,
    upload_metadata,
)
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import TooLarge, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.users import Principal, Role
from fleetgate.services.binaries import Binaries, binary_not_found

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_CREATE = require(Role.INVENTORY_ADMIN, Role.INVENTORY_CREATE)
_ADMIN = require(Role.INVENTORY_ADMIN)


def _check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the upload is larger than {limit} bytes")


def _object_part(raw: bytes) -> dict[str, Any]:
    try:
        value = parse_json(raw, "the part object")
    except HTTPException as exc:
        # The body as a whole was fine; this part of it is the request's mistake.
        raise ValidationFailed(str(exc.detail)) from None
    if not isinstance(value, dict):
        raise ValidationFailed("the part object must be a JSON object")
    return value


async def _create_from_form(
    form: MultipartForm, service: Binaries, tenant_id: str, username: str
) -> ManagedObject:
    """Stream the ``file`` part into the store; create the binary once ``object`` is known."""
    obj: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        staged: StagedFile | None = None
        file_part: PartHeaders | None = None
        async for part in form.parts():
            if part.name == "object":
                obj = _object_part(await part.read(MAX_BODY))
            elif part.name == "file":
                if staged is not None:
                    raise ValidationFailed("the multipart body has more than one part named file")
                staged = await stack.enter_async_context(service.staged(part.chunks()))
                file_part = part.headers
        if staged is None or file_part is None:
            raise ValidationFailed("the multipart body has no part named file")
        meta = upload_metadata(obj, file_part.filename, file_part.content_type)
        return await service.create_staged(
            tenant_id,
            staged,
            name=meta.name,
            type=meta.type,
            content_type=meta.content_type,
            owner=meta.owner or username,
            fragments=meta.fragments,
        )


@router.get("/inventory/binaries", **answers(200, media.MANAGED_OBJECT_COLLECTION))
async def list_binaries(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    type: str | None = None,
    owner: str | None = None,
    ids: str | None = None,
) -> JSONResponse:
    # Binaries are exactly the managed objects marked c8y_IsBinary (the mark cannot be
    # added or removed through the inventory), so the inventory's own query lists them.
    flt = ObjectFilter(type=type, owner=owner, ids=id_list(ids), fragment_type=IS_BINARY)
    return await object_page(request, principal, flt, page)


@router.post(
    "/inventory/binaries",
    openapi_extra=schemas.BINARY_UPLOAD,
    **answers(201, media.MANAGED_OBJECT, 413, 415),
)
async def upload_binary(
    request: Request, principal: Annotated[Principal, Depends(_CREATE)]
) -> JSONResponse:
    service = binaries(request)
    _check_declared_size(request, service.max_size + MAX_BODY)
    boundary = boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise HTTPException(
            415, "send multipart/form-data with a part file and, optionally, a part object (JSON)"
        )
    created = await _create_from_form(
        MultipartForm(boundary, request.stream()),
        service,
        principal.tenant.id,
        principal.user.username,
    )
    return media.c8y_json(
        object_body(created, context(request).base_url), media.MANAGED_OBJECT, 201
    )


def send_file(request: Request, service: Binaries, found: BinaryFile) -> Response:
    """The binary's bytes, streamed; one ``Range`` honoured."""
    return file_response(
        service.local_path(found),
        size=found.length,
        sha256=found.sha256,
        content_type=found.content_type,
        filename=found.name,
        range_header=request.headers.get("range"),
    )


@router.get(
    "/inventory/binaries/{binary_id}",
    **answers(
        200,
        "application/octet-stream",
        404,
        others={
            206: {"description": "Partial content (Range)", "content": {"*/*": {}}},
            416: {"description": "The Range selects nothing (no body)", "content": {}},
        },
    ),
)
async def download_binary(
    request: Request, binary_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> Response:
    service = binaries(request)
    object_id = parse_id(binary_id, "binary")
    found = await service.file_of(principal.tenant.id, object_id)
    if found is None:
        raise binary_not_found(object_id)
    return send_file(request, service, found)


@router.put(
    "/inventory/binaries/{binary_id}",
    openapi_extra=schemas.raw_body(),
    **answers(201, media.MANAGED_OBJECT, 404, 413),
)
async def replace_binary(
    request: Request, binary_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """New content: the raw body, its Content-Type the binary's new content type (a
    ``multipart/form-data`` body's ``file`` part is accepted too)."""
    service = binaries(request)
    object_id = parse_id(binary_id, "binary")
    _check_declared_size(request, service.max_size)
    content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
    storable("the Content-Type", content_type)
    boundary = boundary_of(content_type)
    if boundary is None:
        replaced = await service.replace(
            principal.tenant.id, object_id, content_type, request.stream()
        )
    else:
        replaced = await _replace_from_form(
            MultipartForm(boundary, request.stream()), service, principal.tenant.id, object_id
        )
    return media.c8y_json(
        object_body(replaced, context(request).base_url), media.MANAGED_OBJECT, 201
    )


async def _replace_from_form(
    form: MultipartForm, service: Binaries, tenant_id: str, binary_id: int
) -> ManagedObject:
    async for part in form.parts():
        if part.name == "file":
            content_type = part.headers.content_type or DEFAULT_CONTENT_TYPE
            storable("the file part's Content-Type", content_type)
            return await service.replace(tenant_id, binary_id, content_type, part.chunks())
    raise ValidationFailed("the multipart body has no part named file")


@router.delete("/inventory/binaries/{binary_id}", **answers(204, None, 404))
async def delete_binary(
    request: Request, binary_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await binaries(request).delete(principal.tenant.id, parse_id(binary_id, "binary"))
    return Response(status_code=204)

"""``/inventory/batchUpdates``: devices of one type updated in batch from a template (a
fleetgate extension; Cumulocity has no such resource). Templates are read with
``ROLE_INVENTORY_READ``; uploading, confirming and discarding need ``ROLE_INVENTORY_ADMIN``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.multipart import MultipartForm, boundary_of
from fleetgate.api.openapi import answers
from fleetgate.api.routes.operations import iso_time
from fleetgate.api.schemas import IdPath
from fleetgate.api.services import batch
from fleetgate.domain.batch_file import MAX_UPLOAD, Format
from fleetgate.domain.batch_state import BatchState
from fleetgate.domain.errors import TooLarge, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.INVENTORY_READ, Role.INVENTORY_ADMIN)
_ADMIN = require(Role.INVENTORY_ADMIN)
PATH = "/inventory/batchUpdates"
#: Problems listed in the JSON answer (all of them are in errmsg.txt).
SHOWN_INVALID = 100


def batch_body(state: BatchState, base: str, now: datetime) -> dict[str, Any]:
    self_url = f"{base}{PATH}/{state.id}"
    body: dict[str, Any] = {
        "id": str(state.id),
        "self": self_url,
        "type": state.device_type,
        "status": state.status_at(now),
        "createdBy": state.created_by,
        "creationTime": iso_time(state.creation_time),
        "expiresAt": iso_time(state.expires_at),
        "numberOfRecords": state.records,
        "numberOfValid": state.valid_records,
        "numberOfInvalid": state.invalid_records,
        "invalidRecords": [
            {"row": i.row, **({"column": i.column} if i.column else {}), "cause": i.cause}
            for i in state.invalid[:SHOWN_INVALID]
        ],
        "invalidRecordsTruncated": len(state.invalid) > SHOWN_INVALID,
        "errmsg": f"{self_url}/errmsg.txt",
    }
    if state.file_name is not None:
        body["fileName"] = state.file_name
    if state.confirmed_by is not None:
        body["confirmedBy"] = state.confirmed_by
    if state.applied_at is not None:
        body["appliedAt"] = iso_time(state.applied_at)
    if state.status != "STAGED":
        body["result"] = {
            "numberOfUpdated": state.updated,
            "numberOfUnchanged": state.unchanged,
            "numberOfFailed": state.failed,
            "failedRecords": [
                {"row": f.row, "deviceId": str(f.object_id), "cause": f.cause}
                for f in state.failures
            ],
        }
    return body


def _format(value: str) -> Format:
    try:
        return Format(value.lower())
    except ValueError:
        raise ValidationFailed(f"format must be xlsx or csv, not {value[:20]!r}") from None


@router.get(
    f"{PATH}/template",
    **answers(
        200,
        None,
        404,
        others={
            200: {
                "description": "The template, as .xlsx or CSV (format=)",
                "content": {
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {},
                    "text/csv": {},
                },
            }
        },
    ),
)
async def download_template(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    type: Annotated[str, Query()],
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    format: Annotated[str, Query()] = "xlsx",
) -> Response:
    """The template for devices of ``type``: empty, or with ``deviceId``'s row."""
    example = parse_id(device_id, "managed object") if device_id is not None else None
    template = await batch(request).template(principal.tenant.id, type, example, _format(format))
    return Response(
        template.content,
        media_type=template.media_type,
        headers={"Content-Disposition": f'attachment; filename="{template.file_name}"'},
    )


@router.post(PATH, openapi_extra=schemas.CSV_UPLOAD, **answers(201, media.BATCH_UPDATE, 413, 415))
async def upload(
    request: Request,
    principal: Annotated[Principal, Depends(_ADMIN)],
    type: Annotated[str, Query()],
) -> JSONResponse:
    """Parse, check and stage the file (part ``file``); nothing changes until confirmed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD + 64 * 1024:
        raise TooLarge(f"the upload is larger than {MAX_UPLOAD} bytes")
    boundary = boundary_of(request.headers.get("content-type"))
    if boundary is None:
        raise HTTPException(415, "send the file as multipart/form-data, in a part named file")
    data: bytes | None = None
    file_name: str | None = None
    async for part in MultipartForm(boundary, request.stream()).parts():
        if part.name == "file" and data is None:
            file_name = part.headers.filename
            data = await part.read(MAX_UPLOAD)
    if data is None:
        raise ValidationFailed("the multipart body has no file part named file")
    service = batch(request)
    state = await service.stage(principal.tenant.id, principal.user.username, type, file_name, data)
    body = batch_body(state, context(request).base_url, service.now())
    response = media.c8y_json(body, media.BATCH_UPDATE, 201)
    response.headers["Location"] = body["self"]
    return response


@router.get(f"{PATH}/{{batch_id}}", **answers(200, media.BATCH_UPDATE, 404))
async def get_batch(
    request: Request, batch_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    service = batch(request)
    state = await service.get(principal.tenant.id, parse_id(batch_id, "batch update"))
    return media.c8y_json(
        batch_body(state, context(request).base_url, service.now()), media.BATCH_UPDATE
    )


@router.get(f"{PATH}/{{batch_id}}/errmsg.txt", **answers(200, "text/plain", 404))
async def errmsg(
    request: Request, batch_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> Response:
    """The invalid records: one line per problem, ``row N, column C: cause``."""
    text = await batch(request).errmsg(principal.tenant.id, parse_id(batch_id, "batch update"))
    return Response(
        text.encode("utf-8"),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="errmsg.txt"'},
    )


@router.post(f"{PATH}/{{batch_id}}/confirm", **answers(200, media.BATCH_UPDATE, 404, 409))
async def confirm(
    request: Request, batch_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """Apply the valid records ("Update"); the answer has each record's outcome."""
    service = batch(request)
    state = await service.confirm(
        principal.tenant.id, parse_id(batch_id, "batch update"), principal.user.username
    )
    return media.c8y_json(
        batch_body(state, context(request).base_url, service.now()), media.BATCH_UPDATE
    )


@router.delete(f"{PATH}/{{batch_id}}", **answers(204, None, 404))
async def discard(
    request: Request, batch_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await batch(request).discard(principal.tenant.id, parse_id(batch_id, "batch update"))
    return Response(status_code=204)

"""``/devicecontrol/bulkNewDeviceRequests``: device credentials from a CSV upload."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.types import Message

from fleetgate.api import media, schemas
from fleetgate.api.auth import require
from fleetgate.api.openapi import answers
from fleetgate.api.services import bulk
from fleetgate.domain.bulk import BulkResult, BulkStatus
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.users import Principal, Role

router = APIRouter()

#: Largest upload accepted (413 beyond it): some 2 million rows of a typical file.
MAX_UPLOAD = 256 * 1024 * 1024
BULK_NEW_DEVICE_REQUEST = "application/vnd.com.nsn.cumulocity.bulkNewDeviceRequest+json"

_ADMIN = require(Role.DEVICE_CONTROL_ADMIN)


def _too_large() -> HTTPException:
    return HTTPException(413, f"the upload is larger than {MAX_UPLOAD} bytes")


def _limited(request: Request, limit: int) -> Request:
    """The same request, whose body fails with 413 once it passes ``limit`` bytes."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large()
        return message

    return Request(request.scope, receive)


def result_body(result: BulkResult) -> dict[str, Any]:
    """Cumulocity's BulkNewDeviceRequest; ``line`` is ``line <n>: <row, password masked>``."""
    return {
        "numberOfAll": result.total,
        "numberOfCreated": result.created,
        "numberOfFailed": len(result.failures),
        "numberOfSuccessful": result.successful,
        "credentialUpdatedList": [
            {"bulkNewDeviceStatus": BulkStatus.CREDENTIAL_UPDATED.value, "deviceId": device_id}
            for device_id in result.updated
        ],
        "failedCreationList": [
            {
                "bulkNewDeviceStatus": BulkStatus.FAILED.value,
                **({"deviceId": f.device_id} if f.device_id else {}),
                "failureReason": f.reason,
                "line": f"line {f.line}: {f.text}" if f.text else f"line {f.line}",
            }
            for f in result.failures
        ],
    }


@router.post(
    "/devicecontrol/bulkNewDeviceRequests",
    openapi_extra=schemas.CSV_UPLOAD,
    **answers(201, BULK_NEW_DEVICE_REQUEST, 413, 415),
)
async def create_bulk_request(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise _too_large()
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(415, "send the CSV file as multipart/form-data, in a part named file")
    async with _limited(request, MAX_UPLOAD).form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed("the multipart body has no file part named file")
        result = await bulk(request).import_csv(
            principal.tenant, principal.user.username, upload.file
        )
    return media.c8y_json(result_body(result), BULK_NEW_DEVICE_REQUEST, 201)

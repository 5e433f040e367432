"""``GET /files/{id}``: a device downloads a binary with the signed URL of its command.

No credentials: the URL's ``signature`` covers the method, the path, the device id and
the expiry (:mod:`fleetgate.domain.signing`), so it authorises exactly this download for
this device until it expires. ``Range`` works as on ``/inventory/binaries/{id}``, so an
interrupted download resumes.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleetgate.api.openapi import access, answers
from fleetgate.api.routes.binaries import send_file
from fleetgate.api.schemas import IdPath
from fleetgate.api.services import binaries, url_secret
from fleetgate.domain import signing
from fleetgate.domain.errors import AccessDenied, NotFound
from fleetgate.domain.ids import parse_id

router = APIRouter()


def _denied() -> AccessDenied:
    return AccessDenied(
        "The download URL's signature is invalid or has expired; ask for the operation again"
    )


@router.get(
    "/files/{binary_id}",
    openapi_extra=access("a signed URL (device, expires, signature), from an operation"),
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
async def download_file(
    request: Request,
    binary_id: IdPath,
    device: str | None = None,
    expires: str | None = None,
    signature: str | None = None,
) -> Response:
    secret = url_secret(request)
    path = signing.download_path(binary_id)
    if not signing.verify(secret, "GET", path, device, expires, signature, now=time.time()):
        raise _denied()
    service = binaries(request)
    found = await service.file_by_id(parse_id(binary_id, "binary"))
    if found is None:
        raise NotFound(f"Binary {binary_id} not found: it was deleted", code="inventory/Not Found")
    return send_file(request, service, found)

"""``/devicecontrol/deadLetters``: device messages that could not be applied (a fleetgate
extension; Cumulocity has no such resource). Read with ``ROLE_DEVICE_CONTROL_READ``,
cleared with ``ROLE_DEVICE_CONTROL_ADMIN``."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media
from fleetgate.api.auth import context, require
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.routes.operations import iso_time, optional_id, query_time
from fleetgate.api.schemas import IdPath
from fleetgate.api.services import dead_letters
from fleetgate.domain.dead_letters import DeadLetterFilter, StoredDeadLetter
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.DEVICE_CONTROL_READ, Role.DEVICE_CONTROL_ADMIN)
_ADMIN = require(Role.DEVICE_CONTROL_ADMIN)
#: Characters of the payload shown in lists.
PREVIEW = 200


def _preview(payload: bytes) -> str:
    """The payload's beginning as text: bytes that are not UTF-8 and control characters
    written out (``\\x00``), so that any payload shows safely."""
    text = payload[: PREVIEW * 4].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() or c in " " else repr(c)[1:-1] for c in text)
    return shown[:PREVIEW]


def dead_letter_body(
    letter: StoredDeadLetter, base: str, *, with_payload: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(letter.id),
        "self": f"{base}/devicecontrol/deadLetters/{letter.id}",
        "time": iso_time(letter.received_at),
        "externalId": letter.device_id,
        "topic": letter.topic,
        "error": letter.error,
        "reason": letter.reason,
        "payloadSize": letter.payload_size,
        "payloadPreview": _preview(letter.payload),
    }
    if letter.managed_object_id is not None:
        body["deviceId"] = str(letter.managed_object_id)
    if with_payload:
        body["payloadBase64"] = base64.b64encode(letter.payload).decode("ascii")
        body["payloadTruncated"] = len(letter.payload) < letter.payload_size
    return body


def _filter(
    device_id: str | None, external_id: str | None, date_from: str | None, date_to: str | None
) -> DeadLetterFilter:
    return DeadLetterFilter(
        managed_object_id=optional_id(device_id),
        device_id=external_id,
        date_from=query_time(date_from, "dateFrom"),
        date_to=query_time(date_to, "dateTo"),
    )


@router.get("/devicecontrol/deadLetters", **answers(200, media.DEAD_LETTER_COLLECTION))
async def list_dead_letters(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    external_id: Annotated[str | None, Query(alias="externalId")] = None,
    date_from: Annotated[str | None, Query(alias="dateFrom")] = None,
    date_to: Annotated[str | None, Query(alias="dateTo")] = None,
) -> JSONResponse:
    """Newest first; ``deviceId`` (managed object) or ``externalId`` (the device id)."""
    flt = _filter(device_id, external_id, date_from, date_to)
    found, total = await dead_letters(request).find(
        principal.tenant, flt, page.offset, page.size, count=page.counts
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "deadLetters", [dead_letter_body(d, base) for d in found], total
    )
    return media.c8y_json(body, media.DEAD_LETTER_COLLECTION)


@router.get("/devicecontrol/deadLetters/{letter_id}", **answers(200, media.DEAD_LETTER, 404))
async def get_dead_letter(
    request: Request, letter_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    """One dead letter with its kept payload (``payloadBase64``)."""
    found = await dead_letters(request).get(principal.tenant, parse_id(letter_id, "dead letter"))
    body = dead_letter_body(found, context(request).base_url, with_payload=True)
    return media.c8y_json(body, media.DEAD_LETTER)


@router.delete("/devicecontrol/deadLetters/{letter_id}", **answers(204, None, 404))
async def delete_dead_letter(
    request: Request, letter_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await dead_letters(request).delete_one(principal.tenant, parse_id(letter_id, "dead letter"))
    return Response(status_code=204)


@router.delete("/devicecontrol/deadLetters", **answers(204, None))
async def delete_dead_letters(
    request: Request,
    principal: Annotated[Principal, Depends(_ADMIN)],
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    external_id: Annotated[str | None, Query(alias="externalId")] = None,
    date_from: Annotated[str | None, Query(alias="dateFrom")] = None,
    date_to: Annotated[str | None, Query(alias="dateTo")] = None,
) -> Response:
    """Clear those that pass the filters (all of the tenant's without any)."""
    flt = _filter(device_id, external_id, date_from, date_to)
    await dead_letters(request).delete(principal.tenant, flt)
    return Response(status_code=204)

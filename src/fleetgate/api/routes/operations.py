"""``/devicecontrol/operations``: create, list, get, update; a live stream (SSE); and the
signed URL devices PUT configuration snapshots to."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.event_stream import EventStream, Subscription
from fleetgate.api.openapi import access, answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import operations, url_secret
from fleetgate.domain import signing
from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.errors import AccessDenied, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.operations import Operation, OperationFilter, Status, parse_status
from fleetgate.domain.users import Principal, Role
from fleetgate.services.operations import FeedFilter, FeedOverflow

router = APIRouter()

_READ = require(Role.DEVICE_CONTROL_READ, Role.DEVICE_CONTROL_ADMIN)
_ADMIN = require(Role.DEVICE_CONTROL_ADMIN)

#: Seconds between SSE keep-alive comments (proxies drop idle streams).
KEEPALIVE = 15.0
#: The first event for a watcher that sent a ``Last-Event-ID``: the changes since follow,
#: or they are not at hand any more (reload the list).
RESUMED = b"event: resumed\ndata: {}\n\n"
RESET = b"event: reset\ndata: {}\n\n"


def iso_time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def operation_body(op: Operation, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        **op.fragments,
        "id": str(op.id),
        "self": f"{base}/devicecontrol/operations/{op.id}",
        "deviceId": str(op.device_id),
        "status": str(op.status),
        "creationTime": iso_time(op.creation_time),
        "statusTime": iso_time(op.status_time),
    }
    if op.device_name is not None:
        body["deviceName"] = op.device_name
    if op.description is not None:
        body["description"] = op.description
    if op.failure_reason is not None:
        body["failureReason"] = op.failure_reason
    if op.bulk_operation_id is not None:
        body["bulkOperationId"] = str(op.bulk_operation_id)
    return body


def _statuses(values: list[str]) -> tuple[Status, ...]:
    return tuple(parse_status(v) for value in values for v in value.split(",") if v)


def query_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"{name} must be an ISO 8601 date/time, not {value!r}") from None
    if parsed.tzinfo is None:
        raise ValidationFailed(f"{name} must carry a time zone (…Z or …+01:00)")
    return parsed


def optional_id(value: str | None, what: str = "managed object") -> int | None:
    """An id from a query parameter (:func:`fleetgate.domain.ids.parse_id`), if given."""
    return parse_id(value, what) if value is not None else None


@router.get("/devicecontrol/operations", **answers(200, media.OPERATION_COLLECTION))
async def list_operations(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    status: Annotated[list[str] | None, Query()] = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    bulk_operation_id: Annotated[str | None, Query(alias="bulkOperationId")] = None,
    date_from: Annotated[str | None, Query(alias="dateFrom")] = None,
    date_to: Annotated[str | None, Query(alias="dateTo")] = None,
    revert: bool = False,
) -> JSONResponse:
    flt = OperationFilter(
        device_id=optional_id(device_id, "device"),
        statuses=_statuses(status or []),
        fragment_type=fragment_type,
        bulk_operation_id=optional_id(bulk_operation_id, "bulk operation"),
        date_from=query_time(date_from, "dateFrom"),
        date_to=query_time(date_to, "dateTo"),
    )
    found, total = await operations(request).find(
        principal.tenant.id,
        flt,
        page.offset,
        page.size,
        revert=revert,
        count=page.counts,
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "operations", [operation_body(o, base) for o in found], total
    )
    return media.c8y_json(body, media.OPERATION_COLLECTION)


@router.post(
    "/devicecontrol/operations",
    openapi_extra=json_body(schemas.OPERATION, media.OPERATION),
    **answers(201, media.OPERATION, 404, 409),
)
async def create_operation(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    created = await operations(request).create(principal.tenant.id, body)
    return media.c8y_json(operation_body(created, context(request).base_url), media.OPERATION, 201)


@router.get("/devicecontrol/operations/stream", **answers(200, "text/event-stream"))
async def stream_operations(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    device_id: Annotated[str | None, Query(alias="deviceId")] = None,
    bulk_operation_id: Annotated[str | None, Query(alias="bulkOperationId")] = None,
    status: Annotated[list[str] | None, Query()] = None,
) -> StreamingResponse:
    """Every change of a matching operation from now on, as Server-Sent Events (and of
    bulk operations, ``event: bulkOperation``, unless ``deviceId`` is given); with a
    ``Last-Event-ID``, first the changes since that one (``event: resumed``), or, when they
    are not at hand any more, ``event: reset`` (reload the list)."""
    flt = FeedFilter(
        principal.tenant.id,
        device_id=optional_id(device_id, "device"),
        bulk_operation_id=optional_id(bulk_operation_id, "bulk operation"),
        statuses=frozenset(_statuses(status or [])),
    )
    feed = operations(request).feed
    base = context(request).base_url
    last_event_id = request.headers.get("last-event-id")
    after = feed.resume_point(last_event_id) if last_event_id else None
    # Subscribe before the response starts: a change right after the client sees the
    # headers must not be missed.
    subscription = Subscription(feed.watch(flt, after=after))

    async def events() -> AsyncIterator[bytes]:
        yield b": stream of operation changes\n\n"
        if last_event_id:
            yield RESUMED if after is not None else RESET
        while True:
            try:
                change = await subscription.next(KEEPALIVE)
            except FeedOverflow:
                yield b"event: overflow\ndata: {}\n\n"
                return
            if change is None:
                yield b": keepalive\n\n"
                continue
            sequence, op = change
            event_id = feed.event_id(sequence)
            if isinstance(op, BulkOperation):
                kind, body = "bulkOperation", _bulk_body(op, base)
            else:
                kind, body = "operation", operation_body(op, base)
            data = json.dumps(body, separators=(",", ":"))
            yield f"event: {kind}\nid: {event_id}\ndata: {data}\n\n".encode()

    return EventStream(events(), subscription)


def _bulk_body(bulk: BulkOperation, base: str) -> dict[str, Any]:
    # imported here: the bulk operation routes use this module's time format
    from fleetgate.api.routes.bulk_operations import bulk_body

    return bulk_body(bulk, base)


@router.get("/devicecontrol/operations/{operation_id}", **answers(200, media.OPERATION, 404))
async def get_operation(
    request: Request, operation_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    op = await operations(request).get(principal.tenant.id, parse_id(operation_id, "operation"))
    return media.c8y_json(operation_body(op, context(request).base_url), media.OPERATION)


@router.put(
    "/devicecontrol/operations/{operation_id}",
    openapi_extra=json_body(schemas.OPERATION_UPDATE, media.OPERATION),
    **answers(200, media.OPERATION, 404),
)
async def update_operation(
    request: Request, operation_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    op = await operations(request).update(
        principal.tenant.id, parse_id(operation_id, "operation"), body
    )
    return media.c8y_json(operation_body(op, context(request).base_url), media.OPERATION)


@router.put(
    "/files/snapshots/{operation_id}",
    openapi_extra={
        **schemas.raw_body(),
        **access("a signed URL (device, expires, signature), from the operation"),
    },
    **answers(201, "application/json", 404, 409, 413),
)
async def upload_snapshot(
    request: Request,
    operation_id: IdPath,
    device: str | None = None,
    expires: str | None = None,
    signature: str | None = None,
) -> JSONResponse:
    """A device's configuration snapshot for its c8y_UploadConfigFile operation.

    Authorised by the signed URL of the command, not by credentials: the signature is
    checked over the path as sent, before anything in it is trusted.
    """
    secret = url_secret(request)
    path = signing.snapshot_path(operation_id)
    if device is None or not signing.verify(
        secret, "PUT", path, device, expires, signature, now=time.time()
    ):
        raise AccessDenied(
            "The upload URL is invalid or has expired; ask for the operation again (op/sync)"
        )
    content_type = request.headers.get("content-type") or "application/octet-stream"
    binary = await operations(request).upload_snapshot(
        parse_id(operation_id, "operation"), device, content_type, request.stream()
    )
    return JSONResponse({"id": str(binary.id)}, status_code=201)

"""``/devicecontrol/devices/{id}/credentials`` and ``/devicecontrol/devices/{id}/trace``:
a device's credentials view with the regeneration of its secret, and message tracing
(fleetgate extensions; docs/api.md, docs/decisions/0016)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.routes.operations import iso_time
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import credentials, tracing
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.traces import MAX_ENTRIES, Trace
from fleetgate.domain.users import Principal, Role
from fleetgate.services.credentials import CredentialsView
from fleetgate.services.traces import StoredTraceEntry

router = APIRouter()

_READ = require(Role.DEVICE_CONTROL_READ, Role.DEVICE_CONTROL_ADMIN)
_ADMIN = require(Role.DEVICE_CONTROL_ADMIN)
#: Seconds between two looks for new entries of a watched trace, and between keep-alives.
POLL = 0.5
KEEPALIVE = 15.0


def _device_path(base: str, object_id: int) -> str:
    return f"{base}/devicecontrol/devices/{object_id}"


def credentials_body(view: CredentialsView, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "self": f"{_device_path(base, view.object_id)}/credentials",
        "deviceId": str(view.object_id),
        "externalId": view.device_id,
        "tenant": view.tenant_id,
        "authentication": view.authentication,
        "mqtt": {
            "host": view.listener.host,
            "port": view.listener.port,
            "tls": True,
            "clientId": view.device_id,
        },
        "secretRegenerations": [
            {"regeneratedBy": who, "time": iso_time(at)} for who, at in view.regenerations
        ],
    }
    if view.username is not None:
        body["mqtt"]["username"] = view.username
    if view.enabled is not None:
        body["enabled"] = view.enabled
    if view.ca_pem is not None:
        body["brokerCaPem"] = view.ca_pem
    if view.issuer_fingerprint is not None:
        certificate: dict[str, Any] = {"issuerFingerprint": view.issuer_fingerprint}
        if view.issuer is not None:
            certificate["issuer"] = view.issuer.facts.subject
            certificate["issuerName"] = view.issuer.name
        body["certificate"] = certificate
    return body


@router.get(
    "/devicecontrol/devices/{object_id}/credentials",
    **answers(200, media.DEVICE_CREDENTIALS_VIEW, 404),
)
async def get_credentials(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    view = await credentials(request).view(principal.tenant.id, parse_id(object_id, "device"))
    body = credentials_body(view, context(request).base_url)
    return media.c8y_json(body, media.DEVICE_CREDENTIALS_VIEW)


@router.post(
    "/devicecontrol/devices/{object_id}/credentials/secret",
    **answers(201, media.DEVICE_SECRET, 404),
)
async def regenerate_secret(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """A new password for a password device, shown this once; the old one is revoked and
    the live session kicked."""
    oid = parse_id(object_id, "device")
    password, at = await credentials(request).regenerate(
        principal.tenant.id, oid, principal.user.username
    )
    body = {
        "deviceId": str(oid),
        "password": password,
        "regeneratedBy": principal.user.username,
        "time": iso_time(at),
    }
    response = media.c8y_json(body, media.DEVICE_SECRET, 201)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- tracing ---------------------------------------------------------------------------


def trace_body(trace: Trace, base: str) -> dict[str, Any]:
    return {
        "self": f"{_device_path(base, trace.managed_object_id)}/trace",
        "deviceId": str(trace.managed_object_id),
        "externalId": trace.device_id,
        "startedBy": trace.started_by,
        "startTime": iso_time(trace.started_at),
        "endTime": iso_time(trace.expires_at),
    }


def entry_body(stored: StoredTraceEntry) -> dict[str, Any]:
    entry = stored.entry
    return {
        "id": str(stored.id),
        "time": iso_time(stored.at),
        "kind": entry.kind.value,
        "summary": entry.summary,
        **dict(entry.detail),
    }


@router.put(
    "/devicecontrol/devices/{object_id}/trace",
    openapi_extra=json_body(schemas.TRACE_START, media.TRACE),
    **answers(200, media.TRACE, 404),
)
async def start_trace(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """Start the device's trace for ``durationSeconds`` (1 to 259,200), or restart it."""
    body = await json_object(request)
    if "durationSeconds" not in body:
        raise ValidationFailed("durationSeconds is required (1 to 259200 seconds: 3 days)")
    trace = await tracing(request).start(
        principal.tenant.id,
        parse_id(object_id, "device"),
        principal.user.username,
        body["durationSeconds"],
    )
    return media.c8y_json(trace_body(trace, context(request).base_url), media.TRACE)


@router.delete("/devicecontrol/devices/{object_id}/trace", **answers(204, None, 404))
async def stop_trace(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await tracing(request).stop(principal.tenant.id, parse_id(object_id, "device"))
    return Response(status_code=204)


def _page_size(value: int | None) -> int:
    if value is None:
        return 100
    if not 1 <= value <= MAX_ENTRIES:
        raise ValidationFailed(f"pageSize must be from 1 to {MAX_ENTRIES}, not {value}")
    return value


@router.get("/devicecontrol/devices/{object_id}/trace", **answers(200, media.TRACE, 404))
async def get_trace(
    request: Request,
    object_id: IdPath,
    principal: Annotated[Principal, Depends(_READ)],
    page_size: Annotated[int | None, Query(alias="pageSize")] = None,
) -> JSONResponse:
    """The running trace and its newest ``pageSize`` entries, newest first."""
    service = tracing(request)
    trace = await service.get(principal.tenant.id, parse_id(object_id, "device"))
    found = await service.entries(trace, limit=_page_size(page_size))
    body = trace_body(trace, context(request).base_url)
    body["entries"] = [entry_body(e) for e in found]
    return media.c8y_json(body, media.TRACE)


@router.get(
    "/devicecontrol/devices/{object_id}/trace/stream",
    **answers(200, "text/event-stream", 404),
)
async def stream_trace(
    request: Request, object_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> StreamingResponse:
    """Server-Sent Events: the kept entries newest first (``event: entry``), then each new
    one as it is kept; ``event: ended`` when the trace expires or is stopped. Each event's
    id is the newest entry id sent so far; ``Last-Event-ID`` resumes after it."""
    service = tracing(request)
    tenant_id, oid = principal.tenant.id, parse_id(object_id, "device")
    trace = await service.get(tenant_id, oid)  # 404 before the stream starts
    last = request.headers.get("last-event-id", "").strip()
    after = int(last) if last.isascii() and last.isdigit() and len(last) < 19 else 0

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        yield b": trace of device " + str(oid).encode() + b"\n\n"
        quiet = 0.0
        while True:
            found = await service.entries(trace, after=after)
            if found:
                # Newest first; every event of the batch carries the batch's newest id, so
                # that a client resuming with the last id it saw gets nothing twice.
                after = found[0].id
                quiet = 0.0
            for stored in found:
                data = json.dumps(entry_body(stored), separators=(",", ":"))
                yield f"event: entry\nid: {after}\ndata: {data}\n\n".encode()
            try:
                await service.get(tenant_id, oid)
            except NotFound:
                yield b"event: ended\ndata: {}\n\n"
                return
            await asyncio.sleep(POLL)
            quiet += POLL
            if quiet >= KEEPALIVE:
                quiet = 0.0
                yield b": keepalive\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""A device's live trace on its page: start it for a duration (1 s to 3 days, checked by
the service), stop it, and its entries newest first, live over Server-Sent Events (the
entries ``/devicecontrol/devices/{id}/trace/stream`` serves, each with its list item
already rendered). Watchers of device control see it; its admins start and stop it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, fragment, redirect
from fleetgate.api.routes.traces import KEEPALIVE, POLL, entry_body
from fleetgate.api.services import services_of, tracing
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.traces import MAX_DURATION, Trace

router = APIRouter()

#: The longest trace, in seconds, for the form's input.
MAX_SECONDS = int(MAX_DURATION.total_seconds())


async def running_trace(request: Request, who: Viewer, object_id: int) -> Trace | None:
    """The device's running trace, None without one (or for a device that does not
    connect, or when the viewer may not see device control)."""
    if not who.sees("operations") or services_of(request.app).tracing is None:
        return None
    try:
        return await tracing(request).get(who.tenant, object_id)
    except NotFound:
        return None


def traceable(request: Request, who: Viewer) -> bool:
    return who.sees("operations") and services_of(request.app).tracing is not None


def _seconds(value: object) -> int:
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        raise ValidationFailed(
            f"The duration must be a whole number of seconds from 1 to {MAX_SECONDS} (3 days)"
        )
    return int(text)


@router.post("/devices/{device_id}/trace")
async def start_trace(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """Start (or restart from now) the device's trace (``PUT …/trace`` of the REST API)."""
    form = await acting(request, who, "operations")
    object_id = parse_id(device_id, "device")
    back = f"/devices/{object_id}"
    try:
        seconds = _seconds(form.get("duration"))
    except ValidationFailed as exc:
        return redirect(back, exc.message, error=True)
    return await attempt(
        back,
        f"Trace started for {seconds} s",
        tracing(request).start(who.tenant, object_id, who.name, seconds),
    )


@router.post("/devices/{device_id}/trace/stop")
async def stop_trace(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """Stop the device's trace (``DELETE …/trace``): its entries are dropped."""
    await acting(request, who, "operations")
    object_id = parse_id(device_id, "device")
    return await attempt(
        f"/devices/{object_id}",
        "Trace stopped",
        tracing(request).stop(who.tenant, object_id),
    )


@router.get("/devices/{device_id}/trace/stream")
async def trace_stream(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> StreamingResponse:
    """The trace's kept entries newest first (``event: entry``, each with its list item),
    then each new one; ``event: ended`` when the trace expires or is stopped. An event's
    id is its entry's; ``Last-Event-ID`` resumes after the newest one seen."""
    require_sight(who, "operations")
    service = tracing(request)
    object_id = parse_id(device_id, "device")
    trace = await service.get(who.tenant, object_id)  # 404 before the stream starts
    last = request.headers.get("last-event-id", "").strip()
    after = int(last) if last.isascii() and last.isdigit() and len(last) < 19 else 0

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        yield b": the console's live trace\n\nretry: 2000\n\n"
        quiet = 0.0
        while True:
            found = await service.entries(trace, after=after)
            if found:
                after = found[0].id
                quiet = 0.0
            # Oldest of the batch first: the page puts each on top, so the newest ends there.
            for stored in reversed(found):
                body = entry_body(stored)
                item = fragment("_trace_entry.html", entry=body)
                data = json.dumps({"id": body["id"], "html": item}, separators=(",", ":"))
                yield f"event: entry\nid: {stored.id}\ndata: {data}\n\n".encode()
            try:
                await service.get(who.tenant, object_id)
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

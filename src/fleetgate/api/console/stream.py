"""The console's live updates: the operation feed (the one ``/devicecontrol/operations/stream``
serves) as Server-Sent Events, each change with its table row already rendered, so that
the page's script only puts it in place. Authenticated by the session cookie (an
``EventSource`` cannot send a Basic header)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from fleetgate.api.console.bulk import progress
from fleetgate.api.console.operations import Filters, filters, operation_filter
from fleetgate.api.console.session import Viewer, require_sight, viewer
from fleetgate.api.console.views import fragment
from fleetgate.api.event_stream import EventStream, Subscription
from fleetgate.api.routes.operations import KEEPALIVE, RESET, RESUMED
from fleetgate.api.services import operations
from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.operations import Operation
from fleetgate.services.operation_feed import FeedFilter, FeedOverflow

router = APIRouter()


def operation_event(op: Operation) -> dict[str, Any]:
    return {
        "id": str(op.id),
        "status": str(op.status),
        "row": fragment("_operation_row.html", op=op),
        "detail": fragment("_operation_status.html", op=op),
    }


def bulk_event(bulk: BulkOperation, can_act: bool, csrf: str) -> dict[str, Any]:
    return {
        "id": str(bulk.id),
        "html": fragment("_bulk.html", p=progress(bulk), can_act=can_act, csrf=csrf),
    }


@router.get("/stream")
async def console_stream(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    given: Annotated[Filters, Depends(filters)],
    only: str = "",
) -> StreamingResponse:
    """Changes of the operations that pass the table's filters, and of bulk operations
    unless a device is chosen (``only=bulk``: those alone; ``only=operations``: none of
    them), from now on; with a ``Last-Event-ID``, those since first, or ``event: reset``
    when they are not at hand (the page reloads)."""
    require_sight(who, "operations")
    flt = await operation_filter(request, who.tenant, given)
    feed = operations(request).feed
    last_event_id = request.headers.get("last-event-id")
    after = feed.resume_point(last_event_id) if last_event_id else None
    subscription = Subscription(
        feed.watch(
            FeedFilter(
                who.tenant,
                device_id=flt.device_id,
                bulk_operation_id=flt.bulk_operation_id,
                statuses=frozenset(flt.statuses),
            ),
            after=after,
        )
    )
    sees_bulk, acts_bulk = who.sees("bulk"), who.can("bulk")

    async def events() -> AsyncIterator[bytes]:
        yield b": the console's live operations\n\nretry: 2000\n\n"
        if last_event_id:
            yield RESUMED if after is not None else RESET
        while True:
            try:
                change = await subscription.next(KEEPALIVE)
            except FeedOverflow:
                yield RESET
                return
            if change is None:
                yield b": keepalive\n\n"
                continue
            sequence, op = change
            if isinstance(op, BulkOperation):
                if not sees_bulk or only == "operations":
                    continue
                kind, body = "bulkOperation", bulk_event(op, acts_bulk, who.csrf)
            else:
                if only == "bulk":
                    continue
                if flt.fragment_type is not None and flt.fragment_type not in op.fragments:
                    continue
                kind, body = "operation", operation_event(op)
            data = json.dumps(body, separators=(",", ":"))
            yield f"event: {kind}\nid: {feed.event_id(sequence)}\ndata: {data}\n\n".encode()

    return EventStream(events(), subscription)

"""New device requests: register one, accept one that waits for acceptance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, render
from fleetgate.api.services import bootstrap
from fleetgate.domain.bootstrap import RequestStatus

router = APIRouter()

PAGE_SIZE = 100


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(
    request: Request, who: Annotated[Viewer, Depends(viewer)], page: int = 1
) -> Response:
    require_sight(who, "requests")
    page = max(1, page)
    items, total = await bootstrap(request).page(
        who.tenant, (page - 1) * PAGE_SIZE, PAGE_SIZE, count=True
    )
    return render(
        request,
        "requests.html",
        who,
        items=items,
        page=page,
        pages=max(1, -(-(total or 0) // PAGE_SIZE)),
        pending=RequestStatus.PENDING_ACCEPTANCE,
    )


@router.post("/requests")
async def register(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    form = await acting(request, who, "requests")
    device_id = str(form.get("id") or "").strip()
    return await attempt(
        "/requests",
        f"Request for {device_id} registered: the device may now ask for its credentials",
        bootstrap(request).register(who.tenant, {"id": device_id}),
    )


@router.post("/requests/{request_id}/accept")
async def accept(
    request: Request, request_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    await acting(request, who, "requests")
    return await attempt(
        "/requests",
        f"Request of {request_id} accepted: the device gets its credentials when it asks next",
        bootstrap(request).update(who.tenant, request_id, {"status": RequestStatus.ACCEPTED.value}),
    )

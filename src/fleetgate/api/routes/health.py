"""``/health/live`` and ``/health/ready``: the probes of Kubernetes and of load balancers.

No credentials (a probe has none), nothing cached, and in the shape of Spring Boot's
health endpoint, which Cumulocity's own microservices serve:
``{"status": "UP"|"DOWN", "components": {"<name>": {"status": …, "details": {"error": …}}}}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from fleetgate.api.openapi import access, answers
from fleetgate.api.services import health

router = APIRouter()

_NO_STORE = {"Cache-Control": "no-store"}
_OPEN = access("none: probes have no credentials")


@router.get("/health/live", openapi_extra=_OPEN, **answers(200, "application/json"))
async def live() -> JSONResponse:
    """The process answers: 200, always (whatever the database and the broker do)."""
    return JSONResponse({"status": "UP"}, headers=_NO_STORE)


@router.get(
    "/health/ready",
    openapi_extra=_OPEN,
    **answers(
        200,
        "application/json",
        others={503: {"description": "Not ready", "content": {"application/json": {}}}},
    ),
)
async def ready(request: Request) -> JSONResponse:
    """200 when the database answers and both broker connections are up, else 503."""
    readiness = await health(request).readiness()
    components: dict[str, Any] = {}
    for check in readiness.checks:
        component: dict[str, Any] = {"status": "UP" if check.up else "DOWN"}
        if not check.up:
            component["details"] = {"error": check.problem}
        components[check.name] = component
    body = {"status": "UP" if readiness.ready else "DOWN", "components": components}
    return JSONResponse(body, status_code=200 if readiness.ready else 503, headers=_NO_STORE)

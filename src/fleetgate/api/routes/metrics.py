"""``GET /metrics``: the Prometheus text exposition (docs/operations.md, "Metrics").

The fleet's gauges span every tenant, so by default only a user of the management tenant
with ``ROLE_TENANT_MANAGEMENT_READ`` or ``_ADMIN`` may read them (Prometheus sends HTTP
Basic with ``basic_auth`` in its scrape config); ``FLEETGATE_API_METRICS_AUTH=none``
opens the endpoint for a scraper on a private network (decision 0017).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from fleetgate.api.auth import context, require
from fleetgate.api.openapi import access, answers
from fleetgate.api.services import metrics
from fleetgate.domain.errors import AccessDenied
from fleetgate.domain.users import Role

router = APIRouter()

_MANAGEMENT = require(Role.TENANT_MANAGEMENT_READ, Role.TENANT_MANAGEMENT_ADMIN)


@router.get(
    "/metrics",
    openapi_extra=access(
        "HTTP Basic, a management-tenant user holding one of x-roles"
        " (FLEETGATE_API_METRICS_AUTH=none: no credentials)",
        Role.TENANT_MANAGEMENT_READ,
        Role.TENANT_MANAGEMENT_ADMIN,
    ),
    **answers(200, "text/plain; version=0.0.4"),
)
async def scrape(request: Request) -> Response:
    """The metrics in Prometheus' text format, read now."""
    if context(request).metrics_auth != "none":
        principal = await _MANAGEMENT(request)
        if not principal.tenant.is_management:
            raise AccessDenied("Access is denied: metrics are the management tenant's")
    body, content_type = await metrics(request).exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

"""``/tenant/currentTenant``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fleetgate.api import media
from fleetgate.api.auth import context, require
from fleetgate.api.openapi import answers
from fleetgate.domain.users import Principal, Role

router = APIRouter()


@router.get("/tenant/currentTenant", **answers(200, media.CURRENT_TENANT))
async def current_tenant(
    request: Request,
    principal: Annotated[Principal, Depends(require(Role.USER_MANAGEMENT_OWN_READ, Role.DEVICE))],
) -> JSONResponse:
    base = context(request).base_url
    tenant = principal.tenant
    body = {
        "name": tenant.id,
        "domainName": tenant.domain_name or tenant.id,
        "allowCreateTenants": tenant.is_management,
        "customProperties": {},
        "self": f"{base}/tenant/currentTenant",
    }
    return media.c8y_json(body, media.CURRENT_TENANT)

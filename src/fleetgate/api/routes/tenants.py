"""``/tenant/tenants``: the management tenant's administrators create, list, change,
suspend, reactivate and delete tenants (Cumulocity's tenant API, decision 0013). Anyone
else gets 403, whether the tenant exists or not."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import tenants
from fleetgate.domain.errors import AccessDenied
from fleetgate.domain.tenants import TenantRecord, read_new_tenant, read_tenant_changes
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.TENANT_MANAGEMENT_READ, Role.TENANT_MANAGEMENT_ADMIN)
_ADMIN = require(Role.TENANT_MANAGEMENT_ADMIN)


def _management(principal: Principal) -> None:
    """Every tenant administrator holds ``ROLE_TENANT_MANAGEMENT_READ``; only the management
    tenant's see other tenants."""
    if not principal.tenant.is_management:
        raise AccessDenied("Access is denied: only the management tenant manages tenants")


def tenant_body(tenant: TenantRecord, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": tenant.id,
        "self": f"{base}/tenant/tenants/{tenant.id}",
        "status": tenant.status.value,
        "creationTime": tenant.created_at.isoformat(timespec="milliseconds"),
        "allowCreateTenants": tenant.is_management,
        "customProperties": {},
    }
    for key, value in (
        ("company", tenant.company),
        ("domain", tenant.domain),
        ("contactName", tenant.contact_name),
        ("contactPhone", tenant.contact_phone),
        ("adminName", tenant.admin_name),
        ("adminEmail", tenant.admin_email),
    ):
        if value is not None:
            body[key] = value
    return body


@router.get("/tenant/tenants", **answers(200, media.TENANT_COLLECTION))
async def list_tenants(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    _management(principal)
    found, total = await tenants(request).list_tenants(page.offset, page.size, count=page.counts)
    base = context(request).base_url
    body = page.collection(request, base, "tenants", [tenant_body(t, base) for t in found], total)
    return media.c8y_json(body, media.TENANT_COLLECTION)


@router.post(
    "/tenant/tenants",
    openapi_extra=json_body(schemas.TENANT_CREATE, media.TENANT),
    **answers(201, media.TENANT, 409),
)
async def create_tenant(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """A new tenant with its administrator (``adminName``/``adminPass``) and its bootstrap
    user, whose generated password is answered once, in ``fleetgate_bootstrap``."""
    _management(principal)
    new = read_new_tenant(await json_object(request))
    created = await tenants(request).create(new)
    base = context(request).base_url
    body = tenant_body(created.tenant, base)
    body["fleetgate_bootstrap"] = {
        "userName": created.bootstrap_username,
        "password": created.bootstrap_password,
    }
    response = media.c8y_json(body, media.TENANT, status_code=201)
    response.headers["Location"] = body["self"]
    return response


@router.get("/tenant/tenants/{tenant_id}", **answers(200, media.TENANT, 404))
async def get_tenant(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    _management(principal)
    found = await tenants(request).get(tenant_id)
    return media.c8y_json(tenant_body(found, context(request).base_url), media.TENANT)


@router.put(
    "/tenant/tenants/{tenant_id}",
    openapi_extra=json_body(schemas.TENANT_UPDATE, media.TENANT),
    **answers(200, media.TENANT, 404),
)
async def update_tenant(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """Change ``company``, ``domain``, ``contactName``, ``contactPhone``, ``adminEmail``;
    ``status`` SUSPENDED / ACTIVE suspends or reactivates the tenant, live in the broker."""
    _management(principal)
    body = await json_object(request)
    service = tenants(request)
    changes = read_tenant_changes(body, await service.get(tenant_id))
    updated = await service.update(tenant_id, changes)
    return media.c8y_json(tenant_body(updated, context(request).base_url), media.TENANT)


@router.delete("/tenant/tenants/{tenant_id}", **answers(204, None, 404))
async def delete_tenant(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    """The tenant and everything it owns (decision 0013); the management tenant stays."""
    _management(principal)
    await tenants(request).delete(tenant_id)
    return Response(status_code=204)

"""``/tenant/tenants/{tenantId}/trusted-certificates``: the CAs a tenant's devices use.

Roles as Cumulocity documents them: ``ROLE_TENANT_ADMIN`` or
``ROLE_TENANT_MANAGEMENT_ADMIN``, for reading as for writing. The caller may only
address their own tenant; any other ``{tenantId}`` is a 403 whether it exists or not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import trust
from fleetgate.domain.errors import AccessDenied
from fleetgate.domain.trust import TrustedCertificate, read_only_values
from fleetgate.domain.users import Principal, Role

router = APIRouter()

#: Cumulocity documents plain JSON for this resource, not a vendor media type.
JSON = "application/json"
COLLECTION_KEY = "certificates"
#: Bodies above this are refused (413) before they are parsed.
MAX_BODY_BYTES = 10 * 1024 * 1024

_may_manage = require(Role.TENANT_ADMIN, Role.TENANT_MANAGEMENT_ADMIN)
Caller = Annotated[Principal, Depends(_may_manage)]


def _own_tenant(principal: Principal, tenant_id: str) -> str:
    if tenant_id != principal.tenant.id:
        raise AccessDenied("Access is denied: you may only manage your own tenant's certificates")
    return tenant_id


def _collection_url(base: str, tenant_id: str) -> str:
    return f"{base}/tenant/tenants/{tenant_id}/trusted-certificates"


def certificate_body(cert: TrustedCertificate, base: str) -> dict[str, Any]:
    """The Cumulocity representation of a trusted certificate."""
    return {
        "self": f"{_collection_url(base, cert.tenant_id)}/{cert.fingerprint}",
        "name": cert.name,
        "status": cert.status.value,
        "autoRegistrationEnabled": cert.auto_registration,
        **read_only_values(cert),
    }


@router.post(
    "/tenant/tenants/{tenantId}/trusted-certificates",
    openapi_extra=json_body(schemas.TRUSTED_CERTIFICATE),
    **answers(201, JSON, 409),
)
async def upload_certificate(request: Request, tenantId: str, principal: Caller) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    body = await json_object(request, MAX_BODY_BYTES)
    cert = await trust(request).upload(tenant_id, body)
    base = context(request).base_url
    return media.c8y_json(certificate_body(cert, base), JSON, status_code=201)


@router.get("/tenant/tenants/{tenantId}/trusted-certificates", **answers(200, JSON))
async def list_certificates(
    request: Request,
    tenantId: str,
    principal: Caller,
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    found = await trust(request).page(tenant_id, page.offset, page.size, with_total=page.counts)
    base = context(request).base_url
    items = [certificate_body(c, base) for c in found.items]
    return media.c8y_json(page.collection(request, base, COLLECTION_KEY, items, found.total), JSON)


@router.get(
    "/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}", **answers(200, JSON, 404)
)
async def get_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    cert = await trust(request).get(tenant_id, fingerprint.lower())
    return media.c8y_json(certificate_body(cert, context(request).base_url), JSON)


@router.put(
    "/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}",
    openapi_extra=json_body(schemas.TRUSTED_CERTIFICATE_UPDATE),
    **answers(200, JSON, 404),
)
async def update_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    body = await json_object(request, MAX_BODY_BYTES)
    cert = await trust(request).update(tenant_id, fingerprint.lower(), body)
    return media.c8y_json(certificate_body(cert, context(request).base_url), JSON)


@router.delete(
    "/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}", **answers(204, None, 404)
)
async def delete_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> Response:
    tenant_id = _own_tenant(principal, tenantId)
    await trust(request).delete(tenant_id, fingerprint.lower())
    return Response(status_code=204)

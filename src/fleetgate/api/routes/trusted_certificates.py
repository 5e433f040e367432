"""``/tenant/tenants/{tenantId}/trusted-certificates``: the CAs a tenant's devices use.

Roles as Cumulocity documents them: ``ROLE_TENANT_ADMIN`` or
``ROLE_TENANT_MANAGEMENT_ADMIN``, for reading as for writing. The caller may only
address their own tenant; any other ``{tenantId}`` is a 403 whether it exists or not.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fleetgate.api import media
from fleetgate.api.auth import context, require
from fleetgate.api.paging import Page, paging
from fleetgate.domain.errors import AccessDenied, ValidationFailed
from fleetgate.domain.trust import TrustedCertificate, iso_timestamp
from fleetgate.domain.users import Principal, Role
from fleetgate.services.trust import TrustedCertificates

router = APIRouter()

#: Cumulocity documents plain JSON for this resource, not a vendor media type.
JSON = "application/json"
COLLECTION_KEY = "certificates"
#: Bodies above this are refused (413) before they are parsed.
MAX_BODY_BYTES = 10 * 1024 * 1024

_may_manage = require(Role.TENANT_ADMIN, Role.TENANT_MANAGEMENT_ADMIN)
Caller = Annotated[Principal, Depends(_may_manage)]


def _service(request: Request) -> TrustedCertificates:
    service = request.app.state.trust
    assert isinstance(service, TrustedCertificates)
    return service


def _own_tenant(principal: Principal, tenant_id: str) -> str:
    if tenant_id != principal.tenant.id:
        raise AccessDenied("Access is denied: you may only manage your own tenant's certificates")
    return tenant_id


def _collection_url(base: str, tenant_id: str) -> str:
    return f"{base}/tenant/tenants/{tenant_id}/trusted-certificates"


def certificate_body(cert: TrustedCertificate, base: str) -> dict[str, Any]:
    """The Cumulocity representation of a trusted certificate."""
    facts = cert.facts
    return {
        "self": f"{_collection_url(base, cert.tenant_id)}/{facts.fingerprint}",
        "fingerprint": facts.fingerprint,
        "name": cert.name,
        "status": cert.status.value,
        "autoRegistrationEnabled": cert.auto_registration,
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serialNumber": facts.serial_number,
        "algorithmName": facts.algorithm_name,
        "version": facts.version,
        "notBefore": iso_timestamp(facts.not_before),
        "notAfter": iso_timestamp(facts.not_after),
        "certInPemFormat": facts.pem,
    }


async def _json_object(request: Request) -> dict[str, object]:
    """The request body as a JSON object, read with a size limit; 4xx otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise HTTPException(400, "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the request body is not valid JSON (UTF-8)") from None
    except RecursionError:
        raise HTTPException(400, "the request body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body


@router.post("/tenant/tenants/{tenantId}/trusted-certificates")
async def upload_certificate(request: Request, tenantId: str, principal: Caller) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    body = await _json_object(request)
    cert = await _service(request).upload(tenant_id, body)
    base = context(request).base_url
    return media.c8y_json(certificate_body(cert, base), JSON, status_code=201)


@router.get("/tenant/tenants/{tenantId}/trusted-certificates")
async def list_certificates(
    request: Request,
    tenantId: str,
    principal: Caller,
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    found = await _service(request).page(
        tenant_id, page.offset, page.size, with_total=page.with_total_pages
    )
    base = context(request).base_url
    items = [certificate_body(c, base) for c in found.items]
    return media.c8y_json(page.collection(request, base, COLLECTION_KEY, items, found.total), JSON)


@router.get("/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}")
async def get_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    cert = await _service(request).get(tenant_id, fingerprint.lower())
    return media.c8y_json(certificate_body(cert, context(request).base_url), JSON)


@router.put("/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}")
async def update_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> JSONResponse:
    tenant_id = _own_tenant(principal, tenantId)
    body = await _json_object(request)
    cert = await _service(request).update(tenant_id, fingerprint.lower(), body)
    return media.c8y_json(certificate_body(cert, context(request).base_url), JSON)


@router.delete("/tenant/tenants/{tenantId}/trusted-certificates/{fingerprint}", status_code=204)
async def delete_certificate(
    request: Request,
    tenantId: str,
    fingerprint: str,
    principal: Caller,
) -> Response:
    tenant_id = _own_tenant(principal, tenantId)
    await _service(request).delete(tenant_id, fingerprint.lower())
    return Response(status_code=204)

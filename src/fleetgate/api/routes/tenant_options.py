"""``/tenant/options``: a tenant's options, as Cumulocity's tenant options API. Read with
``ROLE_OPTION_MANAGEMENT_READ`` (or ``_ADMIN``), written with ``ROLE_OPTION_MANAGEMENT_ADMIN``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import tenant_options
from fleetgate.domain.tenant_options import TenantOption
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.OPTION_MANAGEMENT_READ, Role.OPTION_MANAGEMENT_ADMIN)
_ADMIN = require(Role.OPTION_MANAGEMENT_ADMIN)


def option_body(option: TenantOption, base: str) -> dict[str, Any]:
    category, key = quote(option.category, safe=""), quote(option.key, safe="")
    return {
        "self": f"{base}/tenant/options/{category}/{key}",
        "category": option.category,
        "key": option.key,
        "value": option.value,
    }


@router.get("/tenant/options", **answers(200, media.OPTION_COLLECTION))
async def list_options(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    found, total = await tenant_options(request).find(
        principal.tenant.id, page.offset, page.size, count=page.counts
    )
    base = context(request).base_url
    items = [option_body(o, base) for o in found]
    return media.c8y_json(
        page.collection(request, base, "options", items, total), media.OPTION_COLLECTION
    )


@router.post(
    "/tenant/options",
    openapi_extra=json_body(schemas.TENANT_OPTION, media.OPTION),
    **answers(200, media.OPTION),
)
async def create_option(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """Store an option; one that exists gets the new value. 200, as Cumulocity answers."""
    body = await json_object(request)
    stored = await tenant_options(request).create(principal.tenant.id, body)
    return media.c8y_json(option_body(stored, context(request).base_url), media.OPTION)


@router.get("/tenant/options/{category}", **answers(200, media.OPTION_COLLECTION))
async def category_options(
    request: Request, category: str, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    """The category's options as ``{key: value}`` (Cumulocity's shape for this request)."""
    found = await tenant_options(request).of_category(principal.tenant.id, category)
    return media.c8y_json({o.key: o.value for o in found}, media.OPTION_COLLECTION)


@router.get("/tenant/options/{category}/{key}", **answers(200, media.OPTION, 404))
async def get_option(
    request: Request, category: str, key: str, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    found = await tenant_options(request).get(principal.tenant.id, category, key)
    return media.c8y_json(option_body(found, context(request).base_url), media.OPTION)


@router.put(
    "/tenant/options/{category}/{key}",
    openapi_extra=json_body(schemas.TENANT_OPTION_UPDATE, media.OPTION),
    **answers(200, media.OPTION, 404),
)
async def update_option(
    request: Request, category: str, key: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    updated = await tenant_options(request).update(principal.tenant.id, category, key, body)
    return media.c8y_json(option_body(updated, context(request).base_url), media.OPTION)


@router.delete("/tenant/options/{category}/{key}", **answers(204, None, 404))
async def delete_option(
    request: Request, category: str, key: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await tenant_options(request).delete(principal.tenant.id, category, key)
    return Response(status_code=204)

"""``/inventory/migrations``: moving a device to another tenant with the target's
verification code (EnOS's "Migrating Devices"; fleetgate's own resource, Cumulocity has
none). Every call needs ``ROLE_TENANT_ADMIN``; a migration is seen by its source and its
target tenant only, and its code is issued to and entered by the target's administrators
only (docs/api.md "Device migrations", decision 0014)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.schemas import json_body
from fleetgate.api.services import device_migrations
from fleetgate.domain.device_migrations import Migration, MigrationStatus
from fleetgate.domain.ids import parse_id
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_ADMIN = require(Role.TENANT_ADMIN)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text: str = value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text


def migration_body(m: Migration, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(m.id),
        "self": f"{base}/inventory/migrations/{m.id}",
        "status": m.status.value,
        "sourceTenant": m.source_tenant,
        "targetTenant": m.target_tenant,
        "deviceId": None if m.object_id is None else str(m.object_id),
        "externalId": m.device_id,
        "withChildren": m.with_children,
        "requestedBy": m.requested_by,
        "creationTime": _iso(m.requested_at),
        "expiresAt": _iso(m.expires_at),
        "attempts": m.attempts,
        "attemptsLeft": m.attempts_left,
        "codeIssuedAt": _iso(m.code_issued_at),
        "codeIssuedTo": m.code_issued_to,
    }
    if m.status is not MigrationStatus.REQUESTED:
        body["finishedAt"] = _iso(m.finished_at)
        body["finishedBy"] = m.finished_by
    if m.status is MigrationStatus.CONFIRMED:
        body["movedDevices"] = list(m.moved)
    return body


@router.get("/inventory/migrations", **answers(200, media.MIGRATION_COLLECTION))
async def list_migrations(
    request: Request,
    principal: Annotated[Principal, Depends(_ADMIN)],
    page: Annotated[Page, Depends(paging)],
) -> JSONResponse:
    found, total = await device_migrations(request).find(
        principal.tenant.id, page.offset, page.size, count=page.counts
    )
    base = context(request).base_url
    items = [migration_body(m, base) for m in found]
    return media.c8y_json(
        page.collection(request, base, "migrations", items, total), media.MIGRATION_COLLECTION
    )


@router.post(
    "/inventory/migrations",
    openapi_extra=json_body(schemas.MIGRATION, media.MIGRATION),
    **answers(201, media.MIGRATION, 404, 409),
)
async def request_migration(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """The source's administrator asks to move ``deviceId`` to ``targetTenant``."""
    body = await json_object(request)
    made = await device_migrations(request).request(
        principal.tenant.id, principal.user.username, body
    )
    return media.c8y_json(migration_body(made, context(request).base_url), media.MIGRATION, 201)


@router.get("/inventory/migrations/{migration_id}", **answers(200, media.MIGRATION, 404))
async def get_migration(
    request: Request, migration_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    found = await device_migrations(request).get(
        principal.tenant.id, parse_id(migration_id, "migration")
    )
    return media.c8y_json(migration_body(found, context(request).base_url), media.MIGRATION)


@router.post(
    "/inventory/migrations/{migration_id}/code",
    **answers(201, media.MIGRATION_CODE, 404, 409),
)
async def issue_code(
    request: Request, migration_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """A new verification code for the target's administrator, shown this once."""
    migration, code = await device_migrations(request).issue_code(
        principal.tenant.id, parse_id(migration_id, "migration"), principal.user.username
    )
    body = {
        "migration": migration_body(migration, context(request).base_url),
        "code": code,
        "expiresAt": _iso(migration.expires_at),
    }
    return media.c8y_json(body, media.MIGRATION_CODE, 201)


@router.post(
    "/inventory/migrations/{migration_id}/confirmation",
    openapi_extra=json_body(schemas.MIGRATION_CODE, media.MIGRATION),
    **answers(200, media.MIGRATION, 404, 409),
)
async def confirm_migration(
    request: Request, migration_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """The target's administrator enters ``{"code"}``: the device moves."""
    body = await json_object(request)
    done = await device_migrations(request).enter_code(
        principal.tenant.id, parse_id(migration_id, "migration"), principal.user.username, body
    )
    return media.c8y_json(migration_body(done, context(request).base_url), media.MIGRATION)


@router.delete("/inventory/migrations/{migration_id}", **answers(200, media.MIGRATION, 404, 409))
async def cancel_migration(
    request: Request, migration_id: str, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    """The source withdraws the request, or the target declines it (200 with it)."""
    done = await device_migrations(request).cancel(
        principal.tenant.id, parse_id(migration_id, "migration"), principal.user.username
    )
    return media.c8y_json(migration_body(done, context(request).base_url), media.MIGRATION)

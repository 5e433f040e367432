"""``/devicecontrol/bulkoperations``: Cumulocity's bulk operations, with fleetgate's
staged rollouts (``fleetgate_Rollout``), pause and resume, and each device's state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from fleetgate.api import media, schemas
from fleetgate.api.auth import context, require
from fleetgate.api.bodies import json_object
from fleetgate.api.openapi import answers
from fleetgate.api.paging import Page, paging
from fleetgate.api.routes.operations import iso_time
from fleetgate.api.schemas import IdPath, json_body
from fleetgate.api.services import bulk_operations
from fleetgate.domain import rollouts
from fleetgate.domain.bulk_operations import (
    STATE_FRAGMENT,
    TARGETS_FRAGMENT,
    BulkFilter,
    BulkOperation,
    BulkStatus,
    Target,
    TargetState,
    general_status,
    rollout_state,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.rollout_fragment import rollout_json
from fleetgate.domain.users import Principal, Role

router = APIRouter()

_READ = require(Role.BULK_OPERATION_READ, Role.BULK_OPERATION_ADMIN)
_ADMIN = require(Role.BULK_OPERATION_ADMIN)
_PATH = "/devicecontrol/bulkoperations"


def bulk_body(bulk: BulkOperation, base: str, now: datetime | None = None) -> dict[str, Any]:
    """Cumulocity's representation, with fleetgate's rollout fragments."""
    t = bulk.tally
    body: dict[str, Any] = {
        "id": str(bulk.id),
        "self": f"{base}{_PATH}/{bulk.id}",
        "startDate": iso_time(bulk.start_date),
        "creationRamp": bulk.creation_ramp,
        "operationPrototype": bulk.prototype,
        "status": str(bulk.status),
        "generalStatus": str(general_status(bulk, now or datetime.now(UTC))),
        "progress": {
            "all": t.pending + t.executing + t.successful + t.failed,
            "pending": t.pending,
            "executing": t.executing,
            "successful": t.successful,
            "failed": t.failed,
        },
        STATE_FRAGMENT: {
            "state": rollout_state(bulk),
            "targets": bulk.targets,
            "waiting": bulk.waiting if bulk.status is not BulkStatus.DELETED else 0,
            "skipped": bulk.skipped,
            "retried": bulk.retried,
            "timedOut": t.timed_out,
        },
        "creationTime": iso_time(bulk.creation_time),
        "lastUpdated": iso_time(bulk.last_updated),
    }
    reason = bulk.paused_reason or bulk.cancel_reason
    if reason is not None:
        body[STATE_FRAGMENT]["reason"] = reason
    if bulk.group_id is not None:
        body["groupId"] = str(bulk.group_id)
    if bulk.failed_parent_id is not None:
        body["failedParentId"] = str(bulk.failed_parent_id)
    if bulk.note is not None:
        body["note"] = bulk.note
    if bulk.rollout is not None:
        body[rollouts.FRAGMENT] = rollout_json(bulk.rollout)
    if bulk.target_query is not None:
        body[TARGETS_FRAGMENT] = {"query": bulk.target_query}
    return body


def _target_body(target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {
        "deviceId": str(target.device_id),
        "state": str(target.state),
        "canary": target.canary,
        "attempts": target.attempts,
    }
    if target.operation_id is not None:
        body["operationId"] = str(target.operation_id)
    if target.status is not None:
        body["status"] = target.status
    if target.reason is not None:
        body["reason"] = target.reason
    return body


def _statuses(values: list[str]) -> tuple[BulkStatus, ...]:
    found: list[BulkStatus] = []
    for value in (v for given in values for v in given.split(",") if v):
        try:
            found.append(BulkStatus(value))
        except ValueError:
            raise ValidationFailed(
                f"status must be one of {', '.join(BulkStatus)}, not {value!r}"
            ) from None
    return tuple(found)


@router.post(
    _PATH,
    openapi_extra=json_body(schemas.BULK_OPERATION, media.BULK_OPERATION),
    **answers(201, media.BULK_OPERATION, 404),
)
async def create_bulk_operation(
    request: Request, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    bulk = await bulk_operations(request).create(principal.tenant.id, body)
    return media.c8y_json(bulk_body(bulk, context(request).base_url), media.BULK_OPERATION, 201)


@router.get(_PATH, **answers(200, media.BULK_OPERATION_COLLECTION))
async def list_bulk_operations(
    request: Request,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    status: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    found, total = await bulk_operations(request).find(
        principal.tenant.id,
        BulkFilter(_statuses(status or [])),
        page.offset,
        page.size,
        count=page.counts,
    )
    base = context(request).base_url
    body = page.collection(
        request, base, "bulkOperations", [bulk_body(b, base) for b in found], total
    )
    return media.c8y_json(body, media.BULK_OPERATION_COLLECTION)


@router.get(_PATH + "/{bulk_id}", **answers(200, media.BULK_OPERATION, 404))
async def get_bulk_operation(
    request: Request, bulk_id: IdPath, principal: Annotated[Principal, Depends(_READ)]
) -> JSONResponse:
    bulk = await bulk_operations(request).get(
        principal.tenant.id, parse_id(bulk_id, "bulk operation")
    )
    return media.c8y_json(bulk_body(bulk, context(request).base_url), media.BULK_OPERATION)


@router.put(
    _PATH + "/{bulk_id}",
    openapi_extra=json_body(schemas.BULK_OPERATION, media.BULK_OPERATION),
    **answers(200, media.BULK_OPERATION, 404, 409),
)
async def update_bulk_operation(
    request: Request, bulk_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    body = await json_object(request)
    bulk = await bulk_operations(request).update(
        principal.tenant.id, parse_id(bulk_id, "bulk operation"), body
    )
    return media.c8y_json(bulk_body(bulk, context(request).base_url), media.BULK_OPERATION)


@router.delete(_PATH + "/{bulk_id}", **answers(204, None, 404))
async def delete_bulk_operation(
    request: Request, bulk_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> Response:
    await bulk_operations(request).cancel(principal.tenant.id, parse_id(bulk_id, "bulk operation"))
    return Response(status_code=204)


async def _reason(request: Request) -> str | None:
    """An optional ``{"reason": "…"}`` body."""
    if not await request.body():
        return None
    body = await json_object(request)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed("reason must be a string")
    return reason


@router.post(_PATH + "/{bulk_id}/pause", **answers(200, media.BULK_OPERATION, 404, 409))
async def pause_bulk_operation(
    request: Request, bulk_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    reason = await _reason(request)
    bulk = await bulk_operations(request).pause(
        principal.tenant.id, parse_id(bulk_id, "bulk operation"), reason
    )
    return media.c8y_json(bulk_body(bulk, context(request).base_url), media.BULK_OPERATION)


@router.post(_PATH + "/{bulk_id}/resume", **answers(200, media.BULK_OPERATION, 404, 409))
async def resume_bulk_operation(
    request: Request, bulk_id: IdPath, principal: Annotated[Principal, Depends(_ADMIN)]
) -> JSONResponse:
    bulk = await bulk_operations(request).resume(
        principal.tenant.id, parse_id(bulk_id, "bulk operation")
    )
    return media.c8y_json(bulk_body(bulk, context(request).base_url), media.BULK_OPERATION)


@router.get(_PATH + "/{bulk_id}/targets", **answers(200, media.BULK_TARGET_COLLECTION, 404))
async def list_targets(
    request: Request,
    bulk_id: IdPath,
    principal: Annotated[Principal, Depends(_READ)],
    page: Annotated[Page, Depends(paging)],
    state: str | None = None,
) -> JSONResponse:
    wanted: TargetState | None = None
    if state is not None:
        try:
            wanted = TargetState(state)
        except ValueError:
            raise ValidationFailed(
                f"state must be one of {', '.join(TargetState)}, not {state!r}"
            ) from None
    service = bulk_operations(request)
    tenant_id, bulk = principal.tenant.id, parse_id(bulk_id, "bulk operation")
    found = await service.targets(tenant_id, bulk, wanted, page.offset, page.size)
    total = await service.count_targets(tenant_id, bulk, wanted) if page.counts else None
    base = context(request).base_url
    body = page.collection(request, base, "targets", [_target_body(t) for t in found], total)
    return media.c8y_json(body, media.BULK_TARGET_COLLECTION)

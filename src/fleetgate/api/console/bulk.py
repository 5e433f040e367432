"""Bulk operations and rollouts: progress per status, pause, resume, cancel, and a new
bulk operation installing a firmware version of the repository on a group's devices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from fleetgate.api.console.operations import firmware_command
from fleetgate.api.console.repositories import firmware_versions
from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, redirect, render
from fleetgate.api.services import bulk_operations, devices
from fleetgate.domain.bulk_operations import (
    MAX_RAMP,
    BulkFilter,
    BulkOperation,
    TargetState,
    general_status,
    rollout_state,
)
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import is_ascii_digits, parse_id
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.inventory_query import Has
from fleetgate.domain.rollout_fragment import rollout_json

router = APIRouter()

PAGE_SIZE = 25
TARGETS_PAGE = 100
#: Groups the form of a new bulk operation offers.
GROUPS_LISTED = 200


@dataclass(frozen=True, slots=True)
class Progress:
    """What a bulk operation's bars show: each status's count and share of the targets."""

    bulk: BulkOperation
    general: str
    state: str
    parts: tuple[tuple[str, int, float], ...]
    total: int

    @property
    def command(self) -> str:
        keys = [k for k in self.bulk.prototype if k.startswith("c8y_")]
        return ", ".join(keys) or "—"


def progress(bulk: BulkOperation) -> Progress:
    t = bulk.tally
    total = max(bulk.targets, 1)
    counts = (
        ("successful", t.successful),
        ("failed", t.failed),
        ("executing", t.executing),
        ("pending", t.pending),
        ("skipped", bulk.skipped),
        ("waiting", bulk.waiting),
    )
    return Progress(
        bulk=bulk,
        general=str(general_status(bulk, datetime.now(UTC))),
        state=rollout_state(bulk),
        parts=tuple((name, n, round(100 * n / total, 1)) for name, n in counts),
        total=bulk.targets,
    )


@router.get("/bulk", response_class=HTMLResponse)
async def bulk_page(
    request: Request, who: Annotated[Viewer, Depends(viewer)], page: int = 1
) -> Response:
    require_sight(who, "bulk")
    page = max(1, page)
    found, total = await bulk_operations(request).find(
        who.tenant, BulkFilter(), (page - 1) * PAGE_SIZE, PAGE_SIZE, count=True
    )
    groups: list[ManagedObject] = []
    versions = []
    if who.can("bulk"):
        groups, _ = await devices(request).find_objects(
            who.tenant,
            ObjectFilter(query=Has(("c8y_IsDeviceGroup",))),
            0,
            GROUPS_LISTED,
            count=False,
        )
        versions = await firmware_versions(request, who.tenant)
    return render(
        request,
        "bulk.html",
        who,
        items=[progress(b) for b in sorted(found, key=lambda b: -b.id)],
        page=page,
        pages=max(1, -(-(total or 0) // PAGE_SIZE)),
        groups=groups,
        versions=versions,
        max_ramp=MAX_RAMP,
    )


def _ramp(value: object) -> float:
    text = value.strip() if isinstance(value, str) else ""
    try:
        ramp = float(text)
    except ValueError:
        ramp = -1.0
    if not (0 <= ramp <= MAX_RAMP):  # NaN too
        raise ValidationFailed(
            f"The creation ramp must be a number of seconds from 0 to {MAX_RAMP:g}"
        )
    return ramp


@router.post("/bulk")
async def create_bulk(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    """A bulk operation (``POST /devicecontrol/bulkoperations``) installing a firmware
    version of the repository on a group's devices, from now, one device every ``ramp``
    seconds."""
    form = await acting(request, who, "bulk")
    group, chosen = str(form.get("group") or ""), str(form.get("version") or "")
    if not is_ascii_digits(group) or len(group) > 18:
        return redirect("/bulk", "Choose a group", error=True)
    if not is_ascii_digits(chosen) or len(chosen) > 18:
        return redirect("/bulk", "Choose a firmware version", error=True)
    try:
        ramp = _ramp(form.get("ramp"))
        command = await firmware_command(request, who.tenant, chosen)
    except (ValidationFailed, NotFound) as exc:
        return redirect("/bulk", exc.message, error=True)
    body = {
        "groupId": group,
        "startDate": datetime.now(UTC).isoformat(),
        "creationRamp": ramp,
        "operationPrototype": command,
        "note": str(command["description"]),
    }
    made: list[BulkOperation] = []

    async def create() -> None:
        made.append(await bulk_operations(request).create(who.tenant, body))

    answer = await attempt("/bulk", "", create())
    if made:
        return redirect(
            f"/bulk/{made[0].id}", f"Bulk operation {made[0].id} created: {body['note']}"
        )
    return answer


@router.get("/bulk/{bulk_id}", response_class=HTMLResponse)
async def bulk_detail(
    request: Request,
    bulk_id: str,
    who: Annotated[Viewer, Depends(viewer)],
    state: str = "",
    page: int = 1,
) -> Response:
    """One bulk operation: its progress and each device's state (created, waiting,
    skipped with the reason, cancelled) with its operation."""
    require_sight(who, "bulk")
    page = max(1, page)
    number = parse_id(bulk_id, "bulk operation")
    service = bulk_operations(request)
    bulk = await service.get(who.tenant, number)
    wanted = None
    if state:
        try:
            wanted = TargetState(state)
        except ValueError:
            raise ValidationFailed(f"state must be one of {', '.join(TargetState)}") from None
    targets = await service.targets(
        who.tenant, number, wanted, (page - 1) * TARGETS_PAGE, TARGETS_PAGE + 1
    )
    return render(
        request,
        "bulk_detail.html",
        who,
        p=progress(bulk),
        rollout=rollout_json(bulk.rollout) if bulk.rollout is not None else None,
        targets=targets[:TARGETS_PAGE],
        states=list(TargetState),
        state=state,
        page=page,
        pages=page + 1 if len(targets) > TARGETS_PAGE else page,
    )


@router.post("/bulk/{bulk_id}/{action}")
async def bulk_action(
    request: Request, bulk_id: str, action: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    form = await acting(request, who, "bulk")
    number = parse_id(bulk_id, "bulk operation")
    reason = str(form.get("reason") or "").strip() or None
    service = bulk_operations(request)
    back = str(form.get("back") or "/bulk")
    if not back.startswith("/") or back.startswith("//"):
        back = "/bulk"
    if action == "pause":
        return await attempt(
            back, f"Bulk operation {number} paused", service.pause(who.tenant, number, reason)
        )
    if action == "resume":
        return await attempt(
            back, f"Bulk operation {number} resumed", service.resume(who.tenant, number)
        )
    if action == "cancel":
        return await attempt(
            back, f"Bulk operation {number} cancelled", service.cancel(who.tenant, number, reason)
        )
    raise NotFound(f"no action {action!r} on a bulk operation")

"""Devices: the list with lifecycle status and filters, a device's detail (inventory,
firmware / software / configuration, operations), a gateway's children as a tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from fleetgate.api.console.repositories import firmware_versions
from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.traces import MAX_SECONDS, running_trace, traceable
from fleetgate.api.console.views import attempt, redirect, render
from fleetgate.api.services import credentials, devices, enablement, operations, services_of
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.inventory_query import Compare, Has, all_of
from fleetgate.domain.lifecycle import DISABLED, LifecycleStatus, devices_in
from fleetgate.domain.operations import Operation, OperationFilter
from fleetgate.services.credentials import CredentialsView
from fleetgate.services.devices import Devices

router = APIRouter()

PAGE_SIZE = 50
#: How deep a gateway's tree is shown (gateways of gateways are possible, not common).
TREE_DEPTH = 3
#: Children shown under one node of the tree.
TREE_WIDTH = 500


@dataclass(frozen=True, slots=True)
class Node:
    device: ManagedObject
    children: tuple[Node, ...]
    more: bool


def lifecycle_of(device: ManagedObject) -> str:
    found = device.fragments.get("fleetgate_Lifecycle")
    return str(found.get("status", "")) if isinstance(found, dict) else ""


def disabled_itself(device: ManagedObject) -> bool:
    """Whether an operator disabled this very device (not only its gateway)."""
    found = device.fragments.get("fleetgate_Lifecycle")
    return isinstance(found, dict) and found.get("reason") == DISABLED


def serial_of(device: ManagedObject) -> str:
    found = device.fragments.get("c8y_Hardware")
    serial = found.get("serialNumber") if isinstance(found, dict) else None
    return str(serial or device.name or device.id)


@router.get("/devices", response_class=HTMLResponse)
async def devices_page(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    lifecycle: str = "",
    type: str = "",
    name: str = "",
    gateways: str = "",
    page: int = 1,
) -> Response:
    require_sight(who, "inventory")
    page = max(1, page)
    error = None
    found: list[ManagedObject] = []
    total: int | None = 0
    status = None
    if lifecycle:
        try:
            status = LifecycleStatus(lifecycle)
        except ValueError:
            error = f"lifecycle must be one of {', '.join(LifecycleStatus)}"
    where = all_of(
        devices_in(status) if status is not None else Has(("c8y_IsDevice",)),
        Compare(("name",), "eq", f"*{name.strip()}*") if name.strip() else None,
    )
    flt = ObjectFilter(
        type=type.strip() or None,
        query=where,
        has_child_devices=True if gateways == "only" else None,
    )
    if error is None:
        found, total = await devices(request).find_objects(
            who.tenant, flt, (page - 1) * PAGE_SIZE, PAGE_SIZE, count=True
        )
    references = (
        await devices(request).references_of_page(who.tenant, [d.id for d in found], children=True)
        if found
        else {}
    )
    children = {
        object_id: sum(1 for r in refs if r.kind == "childDevices")
        for object_id, refs in references.items()
    }
    counts = await devices(request).lifecycle_counts(who.tenant)
    return render(
        request,
        "devices.html",
        who,
        devices=found,
        total=total,
        page=page,
        pages=max(1, -(-(total or 0) // PAGE_SIZE)),
        filters={"lifecycle": lifecycle, "type": type, "name": name, "gateways": gateways},
        statuses=list(LifecycleStatus),
        counts=counts,
        children=children,
        lifecycle_of=lifecycle_of,
        error=error,
    )


async def tree(service: Devices, tenant_id: str, device: ManagedObject, depth: int) -> Node:
    """The device and its child devices, ``depth`` levels down."""
    if depth == 0:
        return Node(device, (), False)
    children, total = await service.children(
        tenant_id, device.id, "childDevices", 0, TREE_WIDTH, count=True
    )
    nodes = tuple([await tree(service, tenant_id, c, depth - 1) for c in children])
    return Node(device, nodes, (total or 0) > len(children))


def _software(device: ManagedObject) -> list[dict[str, Any]]:
    found = device.fragments.get("c8y_SoftwareList")
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def _configurations(device: ManagedObject) -> dict[str, Any]:
    prefix = "c8y_Configuration_"
    return {k.removeprefix(prefix): v for k, v in device.fragments.items() if k.startswith(prefix)}


@router.get("/devices/{device_id}", response_class=HTMLResponse)
async def device_page(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    require_sight(who, "inventory")
    service = devices(request)
    device = await service.get_object(who.tenant, parse_id(device_id, "device"))
    if not device.is_device:
        raise ValidationFailed(f"managed object {device.id} is not a device")
    references = await service.references_of(who.tenant, device.id)
    parents = [r for r in references if r.kind == "deviceParents"]
    node = await tree(service, who.tenant, device, TREE_DEPTH)
    ops: list[Operation] = []
    if who.sees("operations"):
        ops, _ = await operations(request).find(
            who.tenant, OperationFilter(device_id=device.id), 0, 25, revert=True, count=False
        )
    versions = await firmware_versions(request, who.tenant) if who.can("operations") else []
    access = await _credentials_of(request, who, device.id)
    trace = await running_trace(request, who, device.id)
    return render(
        request,
        "device.html",
        who,
        device=device,
        lifecycle=lifecycle_of(device),
        disabled=disabled_itself(device),
        parents=parents,
        tree=node,
        operations=ops,
        firmware=device.fragments.get("c8y_Firmware"),
        software=_software(device),
        configurations=_configurations(device),
        versions=versions,
        lifecycle_of=lifecycle_of,
        access=access,
        trace=trace,
        traceable=traceable(request, who),
        max_seconds=MAX_SECONDS,
    )


async def _credentials_of(request: Request, who: Viewer, object_id: int) -> CredentialsView | None:
    """The device's credentials view (what ``GET …/credentials`` answers), for the viewers
    the REST API shows it to (device control admins); None for a device that does not
    connect (no ``c8y_Serial``)."""
    if not who.can("operations") or services_of(request.app).credentials is None:
        return None
    try:
        return await credentials(request).view(who.tenant, object_id)
    except NotFound:
        return None


@router.post("/devices/{device_id}/secret", response_class=HTMLResponse)
async def regenerate_secret(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """A new secret for a password device (``POST …/credentials/secret`` of the REST API):
    the page that answers shows it this once and is never cached; it is not a redirect,
    so the password is in no cookie and no URL."""
    await acting(request, who, "operations")
    object_id = parse_id(device_id, "device")
    try:
        password, at = await credentials(request).regenerate(who.tenant, object_id, who.name)
    except (ValidationFailed, NotFound) as exc:
        return redirect(f"/devices/{object_id}", exc.message, error=True)
    response = render(request, "secret.html", who, object_id=object_id, password=password, at=at)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/devices/{device_id}/{switch}")
async def switch_device(
    request: Request, device_id: str, switch: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """Disable or enable the device (``POST …/disable``, ``…/enable`` of the REST API)."""
    await acting(request, who, "inventory")
    object_id = parse_id(device_id, "device")
    back = f"/devices/{object_id}"
    if switch == "disable":
        return await attempt(
            back,
            "Device disabled: it may not log in and its operations wait",
            enablement(request).disable(who.tenant, object_id),
        )
    if switch == "enable":
        return await attempt(
            back,
            "Device enabled: it may log in again and its waiting operations are sent",
            enablement(request).enable(who.tenant, object_id),
        )
    raise NotFound(f"no switch {switch!r} on a device")

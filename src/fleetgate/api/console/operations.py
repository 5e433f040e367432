"""Operations: the live table with its filters, one operation's detail, and creating a
firmware operation for a device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, redirect, render
from fleetgate.api.services import devices, operations
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import is_ascii_digits, parse_id
from fleetgate.domain.operations import Operation, OperationFilter, Status
from fleetgate.services.devices import Devices

router = APIRouter()

PAGE_SIZE = 50
DEVICE_ID_TYPE = "c8y_Serial"


@dataclass(frozen=True, slots=True)
class Filters:
    """The operations table's filters, as the form and the live stream both read them."""

    device: str = ""
    status: str = ""
    type: str = ""
    bulk: str = ""

    @property
    def query(self) -> str:
        """The filters as a query string (for the stream and the pages' links)."""
        pairs = [(k, getattr(self, k)) for k in ("device", "status", "type", "bulk")]
        return urlencode([(k, v) for k, v in pairs if v])


def filters(device: str = "", status: str = "", type: str = "", bulk: str = "") -> Filters:
    return Filters(device.strip(), status.strip(), type.strip(), bulk.strip())


async def device_object_id(service: Devices, tenant_id: str, given: str) -> int:
    """A device named by its managed object id or by its device id (``c8y_Serial``)."""
    if is_ascii_digits(given):
        return parse_id(given, "device")
    try:
        return (await service.get_external_id(tenant_id, DEVICE_ID_TYPE, given)).managed_object_id
    except NotFound:
        raise ValidationFailed(f"no device has the id {given!r}") from None


async def operation_filter(request: Request, tenant_id: str, given: Filters) -> OperationFilter:
    status: tuple[Status, ...] = ()
    if given.status:
        try:
            status = (Status(given.status),)
        except ValueError:
            raise ValidationFailed(f"status must be one of {', '.join(Status)}") from None
    return OperationFilter(
        device_id=await device_object_id(devices(request), tenant_id, given.device)
        if given.device
        else None,
        statuses=status,
        fragment_type=given.type or None,
        bulk_operation_id=parse_id(given.bulk, "bulk operation") if given.bulk else None,
    )


#: The operation types an operator filters by (any other can be typed in).
KNOWN_TYPES = (
    "c8y_Firmware",
    "c8y_SoftwareUpdate",
    "c8y_DownloadConfigFile",
    "c8y_UploadConfigFile",
    "c8y_DeviceProfile",
    "c8y_Restart",
)


@router.get("/operations", response_class=HTMLResponse)
async def operations_page(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    given: Annotated[Filters, Depends(filters)],
    page: int = 1,
) -> Response:
    require_sight(who, "operations")
    page = max(1, page)
    error = None
    found: list[Operation] = []
    total: int | None = 0
    try:
        flt = await operation_filter(request, who.tenant, given)
        found, total = await operations(request).find(
            who.tenant, flt, (page - 1) * PAGE_SIZE, PAGE_SIZE, revert=True, count=True
        )
    except ValidationFailed as exc:
        error = exc.message
    return render(
        request,
        "operations.html",
        who,
        operations=found,
        total=total,
        page=page,
        pages=max(1, -(-(total or 0) // PAGE_SIZE)),
        filters=given,
        statuses=list(Status),
        types=KNOWN_TYPES,
        error=error,
    )


@router.get("/operations/{operation_id}", response_class=HTMLResponse)
async def operation_page(
    request: Request, operation_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    require_sight(who, "operations")
    op = await operations(request).get(who.tenant, parse_id(operation_id, "operation"))
    return render(request, "operation.html", who, op=op)


async def firmware_command(request: Request, tenant_id: str, chosen: str) -> dict[str, Any]:
    """The ``c8y_Firmware`` command (with its description) installing the repository's
    version ``chosen`` (the id of the version's managed object); NotFound when it is not
    one."""
    service = devices(request)
    try:
        version = await service.get_object(tenant_id, parse_id(chosen, "firmware version"))
        parents = [r for r in await service.references_of(tenant_id, version.id)]
        firmware_id = next(r.object_id for r in parents if r.kind == "additionParents")
        firmware = await service.get_object(tenant_id, firmware_id)
    except (NotFound, StopIteration):
        raise NotFound("That firmware version is not in the repository") from None
    fields = version.fragments.get("c8y_Firmware") or {}
    return {
        "description": f"Update firmware to {firmware.name} {fields.get('version')}",
        "c8y_Firmware": {
            "name": firmware.name,
            "version": fields.get("version"),
            "url": fields.get("url"),
        },
    }


@router.post("/devices/{device_id}/firmware")
async def install_firmware(
    request: Request, device_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """A ``c8y_Firmware`` operation for the device, from a version of the repository
    (``version`` names the version's managed object)."""
    form = await acting(request, who, "operations")
    object_id = parse_id(device_id, "device")
    back = f"/devices/{object_id}"
    chosen = str(form.get("version") or "")
    if not is_ascii_digits(chosen):
        return redirect(back, "Choose a firmware version", error=True)
    try:
        command = await firmware_command(request, who.tenant, chosen)
    except NotFound as exc:
        return redirect(back, exc.message, error=True)
    description = str(command["description"])
    body = {"deviceId": str(object_id), **command}
    created: list[Operation] = []

    async def create() -> None:
        created.append(await operations(request).create(who.tenant, body))

    answer = await attempt(back, "", create())
    if created:
        made = created[0]
        return redirect(f"/operations/{made.id}", f"Operation {made.id} created: {description}")
    return answer

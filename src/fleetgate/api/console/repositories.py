"""The firmware repository (upload a file as a new version) and device profiles (create
one from a firmware version)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from fleetgate.api.auth import context
from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, redirect, render
from fleetgate.api.services import binaries, devices
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.ids import is_ascii_digits, parse_id
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.inventory_query import Compare

router = APIRouter()

#: Firmware entries (and versions of each) the pages list.
LISTED = 200
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    firmware: str
    version: str
    url: str
    device_type: str | None


def _device_type(obj: ManagedObject) -> str | None:
    found = obj.fragments.get("c8y_Filter")
    value = found.get("type") if isinstance(found, dict) else None
    return str(value) if value else None


async def firmware_versions(request: Request, tenant_id: str) -> list[Version]:
    """Every version of the firmware repository (at most :data:`LISTED` of each)."""
    service = devices(request)
    entries, _ = await service.find_objects(
        tenant_id, ObjectFilter(type="c8y_Firmware"), 0, LISTED, count=False
    )
    found: list[Version] = []
    for entry in sorted(entries, key=lambda e: e.name or ""):
        children, _ = await service.children(
            tenant_id, entry.id, "childAdditions", 0, LISTED, count=False
        )
        for child in children:
            fields = child.fragments.get("c8y_Firmware")
            if child.type == "c8y_FirmwareBinary" and isinstance(fields, dict):
                found.append(
                    Version(
                        child.id,
                        entry.name or "",
                        str(fields.get("version", "")),
                        str(fields.get("url", "")),
                        _device_type(entry),
                    )
                )
    return found


@router.get("/repositories", response_class=HTMLResponse)
async def repositories_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    require_sight(who, "inventory")
    profiles, _ = await devices(request).find_objects(
        who.tenant, ObjectFilter(type="c8y_Profile"), 0, LISTED, count=False
    )
    return render(
        request,
        "repositories.html",
        who,
        versions=await firmware_versions(request, who.tenant),
        profiles=profiles,
    )


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


def _text(form: Any, name: str, label: str, *, required: bool = True) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise ValidationFailed(f"{label} is required")
    return text


@router.post("/repositories/firmware")
async def upload_firmware(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    """A firmware file: stored as a binary, then a version of the firmware entry of that
    name (made when it does not exist yet), as Cumulocity's repository keeps it."""
    form = await acting(request, who, "inventory")
    back = "/repositories"
    try:
        name = _text(form, "name", "The firmware name")
        version = _text(form, "version", "The version")
        device_type = _text(form, "deviceType", "", required=False)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise ValidationFailed("Choose the firmware file")
    except ValidationFailed as exc:
        return redirect(back, exc.message, error=True)

    async def store() -> None:
        binary = await binaries(request).store(
            who.tenant,
            name=upload.filename or name,
            content_type=upload.content_type or "application/octet-stream",
            chunks=_chunks(upload),
            owner=who.name,
        )
        service = devices(request)
        entries, _ = await service.find_objects(
            who.tenant,
            ObjectFilter(type="c8y_Firmware", query=Compare(("name",), "eq", name)),
            0,
            1,
            count=False,
        )
        if entries:
            entry = entries[0]
        else:
            body: dict[str, Any] = {"name": name, "type": "c8y_Firmware", "c8y_Filter": {}}
            if device_type:
                body["c8y_Filter"] = {"type": device_type}
            entry = await service.create_object(who.tenant, body)
        url = f"{context(request).base_url}/inventory/binaries/{binary.id}"
        await service.create_child_addition(
            who.tenant,
            entry.id,
            {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": version, "url": url}},
        )

    return await attempt(back, f"Firmware {name} {version} uploaded", store())


@router.post("/repositories/profiles")
async def create_profile(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    """A device profile of one firmware version (its software and configuration are
    added over the REST API or later versions of this page)."""
    form = await acting(request, who, "inventory")
    back = "/repositories"
    try:
        name = _text(form, "name", "The profile name")
        device_type = _text(form, "deviceType", "", required=False)
        chosen = _text(form, "version", "", required=False)
        body: dict[str, Any] = {
            "name": name,
            "type": "c8y_Profile",
            "c8y_Filter": {"type": device_type} if device_type else {},
            "c8y_DeviceProfile": {},
        }
        if chosen:
            if not is_ascii_digits(chosen):
                raise ValidationFailed("Choose a firmware version of the repository")
            version = next(
                (v for v in await firmware_versions(request, who.tenant) if v.id == int(chosen)),
                None,
            )
            if version is None:
                raise NotFound(f"firmware version {parse_id(chosen)} is not in the repository")
            body["c8y_DeviceProfile"]["firmware"] = {
                "name": version.firmware,
                "version": version.version,
                "url": version.url,
            }
    except (ValidationFailed, NotFound) as exc:
        return redirect(back, exc.message, error=True)
    return await attempt(
        back, f"Profile {name} created", devices(request).create_object(who.tenant, body)
    )

"""Trusted certificates: upload a CA's PEM, enable or disable it, switch its devices'
auto-registration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from fleetgate.api.console.session import Viewer, acting, require_sight, viewer
from fleetgate.api.console.views import attempt, redirect, render
from fleetgate.api.services import trust

router = APIRouter()

PAGE_SIZE = 200
#: A PEM file is small; anything larger is not one CA certificate.
MAX_PEM = 64 * 1024


@router.get("/certificates", response_class=HTMLResponse)
async def certificates_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    require_sight(who, "trust")
    found = await trust(request).page(who.tenant, 0, PAGE_SIZE)
    return render(request, "certificates.html", who, certificates=found.items)


@router.post("/certificates")
async def upload(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    form = await acting(request, who, "trust")
    back = "/certificates"
    pem = str(form.get("pem") or "").strip()
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_PEM + 1)
        if len(raw) > MAX_PEM:
            return redirect(back, "The file is larger than a CA certificate can be", error=True)
        pem = raw.decode("utf-8", "replace").strip()
    if not pem:
        return redirect(back, "Choose a PEM file or paste the certificate", error=True)
    body: dict[str, Any] = {
        "certInPemFormat": pem,
        "status": "ENABLED" if form.get("enabled") else "DISABLED",
        "autoRegistrationEnabled": bool(form.get("autoRegistration")),
    }
    name = str(form.get("name") or "").strip()
    if name:
        body["name"] = name
    return await attempt(back, "Certificate uploaded", trust(request).upload(who.tenant, body))


@router.post("/certificates/{fingerprint}")
async def change(
    request: Request, fingerprint: str, who: Annotated[Viewer, Depends(viewer)]
) -> Response:
    """One switch: ``status`` (ENABLED / DISABLED) or ``autoRegistration`` (on / off)."""
    form = await acting(request, who, "trust")
    changes: dict[str, Any] = {}
    status = form.get("status")
    if status in ("ENABLED", "DISABLED"):
        changes["status"] = status
    auto = form.get("autoRegistration")
    if auto in ("on", "off"):
        changes["autoRegistrationEnabled"] = auto == "on"
    if not changes:
        return redirect("/certificates", "Nothing to change", error=True)
    return await attempt(
        "/certificates",
        "Certificate updated",
        trust(request).update(who.tenant, fingerprint, changes),
    )

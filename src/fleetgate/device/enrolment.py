"""Enrolling simulated devices: a device CA, trusted with auto-registration, and one
certificate per device.

Everything is kept in a state directory and made once: ``ca.crt``/``ca.key`` and
``devices/<id>.crt``/``<id>.key``. A new CA means new device certificates (the directory
of the old ones is emptied). fleetgate registers each device at its first connection
because the CA allows auto-registration.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from fleetgate.device.client import CertificateLogin
from fleetgate.domain.errors import ConfigurationError
from fleetgate.pki import Issued, generate_ca, issue_client_certificate, load_issued

__all__ = [
    "StackAccount",
    "StackInfo",
    "ensure_device_certificates",
    "ensure_fleet_ca",
    "load_stack",
    "trust_fleet_ca",
]

CA_NAME = "fleetgate simulator CA"


class StackAccount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant: str
    username: str
    password: str


class StackInfo(BaseModel):
    """The parts of ``stack.json`` (written by ``fleetgate up``) that the simulator uses."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    api_url: str
    mqtt_host: str
    mqtt_cert_port: int
    ca_file: Path
    admin: StackAccount


def load_stack(path: Path) -> StackInfo:
    try:
        return StackInfo.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"{path} does not exist: is `fleetgate up` running?") from None
    except (OSError, ValidationError) as exc:
        raise ConfigurationError(f"{path} is not a usable stack.json: {exc}") from None


def ensure_fleet_ca(state_dir: Path) -> Issued:
    """The simulator's device CA in ``state_dir``, created on first use (blocking I/O)."""
    cert, key = state_dir / "ca.crt", state_dir / "ca.key"
    if cert.exists() and key.exists():
        return load_issued(cert, key)
    state_dir.mkdir(parents=True, exist_ok=True)
    # A name of its own: fleetgate refuses a second trusted CA of a subject it holds (the
    # broker's TLS could not tell them apart), and simulators of other tenants or state
    # directories have CAs of their own.
    ca = generate_ca(f"{CA_NAME} {secrets.token_hex(4)}")
    shutil.rmtree(state_dir / "devices", ignore_errors=True)  # issued by a CA now gone
    ca.write(cert, key)
    return ca


def ensure_device_certificates(
    state_dir: Path, ca: Issued, device_ids: Sequence[str]
) -> dict[str, CertificateLogin]:
    """A certificate (CN = id) for every device, issued by ``ca`` when missing (blocking)."""
    directory = state_dir / "devices"
    directory.mkdir(parents=True, exist_ok=True)
    logins = {}
    for device_id in device_ids:
        login = CertificateLogin(directory / f"{device_id}.crt", directory / f"{device_id}.key")
        if not (login.cert_file.exists() and login.key_file.exists()):
            issue_client_certificate(ca, device_id).write(login.cert_file, login.key_file)
        logins[device_id] = login
    return logins


async def trust_fleet_ca(stack: StackInfo, ca: Issued, http: httpx.AsyncClient) -> bool:
    """Upload ``ca`` as a trusted certificate with auto-registration; False when it was
    there already (409)."""
    admin = stack.admin
    url = f"{stack.api_url.rstrip('/')}/tenant/tenants/{admin.tenant}/trusted-certificates"
    body = {
        "name": ca.certificate.subject.rfc4514_string().removeprefix("CN="),
        "certInPemFormat": ca.cert_pem().decode(),
        "status": "ENABLED",
        "autoRegistrationEnabled": True,
    }
    try:
        response = await http.post(
            url, json=body, auth=(f"{admin.tenant}/{admin.username}", admin.password)
        )
    except httpx.HTTPError as exc:
        raise ConfigurationError(f"cannot reach fleetgate's API at {stack.api_url}: {exc}") from exc
    if response.status_code == 409 and "already uploaded" in response.text:
        return False
    if response.status_code != 201:
        raise ConfigurationError(
            f"fleetgate refused the simulator's CA: HTTP {response.status_code} {response.text}"
        )
    return True

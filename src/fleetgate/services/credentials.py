"""A device's credentials view and the regeneration of a password device's secret
(EnOS's "device triple"; docs/api.md, "Device credentials view").

fleetgate keeps only password hashes, so the view cannot show a secret: it shows what a
device needs to connect — tenant, MQTT user name, client id, the listener, the broker's
CA — and, for a certificate device, the CA its certificate was issued by. A password
device's secret can be **regenerated**: the new password is returned once, the hash
replaces the old one in the same transaction that records who did it, and the broker is
told the new account at once, which kicks the live session (the plugin re-validates a
session whose account changed hash; docs/decisions/0003).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import NO_PASSWORD, ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.passwords import generate_secret, hash_password
from fleetgate.domain.trust import TrustedCertificate
from fleetgate.domain.users import User
from fleetgate.services.broker import device_lines
from fleetgate.services.ports import BrokerPush

#: Random bytes of a regenerated secret (256 bits; URL-safe base64 in the answer).
SECRET_LENGTH = 32
#: scrypt cost of a generated secret, as the bootstrap's generated passwords: a random
#: 256-bit secret needs no memory-hard hashing against guessing, and the broker verifies it
#: at the device's first CONNECT on its single thread.
GENERATED_LOG2_N = 10


def _hash_generated(password: str) -> str:
    return hash_password(password, log2_n=GENERATED_LOG2_N)


class CredentialStore(Protocol):
    async def device_of(self, tenant_id: str, object_id: int) -> str | None: ...

    async def device_user(self, tenant_id: str, device_id: str) -> User | None: ...

    async def regenerate_secret(
        self, tenant_id: str, object_id: int, device_id: str, password_hash: str, by: str
    ) -> tuple[User, datetime, bool] | None: ...

    async def regenerations(self, tenant_id: str, object_id: int) -> list[tuple[str, datetime]]: ...


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """Where devices connect: the two device listeners and the CA that signs the broker's
    server certificate (PEM; None when the service was not told where it is)."""

    certificate: Listener
    password: Listener
    ca_pem: str | None


@dataclass(frozen=True, slots=True)
class CredentialsView:
    object_id: int
    tenant_id: str
    device_id: str
    #: "PASSWORD", "CERTIFICATE" or "NONE" (no device user: it has never connected and
    #: was given no password).
    authentication: str
    username: str | None
    enabled: bool | None
    listener: Listener
    ca_pem: str | None
    #: The CA that issued its certificate, when it registered through one.
    issuer: TrustedCertificate | None
    issuer_fingerprint: str | None
    regenerations: list[tuple[str, datetime]]


ObjectLookup = Callable[[str, int], Awaitable[ManagedObject]]
CaLookup = Callable[[str, str], Awaitable[TrustedCertificate | None]]


def _no_device(object_id: int) -> NotFound:
    return NotFound(
        f"Finding device data from database failed : No managedObject for id '{object_id}'"
        " that connects (no c8y_Serial)!",
        code="inventory/Not Found",
    )


class DeviceCredentials:
    def __init__(
        self,
        store: CredentialStore,
        objects: ObjectLookup,
        cas: CaLookup,
        broker: BrokerPush,
        access: BrokerAccess,
        *,
        hasher: Callable[[str], str] = _hash_generated,
    ) -> None:
        self._store = store
        self._objects = objects
        self._cas = cas
        self._broker = broker
        self._access = access
        self._hasher = hasher

    async def view(self, tenant_id: str, object_id: int) -> CredentialsView:
        obj = await self._objects(tenant_id, object_id)  # NotFound for another tenant's
        device_id = await self._store.device_of(tenant_id, object_id)
        if device_id is None:
            raise _no_device(object_id)
        user = await self._store.device_user(tenant_id, device_id)
        fingerprint = _issuer_fingerprint(obj)
        if user is not None and user.password_hash != NO_PASSWORD:
            kind, listener = "PASSWORD", self._access.password
            username: str | None = control.device_username(tenant_id, device_id)
        elif user is not None or fingerprint is not None:
            kind, listener, username = "CERTIFICATE", self._access.certificate, None
        else:
            kind, listener, username = "NONE", self._access.certificate, None
        issuer = await self._cas(tenant_id, fingerprint) if fingerprint else None
        return CredentialsView(
            object_id=object_id,
            tenant_id=tenant_id,
            device_id=device_id,
            authentication=kind,
            username=username,
            enabled=None if user is None else user.enabled,
            listener=listener,
            ca_pem=self._access.ca_pem,
            issuer=issuer,
            issuer_fingerprint=fingerprint,
            regenerations=await self._store.regenerations(tenant_id, object_id),
        )

    async def regenerate(self, tenant_id: str, object_id: int, by: str) -> tuple[str, datetime]:
        """A new secret for the password device ``object_id``: (the password, shown only
        now; when it was made). The old one stops working and the live session is kicked."""
        await self._objects(tenant_id, object_id)
        device_id = await self._store.device_of(tenant_id, object_id)
        if device_id is None:
            raise _no_device(object_id)
        password = generate_secret(SECRET_LENGTH)
        hashed = await asyncio.to_thread(self._hasher, password)
        done = await self._store.regenerate_secret(tenant_id, object_id, device_id, hashed, by)
        if done is None:
            raise ValidationFailed(
                f"Device {object_id} ({device_id}) has no password to regenerate: it logs in"
                " with a certificate, or has no login yet"
            )
        user, at, device_disabled = done
        # The new hash kicks the live session; a disabled device (or user) gets no account.
        await self._broker.push(device_lines(user, device_disabled))
        return password, at


def _issuer_fingerprint(obj: ManagedObject) -> str | None:
    authority = obj.fragments.get("fleetgate_CertificateAuthority")
    if isinstance(authority, dict) and isinstance(authority.get("fingerprint"), str):
        return str(authority["fingerprint"])
    return None

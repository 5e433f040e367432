"""The small interfaces the services need from the outside world."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from fleetgate.domain.trust import TrustedCertificate
from fleetgate.domain.users import Role, Tenant, User

#: Tells a failure worth retrying (the database away) from one that would fail again.
TransientCheck = Callable[[BaseException], bool]


class Publisher(Protocol):
    """Publishes to devices (the device link): QoS 1, waits only for room."""

    async def publish(self, topic: str, payload: bytes) -> None: ...


class UserStore(Protocol):
    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None: ...

    async def users_with_role(self, role: Role) -> list[User]: ...

    async def ensure_tenant(self, tenant: Tenant) -> bool: ...

    async def ensure_user(
        self, tenant_id: str, username: str, password_hash: str, roles: Iterable[Role]
    ) -> bool: ...


class BrokerPush(Protocol):
    """The broker plugin's state, as the service changes it (see services/broker.py)."""

    async def push(self, lines: list[str]) -> None:
        """Apply these control lines now (if the broker is reachable; a resync follows)."""

    async def resync(self) -> None:
        """Push the whole state again, atomically (after changes too broad for lines)."""

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        """Make the broker drop what it keeps for these client ids (subscriptions, queued
        messages), closing their live connections; the ids it was done for (none while
        the broker is unreachable)."""


class ReleasedDeviceIds(Protocol):
    """Device ids that lost their device, whose broker sessions are still to discard."""

    async def released(self, limit: int) -> list[str]: ...

    async def discarded(self, device_ids: list[str]) -> None: ...


class TrustStore(Protocol):
    """The trusted certificates of every tenant (see db/trust.py)."""

    async def add(self, cert: TrustedCertificate) -> TrustedCertificate:
        """Store a new certificate; ``Conflict`` when its fingerprint is already stored."""

    async def get(self, tenant_id: str, fingerprint: str) -> TrustedCertificate | None: ...

    async def list_certificates(
        self, tenant_id: str, offset: int, limit: int
    ) -> list[TrustedCertificate]: ...

    async def count(self, tenant_id: str) -> int: ...

    async def update(self, cert: TrustedCertificate) -> TrustedCertificate | None:
        """Write name, status and auto-registration; None when the certificate is gone."""

    async def delete(self, tenant_id: str, fingerprint: str) -> bool: ...

    async def all_certificates(self) -> list[TrustedCertificate]: ...


class BrokerChanges(Protocol):
    """Tells the broker side that a tenant's trusted certificates changed (committed)."""

    async def trust_changed(self, tenant_id: str) -> None:
        """Rewrite the broker's CA directory and push the tenant's CA lines."""

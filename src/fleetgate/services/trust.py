"""Use cases of the trusted-certificate store.

Every committed add, update and delete is followed by exactly one
:meth:`BrokerChanges.trust_changed` call for the tenant; a refused request makes none.
The decisions (which certificates are acceptable, which fields may change) are the
domain's (:mod:`fleetgate.domain.trust`); this layer only sequences them with the store
and the broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import NotFound
from fleetgate.domain.trust import (
    TrustedCertificate,
    apply_update,
    certificate_from_upload,
)
from fleetgate.services.ports import BrokerChanges, TrustStore


def broker_lines(certs: Iterable[TrustedCertificate]) -> list[str]:
    """The plugin's control lines describing ``certs`` (one ``ca`` line each)."""
    return [
        control.ca(
            cert.fingerprint,
            cert.tenant_id,
            cert.enabled,
            cert.auto_registration,
            cert.facts.der,
        )
        for cert in certs
    ]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CertificatePage:
    items: list[TrustedCertificate]
    #: Only when asked for (``withTotalPages``): it costs a count.
    total: int | None


def _not_found(fingerprint: str) -> NotFound:
    return NotFound(f"Certificate with fingerprint {fingerprint} not found")


class TrustedCertificates:
    """Upload, list, edit and delete a tenant's trusted CA certificates."""

    def __init__(
        self,
        store: TrustStore,
        broker: BrokerChanges,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._broker = broker
        self._clock = clock

    async def upload(self, tenant_id: str, body: Mapping[str, object]) -> TrustedCertificate:
        """Trust the CA certificate a POST body describes.

        Raises ``ValidationFailed`` (422) when the certificate breaks a rule and
        ``Conflict`` (409) when it is already uploaded, to this tenant or another.
        """
        cert = certificate_from_upload(tenant_id, body, self._clock())
        stored = await self._store.add(cert)
        await self._broker.trust_changed(tenant_id)
        return stored

    async def get(self, tenant_id: str, fingerprint: str) -> TrustedCertificate:
        cert = await self._store.get(tenant_id, fingerprint)
        if cert is None:
            raise _not_found(fingerprint)
        return cert

    async def page(
        self, tenant_id: str, offset: int, limit: int, *, with_total: bool = False
    ) -> CertificatePage:
        items = await self._store.list_certificates(tenant_id, offset, limit)
        total = await self._store.count(tenant_id) if with_total else None
        return CertificatePage(items, total)

    async def update(
        self, tenant_id: str, fingerprint: str, changes: Mapping[str, object]
    ) -> TrustedCertificate:
        """Change name, status and/or auto-registration (see ``apply_update``).

        An edit that changes nothing is not written and does not disturb the broker.
        """
        current = await self.get(tenant_id, fingerprint)
        wanted = apply_update(current, changes)
        if wanted == current:
            return current
        stored = await self._store.update(wanted)
        if stored is None:
            raise _not_found(fingerprint)
        await self._broker.trust_changed(tenant_id)
        return stored

    async def delete(self, tenant_id: str, fingerprint: str) -> None:
        if not await self._store.delete(tenant_id, fingerprint):
            raise _not_found(fingerprint)
        await self._broker.trust_changed(tenant_id)

    async def broker_state(self) -> list[str]:
        """Control lines for every tenant's certificates (the broker's full CA state)."""
        return broker_lines(await self._store.all_certificates())

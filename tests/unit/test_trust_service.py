"""The trusted-certificate use cases with in-memory ports: when the broker is told."""

from __future__ import annotations

import datetime as dt

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.trust import TrustedCertificate, TrustStatus, subject_key, subject_taken
from fleetgate.pki import generate_ca, issue_client_certificate
from fleetgate.services.trust import TrustedCertificates, broker_lines

from fakes import CERTIFICATE_CLOCK

NOW = CERTIFICATE_CLOCK


class InMemoryTrust:
    """A :class:`fleetgate.services.ports.TrustStore` in a dict (fingerprint → cert)."""

    def __init__(self) -> None:
        self.certs: dict[str, TrustedCertificate] = {}

    async def add(self, cert: TrustedCertificate) -> TrustedCertificate:
        if cert.fingerprint in self.certs:
            raise Conflict("certificate already uploaded")
        key = subject_key(cert.facts.subject)
        if any(subject_key(c.facts.subject) == key for c in self.certs.values()):
            raise subject_taken(cert.facts.subject)
        self.certs[cert.fingerprint] = cert
        return cert

    async def get(self, tenant_id: str, fingerprint: str) -> TrustedCertificate | None:
        cert = self.certs.get(fingerprint)
        return cert if cert is not None and cert.tenant_id == tenant_id else None

    async def list_certificates(
        self, tenant_id: str, offset: int, limit: int
    ) -> list[TrustedCertificate]:
        mine = [c for c in self.certs.values() if c.tenant_id == tenant_id]
        return mine[offset : offset + limit]

    async def count(self, tenant_id: str) -> int:
        return sum(c.tenant_id == tenant_id for c in self.certs.values())

    async def update(self, cert: TrustedCertificate) -> TrustedCertificate | None:
        if await self.get(cert.tenant_id, cert.fingerprint) is None:
            return None
        self.certs[cert.fingerprint] = cert
        return cert

    async def delete(self, tenant_id: str, fingerprint: str) -> bool:
        if await self.get(tenant_id, fingerprint) is None:
            return False
        del self.certs[fingerprint]
        return True

    async def all_certificates(self) -> list[TrustedCertificate]:
        return list(self.certs.values())


class RecordingBroker:
    def __init__(self) -> None:
        self.changed: list[str] = []

    async def trust_changed(self, tenant_id: str) -> None:
        self.changed.append(tenant_id)


@pytest.fixture
def store() -> InMemoryTrust:
    return InMemoryTrust()


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
def service(store: InMemoryTrust, broker: RecordingBroker) -> TrustedCertificates:
    return TrustedCertificates(store, broker, clock=lambda: NOW)


def body(pem: bytes, **extra: object) -> dict[str, object]:
    return {"certInPemFormat": pem.decode(), "status": "ENABLED", **extra}


async def test_every_committed_change_tells_the_broker_once(
    service: TrustedCertificates, broker: RecordingBroker
) -> None:
    cert = await service.upload("t1", body(generate_ca("CA").cert_pem()))
    assert broker.changed == ["t1"]
    await service.update("t1", cert.fingerprint, {"status": "DISABLED"})
    assert broker.changed == ["t1", "t1"]
    await service.delete("t1", cert.fingerprint)
    assert broker.changed == ["t1", "t1", "t1"]


async def test_refused_requests_leave_the_broker_alone(
    service: TrustedCertificates, broker: RecordingBroker
) -> None:
    root = generate_ca("Root")
    with pytest.raises(ValidationFailed):
        await service.upload("t1", body(issue_client_certificate(root, "leaf").cert_pem()))
    cert = await service.upload("t1", body(root.cert_pem()))
    with pytest.raises(Conflict):
        await service.upload("t2", body(root.cert_pem()))
    with pytest.raises(ValidationFailed):
        await service.update("t1", cert.fingerprint, {"certInPemFormat": "other"})
    with pytest.raises(NotFound):
        await service.update("t2", cert.fingerprint, {"name": "mine now"})
    with pytest.raises(NotFound):
        await service.delete("t2", cert.fingerprint)
    assert await service.update("t1", cert.fingerprint, {"name": cert.name}) == cert
    assert broker.changed == ["t1"]


async def test_the_clock_decides_validity(store: InMemoryTrust, broker: RecordingBroker) -> None:
    ca = generate_ca("Short", valid_days=1)
    later = TrustedCertificates(store, broker, clock=lambda: NOW + dt.timedelta(days=2))
    with pytest.raises(ValidationFailed, match="expired"):
        await later.upload("t1", body(ca.cert_pem()))


async def test_pages_count_only_when_asked(service: TrustedCertificates) -> None:
    for i in range(3):
        await service.upload("t1", body(generate_ca(f"CA {i}").cert_pem()))
    page = await service.page("t1", 2, 2)
    assert len(page.items) == 1
    assert page.total is None
    assert (await service.page("t1", 0, 2, with_total=True)).total == 3
    assert (await service.page("t2", 0, 5, with_total=True)).total == 0


async def test_broker_lines_describe_each_ca_for_the_plugin(
    service: TrustedCertificates,
) -> None:
    on = await service.upload(
        "t1", body(generate_ca("On").cert_pem(), autoRegistrationEnabled=True)
    )
    off = await service.upload("t2", body(generate_ca("Off").cert_pem(), status="DISABLED"))
    assert off.status is TrustStatus.DISABLED
    expected = [
        control.ca(on.fingerprint, "t1", True, True, on.facts.der),
        control.ca(off.fingerprint, "t2", False, False, off.facts.der),
    ]
    assert broker_lines([on, off]) == expected
    assert await service.broker_state() == expected
    assert broker_lines([]) == []

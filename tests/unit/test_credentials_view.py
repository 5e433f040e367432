"""The credentials view and the regeneration of a secret, on fakes: what each kind of
device is shown, and that a regeneration hashes a new password, records who, and pushes the
new account (which kicks the live session) — and refuses a certificate device."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import NO_PASSWORD, ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.passwords import hash_password, verify_password
from fleetgate.domain.trust import TrustedCertificate
from fleetgate.domain.users import Role, User
from fleetgate.services.credentials import BrokerAccess, DeviceCredentials, Listener

from fakes import RecordingBroker

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACCESS = BrokerAccess(Listener("mqtt.example", 8883), Listener("mqtt.example", 8884), "PEM")


def user(device_id: str, password_hash: str) -> User:
    return User("t1", f"device_{device_id}", password_hash, True, frozenset({Role.DEVICE}), NOW)


class Store:
    def __init__(self) -> None:
        self.devices = {1: "pw-1", 2: "cert-1", 3: "new-1"}
        self.users = {"pw-1": user("pw-1", "scrypt:old"), "cert-1": user("cert-1", NO_PASSWORD)}
        self.log: list[tuple[str, datetime]] = []
        self.disabled: set[str] = set()

    async def device_of(self, tenant_id: str, object_id: int) -> str | None:
        return self.devices.get(object_id)

    async def device_user(self, tenant_id: str, device_id: str) -> User | None:
        return self.users.get(device_id)

    async def regenerate_secret(
        self, tenant_id: str, object_id: int, device_id: str, password_hash: str, by: str
    ) -> tuple[User, datetime, bool] | None:
        old = self.users.get(device_id)
        if old is None or old.password_hash == NO_PASSWORD:
            return None
        self.users[device_id] = user(device_id, password_hash)
        self.log.insert(0, (by, NOW))
        return self.users[device_id], NOW, device_id in self.disabled

    async def regenerations(self, tenant_id: str, object_id: int) -> list[tuple[str, datetime]]:
        return list(self.log)


async def objects(tenant_id: str, object_id: int) -> ManagedObject:
    if object_id > 3:
        raise NotFound(f"no {object_id}")
    fragments = (
        {"fleetgate_CertificateAuthority": {"fingerprint": "ab" * 20}} if object_id == 2 else {}
    )
    return ManagedObject(object_id, tenant_id, None, None, None, NOW, NOW, fragments)


async def no_cas(tenant_id: str, fingerprint: str) -> TrustedCertificate | None:
    return None


def make() -> tuple[DeviceCredentials, Store, RecordingBroker]:
    store, broker = Store(), RecordingBroker()
    fast = {"log2_n": 4, "r": 8, "p": 1}
    service = DeviceCredentials(
        store, objects, no_cas, broker, ACCESS, hasher=lambda p: hash_password(p, **fast)
    )
    return service, store, broker


async def test_a_password_device_is_shown_its_user_name_and_the_password_listener() -> None:
    service, _, _ = make()
    view = await service.view("t1", 1)
    assert (view.authentication, view.username, view.listener) == (
        "PASSWORD",
        "t1/device_pw-1",
        Listener("mqtt.example", 8884),
    )
    assert view.ca_pem == "PEM"


async def test_a_certificate_device_is_shown_its_issuing_ca() -> None:
    service, _, _ = make()
    view = await service.view("t1", 2)
    assert (view.authentication, view.username) == ("CERTIFICATE", None)
    assert view.listener == Listener("mqtt.example", 8883)
    assert view.issuer_fingerprint == "ab" * 20
    assert (await service.view("t1", 3)).authentication == "NONE"
    with pytest.raises(NotFound):
        await service.view("t1", 4)


async def test_regenerating_gives_a_new_password_once_and_pushes_the_new_account() -> None:
    service, store, broker = make()
    password, _ = await service.regenerate("t1", 1, "admin")
    new_hash = store.users["pw-1"].password_hash
    assert verify_password(password, new_hash)
    assert control.device_account("t1", "pw-1", new_hash) in broker.lines
    assert (await service.view("t1", 1)).regenerations == [("admin", NOW)]
    second, _ = await service.regenerate("t1", 1, "admin")
    assert second != password


async def test_a_certificate_device_has_no_secret_to_regenerate() -> None:
    service, store, broker = make()
    with pytest.raises(ValidationFailed, match="no password to regenerate"):
        await service.regenerate("t1", 2, "admin")
    assert broker.lines == []
    assert store.log == []


async def test_a_disabled_devices_new_secret_gives_it_no_account_at_the_broker() -> None:
    service, store, broker = make()
    store.disabled.add("pw-1")
    await service.regenerate("t1", 1, "admin")
    assert broker.lines == [
        control.device("pw-1", "t1", False),
        control.account_remove("t1/device_pw-1"),
    ]

"""The tenant use cases on an in-memory store: what reaches the broker, and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.tenants import (
    DeletedTenant,
    NewTenant,
    NewTenantRows,
    TenantChanges,
    TenantRecord,
    TenantStatus,
)
from fleetgate.domain.users import ADMIN_ROLES, BOOTSTRAP_ROLES
from fleetgate.services.tenants import Tenants

from fakes import RecordingBroker


class InMemoryTenants:
    """A :class:`fleetgate.services.ports.TenantStore` in a dict."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantRecord] = {}
        self.rows: dict[str, NewTenantRows] = {}
        self.owned: dict[str, DeletedTenant] = {}
        self.admin_hashes: dict[str, str] = {}

    async def list_tenants(self, offset: int, limit: int) -> list[TenantRecord]:
        return sorted(self.tenants.values(), key=lambda t: t.id)[offset : offset + limit]

    async def count_tenants(self) -> int:
        return len(self.tenants)

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        return self.tenants.get(tenant_id)

    async def suspended_tenants(self) -> list[str]:
        return sorted(t.id for t in self.tenants.values() if t.suspended)

    async def create_tenant(self, new: NewTenantRows) -> TenantRecord | None:
        if new.id in self.tenants:
            return None
        if any(t.domain == new.domain for t in self.tenants.values()):
            raise Conflict("domain taken")
        self.rows[new.id] = new
        record = TenantRecord(
            id=new.id,
            is_management=False,
            status=TenantStatus.ACTIVE,
            created_at=datetime.now(UTC),
            domain=new.domain,
            company=new.company,
            admin_name=new.admin_name,
        )
        self.tenants[new.id] = record
        return record

    async def update_tenant(
        self,
        tenant_id: str,
        profile: dict[str, str | None],
        status: TenantStatus | None,
        admin_hash: str | None = None,
    ) -> TenantRecord | None:
        if admin_hash is not None:
            self.admin_hashes[tenant_id] = admin_hash
        found = self.tenants.get(tenant_id)
        if found is None:
            return None
        found = replace(found, **profile)  # type: ignore[arg-type]
        if status is not None:
            found = replace(found, status=status)
        self.tenants[tenant_id] = found
        return found

    async def delete_tenant(self, tenant_id: str) -> DeletedTenant | None:
        found = self.tenants.get(tenant_id)
        if found is None or found.is_management:
            return None
        del self.tenants[tenant_id]
        return self.owned.get(tenant_id, DeletedTenant(tenant_id, (), ()))


def _plain(password: str) -> str:
    return f"hash:{password}"


@pytest.fixture
def store() -> InMemoryTenants:
    return InMemoryTenants()


NEW = NewTenant(
    id="acme", company="ACME", domain="acme.example", admin_name="boss", admin_password="s3cret-pw"
)


async def test_create_makes_the_admin_and_a_bootstrap_user_the_broker_learns(
    store: InMemoryTenants,
) -> None:
    broker = RecordingBroker()
    tenants = Tenants(store, broker, bootstrap_username="devicebootstrap", hasher=_plain)
    created = await tenants.create(NEW)
    rows = store.rows["acme"]
    assert (rows.admin_name, rows.admin_hash, rows.admin_roles) == (
        "boss",
        "hash:s3cret-pw",
        ADMIN_ROLES,
    )
    assert rows.bootstrap_name == "devicebootstrap"
    assert rows.bootstrap_roles == BOOTSTRAP_ROLES
    assert rows.bootstrap_hash == f"hash:{created.bootstrap_password}"
    assert len(created.bootstrap_password) >= 24
    assert broker.lines == [
        control.account("bootstrap", "acme/devicebootstrap", rows.bootstrap_hash)
    ]


async def test_a_taken_id_is_a_conflict_and_nothing_reaches_the_broker(
    store: InMemoryTenants,
) -> None:
    broker = RecordingBroker()
    tenants = Tenants(store, broker, bootstrap_username="devicebootstrap", hasher=_plain)
    await tenants.create(NEW)
    broker.lines.clear()
    with pytest.raises(Conflict, match="acme exists"):
        await tenants.create(replace(NEW, domain="other.example"))
    assert broker.lines == []


async def test_without_an_id_one_is_made(store: InMemoryTenants) -> None:
    tenants = Tenants(store, RecordingBroker(), bootstrap_username="b", hasher=_plain)
    created = await tenants.create(replace(NEW, id=None))
    assert created.tenant.id.startswith("t")
    assert len(created.tenant.id) == 9


async def test_suspend_and_reactivate_push_one_line_each_and_only_on_a_change(
    store: InMemoryTenants,
) -> None:
    broker = RecordingBroker()
    tenants = Tenants(store, broker, bootstrap_username="b", hasher=_plain)
    await tenants.create(NEW)
    broker.lines.clear()
    suspend = TenantChanges(status=TenantStatus.SUSPENDED)
    assert (await tenants.update("acme", suspend)).suspended
    await tenants.update("acme", suspend)
    assert broker.lines == ["tenant acme 0"]
    assert await tenants.broker_state() == ["tenant acme 0"]
    await tenants.update("acme", TenantChanges(status=TenantStatus.ACTIVE))
    assert broker.lines == ["tenant acme 0", "tenant acme 1"]
    assert await tenants.broker_state() == []
    await tenants.update("acme", TenantChanges(profile=(("company", "New"),)))
    assert len(broker.lines) == 2
    assert (await tenants.get("acme")).company == "New"
    await tenants.update("acme", TenantChanges(admin_password="another password"))
    assert store.admin_hashes["acme"] == "hash:another password"
    assert len(broker.lines) == 2


async def test_delete_kicks_the_tenant_then_runs_the_cleanup(store: InMemoryTenants) -> None:
    broker = RecordingBroker()
    cleaned: list[DeletedTenant] = []

    async def after(deleted: DeletedTenant) -> None:
        assert broker.lines[-1] == "tenant acme 0"  # kicked before the cleanup
        cleaned.append(deleted)

    tenants = Tenants(store, broker, bootstrap_username="b", after_deletion=after, hasher=_plain)
    await tenants.create(NEW)
    store.owned["acme"] = DeletedTenant("acme", ("dev-1",), ("a" * 64,))
    await tenants.delete("acme")
    assert cleaned == [store.owned["acme"]]
    with pytest.raises(NotFound):
        await tenants.delete("acme")


async def test_the_management_tenant_is_not_deleted(store: InMemoryTenants) -> None:
    store.tenants["management"] = TenantRecord(
        "management", True, TenantStatus.ACTIVE, datetime.now(UTC)
    )
    broker = RecordingBroker()
    tenants = Tenants(store, broker, bootstrap_username="b", hasher=_plain)
    with pytest.raises(ValidationFailed, match="cannot be deleted"):
        await tenants.delete("management")
    assert "management" in store.tenants
    assert broker.lines == []


async def test_a_failed_cleanup_does_not_undo_nor_hide_the_deletion(
    store: InMemoryTenants, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(deleted: DeletedTenant) -> None:
        raise OSError("file store away")

    tenants = Tenants(
        store, RecordingBroker(), bootstrap_username="b", after_deletion=broken, hasher=_plain
    )
    await tenants.create(NEW)
    await tenants.delete("acme")  # answered as done: it is committed
    assert "acme" not in store.tenants
    assert "left for later" in caplog.text

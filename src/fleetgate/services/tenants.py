"""Tenant management (Cumulocity's ``/tenant/tenants``, decision 0013): create a tenant with
its administrator and bootstrap user, change it, suspend and reactivate it, delete it.

The database commits first; the broker and the file store follow:

- suspending or reactivating pushes one ``tenant <t> <0|1>`` line (the plugin kicks and
  refuses the tenant's logins at once); the suspended tenants are part of every full
  state the bridge pushes (:meth:`Tenants.broker_state`), so a lost line or a crash is
  repaired at the next resync;
- a deletion pushes ``tenant <t> 0`` (kicking every live session of the tenant, its
  bootstrap clients included), then the after-deletion cleanup the composition root
  gives (capath and a full resync, the broker sessions of the device ids it held, its
  files). Each step is idempotent and each is redone from the database after a crash
  (decision 0013).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import Conflict, NotFound
from fleetgate.domain.passwords import generate_secret, hash_password
from fleetgate.domain.tenants import (
    DeletedTenant,
    NewTenant,
    NewTenantRows,
    TenantChanges,
    TenantRecord,
    TenantStatus,
    check_deletion,
)
from fleetgate.domain.users import ADMIN_ROLES, BOOTSTRAP_ROLES, mqtt_username
from fleetgate.services.ports import BrokerPush, TenantStore

log = logging.getLogger(__name__)

#: What follows a committed deletion (capath, resync, sessions, files); idempotent.
AfterDeletion = Callable[[DeletedTenant], Awaitable[None]]

#: Generated ids that collide with an existing tenant are drawn again this often.
_ID_ATTEMPTS = 5


def _not_found(tenant_id: str) -> NotFound:
    return NotFound(f"Tenant {tenant_id} not found", code="tenants/Not Found")


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    tenant: TenantRecord
    bootstrap_username: str
    #: Shown once, in the creation's answer; stored only as a hash.
    bootstrap_password: str


class Tenants:
    def __init__(
        self,
        store: TenantStore,
        broker: BrokerPush,
        *,
        bootstrap_username: str,
        after_deletion: AfterDeletion | None = None,
        hasher: Callable[[str], str] = hash_password,
    ) -> None:
        self._store = store
        self._broker = broker
        self._bootstrap_username = bootstrap_username
        self._after_deletion = after_deletion
        self._hash = hasher

    async def list_tenants(
        self, offset: int, limit: int, *, count: bool
    ) -> tuple[list[TenantRecord], int | None]:
        tenants = await self._store.list_tenants(offset, limit)
        return tenants, (await self._store.count_tenants() if count else None)

    async def get(self, tenant_id: str) -> TenantRecord:
        found = await self._store.get_tenant(tenant_id)
        if found is None:
            raise _not_found(tenant_id)
        return found

    async def create(self, new: NewTenant) -> CreatedTenant:
        """The tenant with its administrator (every role but the device ones) and its
        bootstrap user (``ROLE_DEVICE_BOOTSTRAP`` only, a generated password), as the
        first start makes the default tenant; 409 when the id or the domain is taken."""
        bootstrap_password = generate_secret(24)
        admin_hash, bootstrap_hash = await asyncio.gather(
            asyncio.to_thread(self._hash, new.admin_password),
            asyncio.to_thread(self._hash, bootstrap_password),
        )
        created: TenantRecord | None = None
        for _ in range(1 if new.id else _ID_ATTEMPTS):
            tenant_id = new.id or f"t{secrets.randbelow(10**8):08d}"
            created = await self._store.create_tenant(
                NewTenantRows(
                    id=tenant_id,
                    company=new.company,
                    domain=new.domain,
                    admin_name=new.admin_name,
                    admin_hash=admin_hash,
                    admin_roles=ADMIN_ROLES,
                    bootstrap_name=self._bootstrap_username,
                    bootstrap_hash=bootstrap_hash,
                    bootstrap_roles=BOOTSTRAP_ROLES,
                    admin_email=new.admin_email,
                    contact_name=new.contact_name,
                    contact_phone=new.contact_phone,
                )
            )
            if created is not None:
                break
        if created is None:
            raise Conflict(f"Tenant {new.id} exists already", code="tenants/Duplicate")
        await self._broker.push(
            [
                control.account(
                    "bootstrap", mqtt_username(created.id, self._bootstrap_username), bootstrap_hash
                )
            ]
        )
        log.info("created tenant %s (%s)", created.id, created.company)
        return CreatedTenant(created, self._bootstrap_username, bootstrap_password)

    async def update(self, tenant_id: str, changes: TenantChanges) -> TenantRecord:
        """Apply ``changes`` (``adminPass`` and ``adminEmail`` change the admin user too, as
        in Cumulocity); a status change reaches the broker at once."""
        before = await self.get(tenant_id)
        admin_hash = None
        if changes.admin_password is not None:
            admin_hash = await asyncio.to_thread(self._hash, changes.admin_password)
        after = await self._store.update_tenant(
            tenant_id, dict(changes.profile), changes.status, admin_hash
        )
        if after is None:
            raise _not_found(tenant_id)
        if changes.status is not None and after.status is not before.status:
            await self._broker.push(
                [control.tenant(tenant_id, after.status is TenantStatus.ACTIVE)]
            )
            log.info("tenant %s is now %s", tenant_id, after.status.value)
        return after

    async def delete(self, tenant_id: str) -> None:
        """Delete the tenant and all it owns (one transaction), then have the broker and
        the file store forget it (after the commit; redone after a crash)."""
        check_deletion(await self.get(tenant_id))
        deleted = await self._store.delete_tenant(tenant_id)
        if deleted is None:
            raise _not_found(tenant_id)
        log.info(
            "deleted tenant %s (%d devices, %d files)",
            tenant_id,
            len(deleted.device_ids),
            len(deleted.file_sha256s),
        )
        try:
            await self._broker.push([control.tenant(tenant_id, False)])
            if self._after_deletion is not None:
                await self._after_deletion(deleted)
        except Exception:
            # The deletion is committed and the caller must hear so; every step is redone
            # from the database later (decision 0013): the full state at the bridge's next
            # connect, released sessions before it, unused files at the next start.
            log.exception("the cleanup after deleting tenant %s is left for later", tenant_id)

    async def broker_state(self) -> list[str]:
        """The suspended tenants' lines, for every full state the bridge pushes."""
        return [control.tenant(t, False) for t in await self._store.suspended_tenants()]

"""Tenant options (``db/tenant_options.py``)."""

from __future__ import annotations

from fleetgate.domain import tenant_options
from fleetgate.domain.tenant_options import TenantOption

from memory.database import MemoryDatabase, page, queries


@queries
class MemoryTenantOptions:
    """A :class:`~fleetgate.services.ports.TenantOptionStore` (``PgTenantOptions``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def _of(self, tenant_id: str, category: str | None = None) -> list[TenantOption]:
        return [
            TenantOption(c, k, v)
            for (t, c, k), v in sorted(self._db.tenant_options.items())
            if t == tenant_id and category in (None, c)
        ]

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[TenantOption]:
        return page(self._of(tenant_id), offset, limit)

    async def count(self, tenant_id: str) -> int:
        return len(self._of(tenant_id))

    async def of_category(self, tenant_id: str, category: str) -> list[TenantOption]:
        return self._of(tenant_id, category)

    async def get(self, tenant_id: str, category: str, key: str) -> TenantOption | None:
        value = self._db.tenant_options.get((tenant_id, category, key))
        return TenantOption(category, key, value) if value is not None else None

    async def put(self, tenant_id: str, option: TenantOption) -> TenantOption:
        self._db.require_tenant(tenant_id)
        self._db.tenant_options[(tenant_id, option.category, option.key)] = option.value
        return option

    async def replace(self, tenant_id: str, option: TenantOption) -> bool:
        key = (tenant_id, option.category, option.key)
        if key not in self._db.tenant_options:
            return False
        self._db.tenant_options[key] = option.value
        return True

    async def delete(self, tenant_id: str, category: str, key: str) -> bool:
        return self._db.tenant_options.pop((tenant_id, category, key), None) is not None

    async def child_auto_registration(self, tenant_id: str) -> bool:
        value = self._db.tenant_options.get(
            (tenant_id, tenant_options.GATEWAYS, tenant_options.CHILD_AUTO_REGISTRATION)
        )
        return tenant_options.child_auto_registration(value)

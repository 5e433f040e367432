"""Tenant options (Cumulocity's ``/tenant/options``): operators read and write them; the
gateway use cases read ``fleetgate.gateways`` / ``childAutoRegistration``."""

from __future__ import annotations

from typing import Any

from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.tenant_options import TenantOption, check_name, check_option
from fleetgate.services.ports import TenantOptionStore


def _not_found(category: str, key: str) -> NotFound:
    return NotFound(f"Option {category}/{key} not found", code="options/Not Found")


class TenantOptions:
    def __init__(self, store: TenantOptionStore) -> None:
        self._store = store

    async def find(
        self, tenant_id: str, offset: int, limit: int, *, count: bool
    ) -> tuple[list[TenantOption], int | None]:
        found = await self._store.find(tenant_id, offset, limit)
        total = await self._store.count(tenant_id) if count else None
        return found, total

    async def of_category(self, tenant_id: str, category: str) -> list[TenantOption]:
        return await self._store.of_category(tenant_id, check_name("category", category))

    async def get(self, tenant_id: str, category: str, key: str) -> TenantOption:
        found = await self._store.get(tenant_id, category, key)
        if found is None:
            raise _not_found(category, key)
        return found

    async def create(self, tenant_id: str, body: dict[str, Any]) -> TenantOption:
        """``POST /tenant/options``: store ``{"category", "key", "value"}``; an option that
        exists gets the new value (as in Cumulocity)."""
        _only(body, {"category", "key", "value", "self"})
        for name in ("category", "key", "value"):
            if name not in body:
                raise ValidationFailed(f"{name} is required")
        option = check_option(body["category"], body["key"], body["value"])
        return await self._store.put(tenant_id, option)

    async def update(
        self, tenant_id: str, category: str, key: str, body: dict[str, Any]
    ) -> TenantOption:
        """``PUT /tenant/options/{category}/{key}`` with ``{"value"}``: the option must
        exist. ``category`` and ``key`` may be sent back if they are the path's."""
        _only(body, {"category", "key", "value", "self"})
        for name, current in (("category", category), ("key", key)):
            if name in body and body[name] != current:
                raise ValidationFailed(f"{name} cannot change (it is {current!r} in the path)")
        if "value" not in body:
            raise ValidationFailed("value is required")
        option = check_option(category, key, body["value"])
        if not await self._store.replace(tenant_id, option):
            raise _not_found(category, key)
        return option

    async def delete(self, tenant_id: str, category: str, key: str) -> None:
        if not await self._store.delete(tenant_id, category, key):
            raise _not_found(category, key)

    async def child_auto_registration(self, tenant_id: str) -> bool:
        """Whether the tenant's gateways may register unknown children (on by default)."""
        return await self._store.child_auto_registration(tenant_id)


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise ValidationFailed(f"unknown properties: {', '.join(k[:40] for k in unknown)}")

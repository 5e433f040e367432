"""The small interfaces the services need from the outside world."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from fleetgate.domain.users import Role, Tenant, User


class UserStore(Protocol):
    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None: ...

    async def users_with_role(self, role: Role) -> list[User]: ...

    async def ensure_tenant(self, tenant: Tenant) -> bool: ...

    async def ensure_user(
        self, tenant_id: str, username: str, password_hash: str, roles: Iterable[Role]
    ) -> bool: ...

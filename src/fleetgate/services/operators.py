"""Operator users: an administrator creates, changes and deletes them and hands out their
roles (Cumulocity's role references). The rules are the domain's
(:mod:`fleetgate.domain.operators`); this module looks users up, hashes passwords off the
event loop and stores the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.operators import (
    NewOperator,
    OperatorChanges,
    check_role_assignment,
    check_role_removal,
    is_device_user,
    roles_to_keep,
)
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role, Tenant, User
from fleetgate.services.ports import OperatorStore


def _not_found(username: str) -> NotFound:
    return NotFound(f"User {username} not found", code="user/Not Found")


class Operators:
    def __init__(
        self, users: OperatorStore, *, hasher: Callable[[str], str] = hash_password
    ) -> None:
        self._users = users
        self._hash = hasher

    async def _find(self, tenant_id: str, username: str) -> tuple[Tenant, User]:
        found = await self._users.find_user(tenant_id, username)
        if found is None:
            raise _not_found(username)
        return found

    async def create(self, tenant_id: str, new: NewOperator) -> User:
        """The new operator, without roles (assign them as role references); 409 when
        the user name is taken."""
        password_hash = await asyncio.to_thread(self._hash, new.password)
        user = await self._users.create_user(
            tenant_id,
            new.username,
            password_hash,
            enabled=new.enabled,
            profile={
                "email": new.email,
                "first_name": new.first_name,
                "last_name": new.last_name,
            },
        )
        if user is None:
            raise Conflict(f"User {new.username} exists already", code="user/Duplicate")
        return user

    async def update(
        self, tenant_id: str, username: str, changes: OperatorChanges, *, caller: str
    ) -> User:
        """Apply ``changes``; enabling a user also lifts a lock after failed logins."""
        if username == caller and changes.enabled is False:
            raise ValidationFailed("you cannot disable your own user")
        password_hash = (
            await asyncio.to_thread(self._hash, changes.password)
            if changes.password is not None
            else None
        )
        user = await self._users.update_user(
            tenant_id,
            username,
            enabled=changes.enabled,
            password_hash=password_hash,
            profile=dict(changes.profile),
            clear_failures=changes.enabled is True,
        )
        if user is None:
            raise _not_found(username)
        return user

    async def unlock(self, tenant_id: str, username: str) -> User:
        """Lift a lock after failed logins (and forget the failures) of any user."""
        user = await self._users.update_user(
            tenant_id, username, enabled=None, password_hash=None, profile={}, clear_failures=True
        )
        if user is None:
            raise _not_found(username)
        return user

    async def roles(self, tenant_id: str, username: str) -> frozenset[Role]:
        return (await self._find(tenant_id, username))[1].roles

    async def assign_role(self, tenant_id: str, username: str, role: Role) -> User:
        tenant, user = await self._find(tenant_id, username)
        check_role_assignment(role, user, is_management=tenant.is_management)
        changed = await self._users.add_role(tenant_id, username, role)
        if changed is None:
            raise _not_found(username)
        return changed

    async def unassign_role(
        self, tenant_id: str, username: str, role: Role, *, caller: str
    ) -> User:
        _, user = await self._find(tenant_id, username)
        if is_device_user(user) or role in user.roles:
            check_role_removal(role, user, caller=caller)
        else:
            raise NotFound(f"User {username} does not hold {role.value}", code="user/Not Found")
        keep = roles_to_keep(username, caller=caller)
        changed = await self._users.remove_role(tenant_id, username, role, keep_one_of=keep)
        if changed is None:
            # Gone, or its other admin role went meanwhile: say which.
            _, now = await self._find(tenant_id, username)
            check_role_removal(role, now, caller=caller)
            raise _not_found(username)
        return changed

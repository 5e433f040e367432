"""Moving devices between tenants (decision 0014, docs/api.md "Device migrations"):
request, the target's verification code, confirmation, cancellation — and, after a move
is committed, what the broker must learn so that the device's live session in the source
ends and its next connect lands in the target."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetgate.domain import broker_control as control
from fleetgate.domain.device_migrations import (
    CODE_TTL,
    MAX_ATTEMPTS,
    Migration,
    Moved,
    check_target_tenant,
    migration_not_found,
    new_code,
    normalise_code,
)
from fleetgate.domain.devices import NO_PASSWORD, device_id_of_user
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.passwords import hash_password, verify_password
from fleetgate.services.broker import device_lines
from fleetgate.services.ports import BrokerPush, DeviceMigrationStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: ``Connections.children_changed``: (tenant, [(child, its gateway or None)]).
ChildrenChanged = Callable[[str, Sequence[tuple[str, str | None]]], Awaitable[None]]
#: Cheaper than a password's scrypt: a code lives 10 minutes and has 5 guesses.
_CODE_LOG2_N = 12


def _now() -> datetime:
    return datetime.now(UTC)


async def _hash(code: str) -> str:
    return await asyncio.to_thread(hash_password, code, log2_n=_CODE_LOG2_N)


async def _verify(code: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password, code, stored)


def request_fields(body: dict[str, Any]) -> tuple[int, str, bool]:
    """``{"deviceId", "targetTenant", "withChildren"?}`` → (object id, tenant, children)."""
    if "deviceId" not in body:
        raise ValidationFailed("deviceId (the device's managed object id) is required")
    object_id = parse_id(body["deviceId"], "device")
    target = check_target_tenant(body.get("targetTenant"))
    with_children = body.get("withChildren", True)
    if not isinstance(with_children, bool):
        raise ValidationFailed("withChildren must be true or false")
    return object_id, target, with_children


class DeviceMigrations:
    def __init__(
        self,
        store: DeviceMigrationStore,
        broker: BrokerPush,
        children_changed: ChildrenChanged,
        *,
        clock: Clock = _now,
        ttl: timedelta = CODE_TTL,
        max_attempts: int = MAX_ATTEMPTS,
        code: Callable[[], str] = new_code,
    ) -> None:
        self._store = store
        self._broker = broker
        self._children_changed = children_changed
        self._clock = clock
        self._ttl = ttl
        self._max_attempts = max_attempts
        self._code = code

    async def request(self, tenant_id: str, by: str, body: dict[str, Any]) -> Migration:
        """The source's administrator asks to move a device to another tenant."""
        object_id, target, with_children = request_fields(body)
        return await self._store.request(
            tenant_id,
            target,
            object_id,
            with_children=with_children,
            by=by,
            now=self._clock(),
            ttl=self._ttl,
            max_attempts=self._max_attempts,
        )

    async def get(self, tenant_id: str, migration_id: int) -> Migration:
        found = await self._store.get(tenant_id, migration_id)
        if found is None:
            raise migration_not_found(migration_id)
        return found.at(self._clock())

    async def find(
        self, tenant_id: str, offset: int, limit: int, *, count: bool
    ) -> tuple[list[Migration], int | None]:
        found, total = await self._store.find(tenant_id, offset, limit, count=count)
        now = self._clock()
        return [m.at(now) for m in found], total

    async def issue_code(self, tenant_id: str, migration_id: int, by: str) -> tuple[Migration, str]:
        """A new verification code for an administrator of the target: shown this once,
        kept only as its hash; it replaces any code issued before."""
        code = self._code()
        issued = await self._store.issue_code(
            tenant_id, migration_id, by, await _hash(code), self._clock()
        )
        return issued, code

    async def enter_code(
        self, tenant_id: str, migration_id: int, by: str, body: dict[str, Any]
    ) -> Migration:
        """A target administrator enters the code: the device moves (or the attempt is
        counted and refused). After the commit, the broker learns the device's new tenant:
        its live session in the source is closed and its next login lands in the target."""
        code = normalise_code(body.get("code"))
        entered = await self._store.enter_code(
            tenant_id, migration_id, by, code, _verify, self._clock()
        )
        assert entered.moved is not None
        await self._after_move(entered.moved)
        return entered.confirmation.migration

    async def cancel(self, tenant_id: str, migration_id: int, by: str) -> Migration:
        return await self._store.cancel(tenant_id, migration_id, by, self._clock())

    async def _after_move(self, moved: Moved) -> None:
        migration = moved.migration
        source, target = migration.source_tenant, migration.target_tenant
        log.info(
            "migration %d: devices %s moved from tenant %s to %s (%d open operations ended)",
            migration.id,
            ", ".join(migration.moved),
            source,
            target,
            len(moved.ended),
        )
        try:
            await self._broker.push(moved_lines(source, moved))
            if moved.detached:
                await self._children_changed(source, [(c, None) for c in moved.detached])
            if moved.children:
                await self._children_changed(target, [(c, moved.gateway) for c in moved.children])
        except Exception:
            # The move is committed; a full resync carries it (at the latest on the
            # bridge's next connect). The operator's request must not fail for it.
            log.exception("migration %d: could not tell the broker at once", migration.id)
            try:
                await self._broker.resync()
            except Exception:
                log.exception("migration %d: resync failed too", migration.id)


def moved_lines(source: str, moved: Moved) -> list[str]:
    """The broker forgets the devices' logins in the source and learns them in the target
    (a ``device`` line re-validates the live session, which is the source's: kicked)."""
    lines: list[str] = []
    for user in moved.users:
        device_id = device_id_of_user(user.username)
        if device_id is None:
            continue
        if user.password_hash != NO_PASSWORD:
            lines.append(control.account_remove(control.device_username(source, device_id)))
        lines.extend(device_lines(user))
    return lines

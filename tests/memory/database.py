"""The tables the in-memory adapters share (:class:`MemoryDatabase`), and what
``fleetgate.db`` does on them for more than one adapter: claiming device ids, making
devices and their users, the cascades of a deletion."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, TypeVar

from fleetgate.domain.bootstrap import RequestStatus
from fleetgate.domain.connections import disabled_lifecycle
from fleetgate.domain.devices import (
    DEFAULT_DEVICE_TYPE,
    DEVICE_ID_TYPE,
    NO_PASSWORD,
    ManagedObject,
    device_id_taken,
    device_username,
)
from fleetgate.domain.enablement import effective_enabled
from fleetgate.domain.gateways import CHILD_DEVICES
from fleetgate.domain.lifecycle import FRAGMENT as LIFECYCLE
from fleetgate.domain.lifecycle import with_initial_lifecycle
from fleetgate.domain.lockout import NO_FAILURES
from fleetgate.domain.operations import Operation
from fleetgate.domain.users import Role, Tenant, User

from fakes import InMemoryUsers

#: The roles of a device's own user (``device_<id>``).
DEVICE_USER_ROLES = frozenset({Role.DEVICE, Role.USER_MANAGEMENT_OWN_READ})
SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: PostgreSQL's ``now()`` for tests in which
    time passes (time-outs)."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def jsonb(value: dict[str, Any]) -> dict[str, Any]:
    """What a ``jsonb`` column keeps and gives back: a copy, as JSON has it."""
    copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    return copied


def page(items: Sequence[T], offset: int, limit: int) -> list[T]:
    return list(items[offset : offset + limit])


def queries(cls: type[T]) -> type[T]:
    """Make every public coroutine method of an adapter yield to the event loop once
    before it runs (then it runs without a pause: atomic, as its twin's transaction)."""
    for name in dir(cls):
        method = getattr(cls, name)
        if not name.startswith("_") and inspect.iscoroutinefunction(method):
            setattr(cls, name, _after_a_round_trip(method))
    return cls


def _after_a_round_trip(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await method(*args, **kwargs)

    return call


class ForeignKeyViolation(Exception):
    """What PostgreSQL refuses and the adapters do not translate: a row naming a tenant or
    managed object that does not exist (a test that forgot to make it)."""


# --- the tables -----------------------------------------------------------------------


@dataclass
class ObjectRow:
    id: int
    tenant_id: str
    name: str | None
    type: str | None
    owner: str | None
    fragments: dict[str, Any]
    creation_time: datetime
    last_updated: datetime
    #: The broker connection the device is on, when CONNECTED.
    connection_id: str | None = None
    #: An operator disabled the device (decision 0012).
    disabled: bool = False

    def shown(self) -> ManagedObject:
        return ManagedObject(
            self.id,
            self.tenant_id,
            self.name,
            self.type,
            self.owner,
            self.creation_time,
            self.last_updated,
            jsonb(self.fragments),
        )


@dataclass(frozen=True)
class FileRow:
    sha256: str
    length: int
    content_type: str


@dataclass
class RequestRow:
    status: RequestStatus
    created_at: datetime


@dataclass(frozen=True)
class ChildReportRow:
    """What a gateway last reported of its child (``child_connection``)."""

    gateway_id: int
    connected: bool
    reason: str | None
    reported_at: datetime


@dataclass(frozen=True)
class RemovedChildRow:
    how: str  # "detached" | "deleted"
    removed_at: datetime
    removed_by: str | None = None


@dataclass
class OperationRow:
    #: As stored (``device_name`` is the device's name when read, not this).
    op: Operation
    dispatched_at: datetime | None = None
    snapshot_id: int | None = None
    #: Which attempt of its bulk operation it is (``operation.bulk_attempt``).
    bulk_attempt: int | None = None


_TABLES = (
    "objects",
    "external_ids",
    "references",
    "requests",
    "binary_files",
    "operations",
    "released",
    "removed_children",
    "tenant_options",
    "child_reports",
    "bulk_operations",
    "bulk_targets",
)


@queries
class MemoryUsers(InMemoryUsers):
    """The users table: a :class:`~fleetgate.services.ports.UserStore` (the fake of
    :mod:`fakes`) that is also a :class:`~fleetgate.services.ports.DeviceUsers` (``PgUsers``)."""

    async def list_users(
        self, tenant_id: str, *, only_devices: bool, offset: int, limit: int
    ) -> list[User]:
        return page(self._of(tenant_id, only_devices), offset, limit)

    async def count_users(self, tenant_id: str, *, only_devices: bool) -> int:
        return len(self._of(tenant_id, only_devices))

    async def set_enabled(self, tenant_id: str, username: str, enabled: bool) -> User | None:
        if (tenant_id, username) not in self.users:
            return None
        self.update(tenant_id, username, enabled=enabled)
        return self.users[(tenant_id, username)]

    async def delete_user(self, tenant_id: str, username: str) -> bool:
        return self.users.pop((tenant_id, username), None) is not None

    # -- operators (an OperatorStore) -------------------------------------------------

    async def create_user(
        self,
        tenant_id: str,
        username: str,
        password_hash: str,
        *,
        enabled: bool,
        profile: Mapping[str, str | None],
    ) -> User | None:
        if (tenant_id, username) in self.users:
            return None
        self.users[(tenant_id, username)] = User(
            tenant_id=tenant_id,
            username=username,
            password_hash=password_hash,
            enabled=enabled,
            roles=frozenset(),
            last_password_change=datetime.now(UTC),
            **profile,  # type: ignore[arg-type]
        )
        return self.users[(tenant_id, username)]

    async def update_user(
        self,
        tenant_id: str,
        username: str,
        *,
        enabled: bool | None,
        password_hash: str | None,
        profile: Mapping[str, str | None],
        clear_failures: bool,
    ) -> User | None:
        if (tenant_id, username) not in self.users:
            return None
        changes: dict[str, object] = dict(profile)
        if enabled is not None:
            changes["enabled"] = enabled
        if password_hash is not None:
            changes.update(password_hash=password_hash, last_password_change=datetime.now(UTC))
        if clear_failures:
            changes["failures"] = NO_FAILURES
        self.update(tenant_id, username, **changes)
        return self.users[(tenant_id, username)]

    async def add_role(self, tenant_id: str, username: str, role: Role) -> User | None:
        user = self.users.get((tenant_id, username))
        if user is None:
            return None
        self.update(tenant_id, username, roles=user.roles | {role})
        return self.users[(tenant_id, username)]

    async def remove_role(
        self, tenant_id: str, username: str, role: Role, *, keep_one_of: frozenset[Role]
    ) -> User | None:
        user = self.users.get((tenant_id, username))
        if user is None or (keep_one_of and not (user.roles - {role}) & keep_one_of):
            return None
        self.update(tenant_id, username, roles=user.roles - {role})
        return self.users[(tenant_id, username)]

    def _of(self, tenant_id: str, only_devices: bool) -> list[User]:
        """The tenant's device users (or the others), by user name."""
        return sorted(
            (
                u
                for (t, _), u in self.users.items()
                if t == tenant_id and (Role.DEVICE in u.roles) == only_devices
            ),
            key=lambda u: u.username,
        )


class MemoryDatabase:
    """The tables every in-memory adapter shares, and what ``fleetgate.db`` does on them
    in more than one adapter (claiming device ids, making devices and their users)."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        #: PostgreSQL's ``now()``.
        self.clock = clock
        self.users = MemoryUsers()
        self.objects: dict[int, ObjectRow] = {}
        #: (tenant, type, value) → managed object id.
        self.external_ids: dict[tuple[str, str, str], int] = {}
        #: (parent, kind, child).
        self.references: set[tuple[int, str, int]] = set()
        self.requests: dict[tuple[str, str], RequestRow] = {}
        #: managed object id → its file.
        self.binary_files: dict[int, FileRow] = {}
        self.operations: dict[int, OperationRow] = {}
        #: Device ids whose broker sessions are still to discard → when released.
        self.released: dict[str, datetime] = {}
        #: (gateway object id, child device id) → children an operator removed.
        self.removed_children: dict[tuple[int, str], RemovedChildRow] = {}
        #: (tenant, category, key) → value.
        self.tenant_options: dict[tuple[str, str, str], str] = {}
        #: child object id → what its gateway last reported of it.
        self.child_reports: dict[int, ChildReportRow] = {}
        #: bulk operation id → its row (``memory.bulk_operations.BulkRow``).
        self.bulk_operations: dict[int, Any] = {}
        #: bulk operation id → device id → its target row (``…TargetRow``).
        self.bulk_targets: dict[int, dict[int, Any]] = {}
        self.bulk_ids = count(1)
        self._object_ids = count(1)
        self._operation_ids = count(1)

    def add_tenant(self, tenant_id: str, *, is_management: bool = False) -> None:
        self.users.tenants.setdefault(tenant_id, Tenant(tenant_id, is_management))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: a failure inside puts every table back (ids stay used, as a
        sequence's do)."""
        saved = {name: copy.deepcopy(getattr(self, name)) for name in _TABLES}
        users, tenants = dict(self.users.users), dict(self.users.tenants)
        try:
            yield
        except BaseException:
            for name, table in saved.items():
                setattr(self, name, table)
            self.users.users, self.users.tenants = users, tenants
            raise

    # -- managed objects -----------------------------------------------------------------

    def insert_object(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
        at: datetime | None = None,
    ) -> ObjectRow:
        """``db.inventory.insert_object``: fragments kept as given (nulls too)."""
        self.require_tenant(tenant_id)
        when = at or self.clock()
        shown = jsonb(with_initial_lifecycle(fragments))
        row = ObjectRow(next(self._object_ids), tenant_id, name, type, owner, shown, when, when)
        self.objects[row.id] = row
        return row

    def object_in(self, tenant_id: str, object_id: int) -> ObjectRow | None:
        found = self.objects.get(object_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    def delete_objects(self, ids: Sequence[int]) -> None:
        """Delete managed objects with what the schema deletes with them: their external
        ids (a device id is released), references, files, operations and the removals
        recorded for them as gateways; a snapshot that goes is forgotten by its operation."""
        gone = set(ids)
        for key, object_id in list(self.external_ids.items()):
            if object_id in gone:
                self.delete_external_id(key)
        self.references = {r for r in self.references if r[0] not in gone and r[2] not in gone}
        self.removed_children = {k: v for k, v in self.removed_children.items() if k[0] not in gone}
        self.child_reports = {
            c: r
            for c, r in self.child_reports.items()
            if c not in gone and r.gateway_id not in gone
        }
        for object_id in gone:
            self.binary_files.pop(object_id, None)
            self.objects.pop(object_id, None)
        for targets in self.bulk_targets.values():
            for object_id in gone & set(targets):
                del targets[object_id]
        for op_id, row in list(self.operations.items()):
            if row.op.device_id in gone:
                del self.operations[op_id]
            elif row.snapshot_id in gone:
                row.snapshot_id = None

    # -- external ids and device ids -----------------------------------------------------

    def delete_external_id(self, key: tuple[str, str, str]) -> bool:
        """Remove it; a device id is left to have its broker session discarded."""
        if self.external_ids.pop(key, None) is None:
            return False
        if key[1] == DEVICE_ID_TYPE:
            self.released[key[2]] = self.clock()
        return True

    def object_of(self, tenant_id: str, device_id: str) -> int | None:
        """The managed object that holds the device id in the tenant."""
        return self.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))

    def parent_of(self, object_id: int) -> int | None:
        """The object (a gateway) that references the object as one of its ``childDevices``."""
        parents = (p for p, k, c in self.references if c == object_id and k == CHILD_DEVICES)
        return next(parents, None)

    def serial_of(self, object_id: int) -> str | None:
        """The device id (``c8y_Serial``) of a managed object."""
        return next(
            (
                v
                for (_, t, v), o in self.external_ids.items()
                if t == DEVICE_ID_TYPE and o == object_id
            ),
            None,
        )

    def claim_device_id(self, tenant_id: str, device_id: str) -> None:
        """``db.device_ids.claim_device_id``: ``device_id_taken`` when a device or a new
        device request of another tenant holds the id."""
        held = any(
            t != tenant_id and kind == DEVICE_ID_TYPE and value == device_id
            for t, kind, value in self.external_ids
        ) or any(t != tenant_id and i == device_id for t, i in self.requests)
        if held:
            raise device_id_taken(device_id)

    def ensure_device(
        self,
        tenant_id: str,
        device_id: str,
        at: datetime,
        *,
        fragments: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """``db.devices.ensure_device``: (the device's object id, whether it was made)."""
        self.claim_device_id(tenant_id, device_id)
        object_id = self.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))
        if object_id is not None:
            return object_id, False
        row = self.insert_object(
            tenant_id,
            name=device_id,
            type=DEFAULT_DEVICE_TYPE,
            owner=device_username(device_id),
            fragments=fragments if fragments is not None else {"c8y_IsDevice": {}},
            at=at,
        )
        self.external_ids[(tenant_id, DEVICE_ID_TYPE, device_id)] = row.id
        return row.id, True

    # -- device users --------------------------------------------------------------------

    def device_disabled(self, tenant_id: str, device_id: str) -> bool:
        """``db.devices.DEVICE_DISABLED``: an operator disabled the device holding the id."""
        object_id = self.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))
        return object_id is not None and self.objects[object_id].disabled

    def ensure_device_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        """Make ``device_<id>`` (no password; enabled unless its device is disabled) unless
        it exists: (created, whether the device may log in)."""
        key = (tenant_id, device_username(device_id))
        created = key not in self.users.users
        disabled = self.device_disabled(tenant_id, device_id)
        if created:
            self.require_tenant(tenant_id)
            self.users.users[key] = User(
                tenant_id, key[1], NO_PASSWORD, not disabled, DEVICE_USER_ROLES, self.clock()
            )
        return created, effective_enabled(self.users.users[key].enabled, disabled)

    def set_device_password(self, tenant_id: str, device_id: str, password_hash: str) -> None:
        """``db.devices.set_device_password``: make or update the device user, enabled
        unless its device is disabled."""
        key = (tenant_id, device_username(device_id))
        enabled = not self.device_disabled(tenant_id, device_id)
        found = self.users.users.get(key)
        if found is None:
            self.require_tenant(tenant_id)
            found = User(tenant_id, key[1], password_hash, enabled, DEVICE_USER_ROLES, self.clock())
        self.users.users[key] = replace(
            found, password_hash=password_hash, enabled=enabled, last_password_change=self.clock()
        )

    def connection_shown(self, row: ObjectRow, connection: dict[str, Any]) -> dict[str, Any]:
        """``db.inventory.keep_disabled``: connection fragments merged, a disabled device's
        lifecycle staying DISABLED."""
        shown = {**row.fragments, **jsonb(connection)}
        return {**shown, LIFECYCLE: disabled_lifecycle()} if row.disabled else shown

    # -- operations ----------------------------------------------------------------------

    def new_operation_id(self) -> int:
        return next(self._operation_ids)

    def bound(self, op: Operation) -> bool:
        """Its device still holds the device id it was made for (``db.operations._BOUND``)."""
        return self.external_ids.get((op.tenant_id, DEVICE_ID_TYPE, op.serial)) == op.device_id

    def gateway_of(self, object_id: int) -> str | None:
        """The device id of the gateway ``object_id`` is a child of (``childDevices``)."""
        for parent, kind, child in self.references:
            if child == object_id and kind == CHILD_DEVICES:
                return self.serial_of(parent)
        return None

    def held(self, object_id: int) -> bool:
        """The device, or its gateway, is disabled (``db.operation_rows.HELD``)."""
        if self.objects[object_id].disabled:
            return True
        return any(
            child == object_id and kind == CHILD_DEVICES and self.objects[parent].disabled
            for parent, kind, child in self.references
        )

    def shown(self, row: OperationRow) -> Operation:
        return replace(
            row.op,
            device_name=self.objects[row.op.device_id].name,
            fragments=jsonb(row.op.fragments),
            gateway=self.gateway_of(row.op.device_id),
            held=self.held(row.op.device_id),
        )

    def require_tenant(self, tenant_id: str) -> None:
        if tenant_id not in self.users.tenants:
            raise ForeignKeyViolation(f"tenant {tenant_id} does not exist")


def without_nulls(fragments: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fragments.items() if v is not None}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``(current || changes) - <the keys changes sets to null>``, as jsonb has it."""
    removed = {k for k, v in changes.items() if v is None}
    combined = {**current, **jsonb(without_nulls(changes))}
    return {k: v for k, v in combined.items() if k not in removed}
